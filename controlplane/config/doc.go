// Package config turns a KrakenD v3 configuration file (JSON or YAML) into
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
//     features we lack (tls, plugin, debug_endpoint: true, sd: dns, ...) are
//     violations; KrakenD ignores them.
//   - An unparsable duration is a violation (KrakenD reads it as 0), and an
//     explicit zero timeout, shadow_timeout or concurrent_calls is too
//     (KrakenD silently replaces it with the default).
//   - Route conflicts are violations (KrakenD's router panics at start-up).
//     A trailing "/*" catch-all is accepted as our extension.
//   - url_pattern must start with "/" (KrakenD prepends one); hosts must
//     match the sanitiser pattern completely (KrakenD accepts trailing
//     garbage); url_pattern placeholders match endpoint parameters
//     case-sensitively.
//   - YAML is read with the YAML 1.2 core schema (go.yaml.in/yaml/v3, as
//     KrakenD's koanf does): y, n, yes, no, on and off are strings.
//   - Durations are compiled to milliseconds, a positive fraction rounding
//     up; bodies are bounded by DefaultMaxBodyBytes (KrakenD CE has no
//     limit).
//
// The package is pure: it does no I/O beyond reading the file given to
// [CompileFile], reads no clock and no environment, and starts no goroutines.
// Every function is safe for concurrent use. It must not import anything
// under edge/ (the control plane never depends on the data plane); the edge
// consumes its output only through the Snapshot proto.
package config
