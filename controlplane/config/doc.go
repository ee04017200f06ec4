// Package config turns a KrakenD v3 configuration file (JSON, YAML or TOML) into
// a validated, compiled [gatewayv1.Snapshot].
//
// The pipeline has four visible stages, each usable on its own:
//
//	Decode    bytes -> *Service (strict: unknown keys, wrong types and
//	          unparsable durations are violations with their line and column)
//	Defaults  fills every default in one place (KrakenD's defaults, plus ours)
//	Validate  walks the whole tree and reports every violation, never only the first
//	compile   *Service -> *gatewayv1.Snapshot (all defaults resolved, durations in ms)
//
// [Compile] runs all of them and returns the snapshot with its deterministic
// serialization and sha256. [Diff] compares two snapshots for `gwctl diff`.
//
// Violations carry a path written with the configuration's own JSON key names
// ("endpoints[2].backend[0].host[0]", `extra_config["proxy"].static.strategy`),
// one of the kinds KindRequired, KindInvalid, KindDuplicate, KindNotFound,
// KindUnsupported and KindTooMany, and a human detail that ends with the
// position in the file. They are sorted by path and capped at [MaxViolations].
//
// # Differences from KrakenD CE
//
// A file KrakenD accepts is accepted here when it only uses supported
// features; the differences are deliberate and all make mistakes visible:
//
//   - Unknown keys, unsupported extra_config namespaces, v2 key names
//     (headers_to_pass, querystring_params, whitelist, blacklist) and keys of
//     features we lack (plugin, sd: dns, ...) are
//     violations; KrakenD ignores them.
//   - An unparsable duration is a violation (KrakenD reads it as 0), and an
//     explicit zero timeout, shadow_timeout or concurrent_calls is too
//     (KrakenD silently replaces it with the default).
//   - Route conflicts are violations (KrakenD's router panics at start-up).
//     A trailing "/*" catch-all is accepted as our extension.
//   - A url_pattern without its leading "/" is read with it, as KrakenD
//     does, with a warning; hosts must match the sanitiser pattern
//     completely (KrakenD accepts trailing garbage) and take one-digit
//     ports (KrakenD refuses them); url_pattern placeholders match endpoint
//     parameters case-sensitively.
//   - Keys starting with @, $, _ or # are comments at every level. JSON,
//     YAML and TOML are read; KRAKEND_* variables in [Options.Env]
//     override top-level keys. Accepted keys that do nothing here, and
//     values KrakenD overrides or normalises, are warnings
//     ([Compiled.Warnings]; KindNoEffect, KindOverridden, KindNormalized),
//     never silent.
//   - YAML is read with the YAML 1.2 core schema (go.yaml.in/yaml/v3, as
//     KrakenD's koanf does): y, n, yes, no, on and off are strings.
//   - Durations are compiled to milliseconds, a positive fraction rounding
//     up; bodies are bounded by DefaultMaxBodyBytes (KrakenD CE has no
//     limit).
//   - Values KrakenD silently raises or replaces are violations: an explicit
//     0 for a capacity, cache_duration, options_success_status or circuit
//     breaker timeout; a rate-limit every or cleanup_period under 1s; a JWT
//     leeway or failed_jwk_key_cooldown under 1s.
//
// JWT validation (auth/validator) and revocation (auth/revoker):
//
//   - alg is required (KrakenD exits at start-up without it) and "none" is
//     refused. Exactly one of jwk_url and jwk_local_path is required
//     (KrakenD silently ignores jwk_url when both are set). jwk_url must be
//     https unless disable_jwk_security is true; that flag only allows an
//     http URL, and jwk_local_path does not need it.
//   - scopes without scopes_key is a violation: KrakenD silently skips the
//     scope check, leaving the endpoint open to tokens of any scope.
//   - A {JWT.claim} placeholder in url_pattern needs the endpoint's own
//     auth/validator. Two propagate_claims entries may not set one header.
//   - jwk_fingerprints (32-byte base64url digests), jwk_local_ca and
//     cipher_suites (secure Go suites only) apply to an https jwk_url and
//     are violations otherwise. secret_url (base64key:// only) and
//     cypher_key decrypt a jwk_local_path file. The service-level
//     shared_cache_duration is accepted and has no effect.
//   - auth/signer needs alg, kid, keys_to_sign and one key source; it
//     always answers JSON (another output_encoding is warned, no-op is a
//     violation).
//   - auth/revoker: hash_name may be omitted, and "default" is refused (the
//     legacy hasher sets at most 8 bits per entry, so its false-positive rate
//     is far worse than P). port is accepted and ignored: revocations reach
//     every edge over the sync stream (gwctl revoke), not per-node RPC.
//     TTL is how long a revocation without its own expiry stays in force
//     (KrakenD's rotating filter keeps an entry for 2 to 3 TTLs).
//     revoke_server_* (Enterprise) and headers (not wired in CE) are
//     refused; N and P must fit a bloom filter of MaxRevokerFilterBytes.
//
// Traffic protection:
//
//   - qos/ratelimit/router needs max_rate or client_max_rate (as KrakenD's
//     schema says). client_max_rate without a strategy limits by "ip"
//     (KrakenD silently disables the client limit), and client_capacity
//     defaults to client_max_rate rounded down, at least 1 (KrakenD uses 1
//     whenever max_rate, sic, is below 1). A strategy, key or capacity
//     without the rate it serves is a violation, and a param key must be an
//     endpoint parameter.
//   - cluster: true (our extension) shares the client buckets through the
//     service-level qos/ratelimit/cluster store (Redis), which it requires.
//   - qos/circuit-breaker requires interval, timeout and max_errors (as
//     KrakenD's schema does); an all-zero breaker, which KrakenD silently
//     disables, is a violation.
//   - qos/http-cache is bounded in bytes: max_size alone is accepted,
//     max_items needs max_size, and with neither the cache holds
//     DefaultHTTPCacheMaxSize (KrakenD's is unbounded). Shared caches are one
//     cache and must agree on their size. A cache on a backend called with
//     anything but GET or HEAD (never cached) is a violation.
//
// Security and request handling:
//
//   - security/cors: allow_credentials with a "*" origin is a violation
//     (browsers refuse it); origins must be "*" or scheme://host[:port] with
//     at most one "*"; options_success_status must be 2xx.
//   - security/http: allowed_hosts regexes must compile (unrolled/secure
//     panics), referrer_policy must use Referrer-Policy tokens, header values
//     must not hold control characters, and hpkp_public_key is refused.
//   - modifier/martian supports header.Modifier, header.Blacklist,
//     querystring.Modifier, body.Modifier and fifo.Group; other modifiers,
//     and unknown fields inside a modifier (martian ignores them), are
//     violations, as are an empty scope and a querystring.Modifier scoped to
//     responses.
//   - validation/json-schema must be an object (boolean schemas are
//     refused); the edge compiles it.
//
// The package is pure: it does no I/O beyond reading the file given to
// [CompileFile], reads no clock and no environment, and starts no goroutines.
// Every function is safe for concurrent use. It must not import anything
// under edge/ (the control plane never depends on the data plane); the edge
// consumes its output only through the Snapshot proto.
package config
