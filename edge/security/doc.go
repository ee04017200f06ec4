// Package security implements the service-wide HTTP protections of the
// edge natively on fasthttp: `security/cors` (rs/cors semantics, as
// krakend-cors configures it) and `security/http` (unrolled/secure
// semantics, as krakend-httpsecure configures it).
//
// Both are compiled once per plan from the snapshot (NewCORS, NewSecure):
// every header name and value is a ready-made []byte, host patterns are
// precompiled regexps. At request time they only compare bytes and set
// response headers, and do not allocate on the normal path.
//
// They run before routing, in KrakenD's order: CORS first (krakend-cors
// wraps the whole router, so it answers preflights for every path, known
// or not), then Secure (a global gin middleware in KrakenD). Each Handle
// returns done=true when it has written the complete answer (a preflight,
// a rejected host, an HTTPS redirect); the caller must then stop:
//
//	if p.cors.Handle(ctx) || p.secure.Handle(ctx) {
//		return
//	}
//	// route and serve ctx ...
//
// A nil *CORS or *Secure (the feature is not configured) is valid and
// does nothing, so callers need no nil checks.
//
// Import rule: security depends only on fasthttp, the generated protos and
// the leaf helpers of edge/internal;
// it must not import edge/plan, edge/server, edge/watch, edge/aggregate,
// edge/proxy or anything under controlplane.
package security
