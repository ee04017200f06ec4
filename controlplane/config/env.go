package config

import (
	"strconv"
	"strings"
)

// envPrefix starts the environment variables that override top-level keys,
// as in KrakenD (krakend-koanf): KRAKEND_PORT=9090 sets "port".
const envPrefix = "KRAKEND_"

// envKind is how an override's text becomes a value: KrakenD decodes the
// string weakly into the key's Go type (mapstructure's WeaklyTypedInput).
type envKind uint8

const (
	envString envKind = iota
	envInteger
	envBoolean
	envStrings // a single value becomes a one-element list
	envRefused // objects and lists of objects cannot come from a string
)

// envKeys lists the top-level keys an override may set and how its text is
// read. Keys not listed are strings (names, addresses, durations).
var envKeys = map[string]envKind{
	"version": envInteger, "port": envInteger, "max_header_bytes": envInteger,
	"max_idle_connections": envInteger, "max_idle_connections_per_host": envInteger,

	"disable_rest": envBoolean, "use_h2c": envBoolean, "disable_keep_alives": envBoolean,
	"disable_compression": envBoolean, "allow_insecure_connections": envBoolean,
	"debug_endpoint": envBoolean, "echo_endpoint": envBoolean, "sequential_start": envBoolean,

	"host": envStrings,

	"endpoints": envRefused, "extra_config": envRefused, "tls": envRefused,
	"client_tls": envRefused, "plugin": envRefused, "async_agent": envRefused,
}

// applyEnv overrides top-level members of root with KRAKEND_* entries of
// env. The new values carry the variable's name as their position, so a
// violation says where the value came from. A variable naming no top-level
// key is ignored, as KrakenD ignores it, with a warning.
func applyEnv(d *decoder, root *node, env []string) {
	if root.kind != typeObject {
		return
	}
	for _, kv := range env {
		name, text, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || len(name) == len(envPrefix) {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(name, envPrefix))
		kind, known := envKeys[key]
		if !known && !isServiceKey(key) {
			d.ws.add("", KindNoEffect, "$%s: %q is not a top-level key, so the variable changes nothing", name, key)
			continue
		}
		pos := position{env: name}
		var n *node
		switch kind {
		case envInteger:
			if i, err := strconv.ParseInt(text, 0, 64); err == nil {
				text = strconv.FormatInt(i, 10)
			}
			n = &node{kind: typeNumber, text: text, pos: pos}
			if _, err := strconv.ParseFloat(text, 64); err != nil {
				n = &node{kind: typeString, text: text, pos: pos} // reported as a wrong type
			}
		case envBoolean:
			b, err := strconv.ParseBool(text)
			n = &node{kind: typeBool, boolean: b, pos: pos}
			if err != nil && text != "" {
				n = &node{kind: typeString, text: text, pos: pos}
			}
		case envStrings:
			n = &node{kind: typeArray, pos: pos, items: []*node{{kind: typeString, text: text, pos: pos}}}
		default:
			n = &node{kind: typeString, text: text, pos: pos}
		}
		replaced := false
		for i := range root.members {
			if root.members[i].key == key {
				root.members[i].val, replaced = n, true
			}
		}
		if !replaced {
			root.members = append(root.members, member{key: key, val: n})
		}
	}
}

// isServiceKey says whether key is a top-level key the decoder reads.
func isServiceKey(key string) bool {
	_, ok := serviceStringKeys[key]
	return ok
}

// serviceStringKeys are the top-level keys whose values are strings.
var serviceStringKeys = map[string]struct{}{
	"$schema": {}, "name": {}, "listen_ip": {}, "timeout": {}, "cache_ttl": {}, "output_encoding": {},
	"read_timeout": {}, "write_timeout": {}, "idle_timeout": {}, "read_header_timeout": {},
	"max_shutdown_wait_time": {}, "idle_connection_timeout": {}, "response_header_timeout": {},
	"expect_continue_timeout": {}, "dialer_timeout": {}, "dialer_keep_alive": {},
	"dialer_fallback_delay": {}, "dns_cache_ttl": {},
}
