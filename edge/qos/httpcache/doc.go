// Package httpcache is the in-memory response cache of KrakenD's
// `qos/http-cache`: it stores backend responses, keyed by method, final
// backend URL and the request values of the headers the response varies on,
// and serves them while they are fresh according to the backend's
// Cache-Control / Expires (RFC 9111, as a shared cache).
//
// Memory is bounded in bytes (Config.MaxBytes, plus an optional item cap)
// with least-recently-used eviction. One mutex guards each Cache; critical
// sections are a map lookup and a list move, with no I/O and no copying of
// response bytes under the lock. Get on a hit does not allocate.
//
// Storage rules (a gateway cache is shared by every client):
//   - only GET and HEAD, and only statuses cacheable by default (RFC 9110
//     §15.1: 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501); 206 is
//     never stored (no range support);
//   - only responses with explicit freshness: s-maxage, else max-age, else
//     Expires − Date. There is no heuristic freshness and no revalidation, so
//     no-cache (with or without field names) is not stored, nor is anything
//     already stale;
//   - never no-store, private, Vary: *, or (our choice, as Varnish) a
//     response carrying Set-Cookie;
//   - a request with Authorization only when the response says public,
//     s-maxage or must-revalidate (RFC 9111 §3.5); a request with
//     Cache-Control: no-store is not stored. Request no-cache is ignored on
//     Get (a client must not be able to bypass the cache that protects the
//     backend);
//   - hop-by-hop headers, headers named in Connection, and Age are not
//     stored; Get returns the entry's current age for the Age header.
//
// Vary: the request values (first value, trimmed) of every header named in
// the response's Vary are part of the key; a URL keeps at most MaxVariants
// variants.
//
// This package must not import edge/proxy, edge/aggregate, edge/server,
// edge/watch, edge/plan, controlplane, or fasthttp; it reads request headers
// through the one-method RequestHeader interface, which fasthttp's
// *RequestHeader satisfies.
package httpcache
