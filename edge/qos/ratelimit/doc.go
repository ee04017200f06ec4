// Package ratelimit implements the token-bucket limiters of KrakenD's
// `qos/ratelimit/router` (per endpoint: a global bucket and per-client
// buckets) and `qos/ratelimit/proxy` (one bucket per backend).
//
// Buckets use GCRA (the "virtual scheduling" form of a token bucket): one
// int64 per bucket, the theoretical arrival time (TAT), refilled lazily from a
// monotonic clock on each Allow; no goroutine or timer per bucket. A bucket
// whose TAT is in the past is full, so evicting it loses nothing.
//
// Per-client buckets live in a sharded table (FNV-1a over the key bytes,
// 2048 shards by default, a mutex per shard). Memory is bounded twice: a
// background sweep (every CleanupPeriod) drops buckets that have refilled,
// and each shard holds at most ceil(MaxClients/NumShards) buckets, evicting
// the least recently used one when a new key arrives, so a client rotating
// keys cannot grow memory without bound.
//
// Allow on an existing key, on a global or backend bucket and on a local
// Router allocates nothing (TestAllowAllocs). The API is transport-free:
// keys are []byte, times come from an injectable clock.Clock, and the caller
// turns a Decision into a status code and headers.
//
// Semantics versus KrakenD (krakend-ratelimit v3):
//   - Router `every` below 1 s is clamped to 1 s (as KrakenD); the backend
//     limiter's `every` is not clamped.
//   - capacity 0 defaults to max_rate (min 1). client_capacity 0 defaults to
//     client_max_rate (min 1). KrakenD checks max_rate instead and gives a
//     client burst of 1 whenever no global limit is set; we fix that.
//   - Refill is continuous (GCRA), not whole tokens per fill interval.
//   - An empty client key is rejected with 429 (as KrakenD); over-long keys
//     (> MaxKeyLen bytes) are replaced by their SHA-256 so memory per bucket
//     stays bounded without letting anyone collide with another client.
//   - When the global bucket rejects after the client bucket accepted, the
//     client's token is refunded: a 503 caused by other clients does not
//     spend this client's quota.
//   - Rate-limit rejections are not backend failures: callers must not
//     report them to a circuit breaker (KrakenD does; we fix that).
//
// This package must not import edge/proxy, edge/aggregate, edge/server,
// edge/watch, edge/plan, controlplane, or fasthttp.
package ratelimit
