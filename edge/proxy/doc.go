// Package proxy is the edge's upstream side: one keep-alive Client per
// backend (a fasthttp.HostClient per host and KrakenD's balancer), the
// compiled request template of each backend call (url_pattern placeholders
// from router parameter slots, method, header and query allow-lists,
// X-Forwarded-For / X-Forwarded-Host / User-Agent, the catch-all rest of
// the path, the request body), header hygiene in both directions
// (hop-by-hop headers and those named in Connection are never forwarded),
// the no-op pass-through and detached shadow calls, and the protection of
// each call (circuit breaker, backend rate limit, martian modifiers, HTTP
// cache: guard.go).
//
// Everything here is built once per plan and is immutable afterwards; the
// per-request functions work on pooled fasthttp requests and responses and
// copy what they need, so nothing keeps a *fasthttp.RequestCtx or its bytes
// after the handler returns.
//
// proxy may import edge/router (parameter slots), edge/response
// (sequential placeholder lookup), edge/qos (breaker, bucket, cache) and
// edge/modifier; it must not import edge/auth, edge/aggregate,
// edge/plan, edge/server, edge/watch or anything from the control plane.
package proxy
