package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Format is the syntax of a configuration document.
type Format int

// Supported formats.
const (
	FormatJSON Format = iota + 1
	FormatYAML
	FormatTOML
)

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatYAML:
		return "yaml"
	case FormatTOML:
		return "toml"
	default:
		return "unknown"
	}
}

// DetectFormat picks the format from the file name's extension (.json,
// .yaml, .yml, .toml, any case). For other names it sniffs the content: a
// document whose first significant character is '{' or '[' is JSON,
// anything else is YAML. KrakenD's other formats (.hcl, .properties) are
// refused by Decode.
func DetectFormat(filename string, content []byte) Format {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".json":
		return FormatJSON
	case ".yaml", ".yml":
		return FormatYAML
	case ".toml":
		return FormatTOML
	}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(content, utf8BOM), " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return FormatJSON
	}
	return FormatYAML
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Decode parses a KrakenD v3 configuration strictly. Unlike KrakenD, which
// ignores what it does not know, every unknown key, unsupported extra_config
// namespace, legacy v2 key name, wrong JSON type and unparsable duration is a
// violation with its path and position. Decode does not apply defaults or
// check values; see [Defaults] and [Validate].
//
// The returned Service is nil only when the document is not well-formed
// (then the single violation has an empty path and says where the syntax
// error is); otherwise it holds everything that could be decoded.
// Violations are sorted and capped like Validate's.
func Decode(filename string, content []byte) (*Service, []*gatewayv1.FieldViolation) {
	s, vs := decode(filename, content, nil, nil)
	var positions map[string]position
	if s != nil {
		positions = s.positions
	}
	return s, finish(vs, positions)
}

// decode is Decode without the final sorting, so Compile can merge its
// violations with Validate's first.
func decode(filename string, content []byte, env []string, origin func(line, col int) (string, bool)) (*Service, []*gatewayv1.FieldViolation) {
	root, err := parseDocument(filename, content)
	if err != nil {
		var vs violations
		kind := KindInvalid
		if errors.Is(err, errUnsupportedFormat) {
			kind = KindUnsupported
		}
		msg := err.Error()
		if se := (*syntaxError)(nil); errors.As(err, &se) {
			if from, ok := originOf(se.pos, origin); ok {
				msg += " (from " + from + ")"
			}
		}
		vs.add("", kind, "%s", msg)
		return nil, vs.list
	}
	d := &decoder{positions: make(map[string]position)}
	applyEnv(d, root, env)
	s := d.service(root)
	d.orphanOTel(s)
	d.openCensusWarnings(s)
	d.openCensusPathWarnings(s)
	if s != nil && s.ExtraConfig.Logstash != nil && s.ExtraConfig.Logging == nil {
		d.ws.add(path("extra_config").key("telemetry/logstash"), KindNoEffect,
			"accepted but has no effect: krakend-logstash formats telemetry/logging's output, and there is no telemetry/logging")
	}
	if s != nil && s.ExtraConfig.Influx != nil && s.ExtraConfig.Metrics == nil {
		d.ws.add(path("extra_config").key("telemetry/influx"), KindNoEffect,
			"accepted but has no effect: krakend-influx sends telemetry/metrics' snapshot, and there is no telemetry/metrics")
	}
	s.positions = d.positions
	s.warnings = d.ws
	return s, d.vs.list
}

var errUnsupportedFormat = errors.New("unsupported format")

// parseDocument turns content into a node tree whose positions refer to
// the original document.
func parseDocument(filename string, content []byte) (*node, error) {
	switch ext := strings.ToLower(filepath.Ext(filename)); ext {
	case ".hcl", ".properties", ".props", ".tmpl":
		return nil, fmt.Errorf("%w %q: use .json, .yaml, .yml or .toml (render templates first: gwctl render)", errUnsupportedFormat, ext)
	}
	content = bytes.TrimPrefix(content, utf8BOM)
	switch DetectFormat(filename, content) {
	case FormatJSON:
		return parseJSON(content, newLineIndex(content))
	case FormatTOML:
		return parseTOML(content)
	}
	return parseYAML(content)
}

// decoder turns a node tree into the model, collecting violations instead
// of stopping at the first one.
type decoder struct {
	vs        violations
	ws        violations // warnings
	positions map[string]position
	// accepted, when not nil, records every key an object spec accepts, by
	// the path of its object with list indexes dropped (a test walks them).
	accepted map[string]bool
}

// noEffect decodes a key with h and warns that it has no effect, saying why.
func (d *decoder) noEffect(h handler, why string) handler {
	return func(n *node, p path) {
		h(n, p)
		d.ws.add(p, KindNoEffect, "accepted but has no effect: %s", why)
	}
}

// approximated decodes a key with h and warns that it is applied, but not
// exactly as KrakenD applies it, saying how.
func (d *decoder) approximated(h handler, how string) handler {
	return func(n *node, p path) {
		h(n, p)
		d.ws.add(p, KindApproximated, "applied, but not exactly as KrakenD does: %s", how)
	}
}

// handler decodes the value n found at path p.
type handler func(n *node, p path)

// objectSpec describes the keys an object accepts.
type objectSpec struct {
	fields map[string]handler
	// renamed maps KrakenD v2 key names to their v3 names.
	renamed map[string]string
	// notSupported maps keys KrakenD knows but this gateway does not
	// implement to the reason.
	notSupported map[string]string
}

// Legacy v2 names of endpoint and backend keys.
var (
	renamedInputs = map[string]string{
		"headers_to_pass":    "input_headers",
		"querystring_params": "input_query_strings",
	}
	renamedBackend = map[string]string{
		"headers_to_pass":    "input_headers",
		"querystring_params": "input_query_strings",
		"whitelist":          "allow",
		"blacklist":          "deny",
	}
)

func (d *decoder) record(p path, n *node) {
	if n.pos.line > 0 || n.pos.env != "" {
		d.positions[string(p)] = n.pos
	}
}

// members type-checks an object and returns its members, reporting
// duplicate keys (the last one is kept, as JSON decoders do).
func (d *decoder) members(n *node, p path, keyPath func(path, string) path) []member {
	if !d.want(n, p, typeObject) {
		return nil
	}
	seen := make(map[string]bool, len(n.members))
	for _, m := range n.members {
		mp := keyPath(p, m.key)
		d.record(mp, m.val)
		if seen[m.key] {
			d.vs.add(mp, KindDuplicate, "key %q appears more than once", m.key)
		}
		seen[m.key] = true
	}
	return n.members
}

// object decodes an object whose keys are listed in spec.
func (d *decoder) object(n *node, p path, spec objectSpec) {
	if d.accepted != nil {
		for k := range spec.fields {
			d.accepted[string(schematic(p.field(k)))] = true
		}
	}
	for _, m := range d.members(n, p, path.field) {
		mp := p.field(m.key)
		h, ok := spec.fields[m.key]
		switch {
		case ok && m.val.kind == typeNull:
			// null means "not set", as in KrakenD.
		case ok:
			h(m.val, mp)
		case isCommentKey(m.key):
			// A comment, as KrakenD's schema allows in every object.
		case spec.renamed[m.key] != "":
			d.vs.add(mp, KindUnsupported, "%q is the KrakenD v2 name of %q; config version 3 uses %q",
				m.key, spec.renamed[m.key], spec.renamed[m.key])
		case spec.notSupported[m.key] != "":
			d.vs.add(mp, KindUnsupported, "%s; allowed keys: %s", spec.notSupported[m.key], keyList(spec.fields))
		default:
			d.vs.add(mp, KindUnsupported, "unknown key %q; allowed keys: %s", m.key, keyList(spec.fields))
		}
	}
}

// isCommentKey says whether key is a comment: KrakenD's JSON schema lets
// every object carry keys starting with "@", "$", "_" or "#" (the
// playground writes "@comment", YAML files keep anchors under "_defaults"),
// and the engine never reads them. They are skipped, never decoded, so they
// cannot change the snapshot.
func isCommentKey(key string) bool {
	return key != "" && strings.IndexByte("@$_#", key[0]) >= 0
}

func keyList(fields map[string]handler) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// list calls each for every element of an array.
func (d *decoder) list(n *node, p path, each func(i int, n *node, p path)) {
	if !d.want(n, p, typeArray) {
		return
	}
	for i, item := range n.items {
		ip := p.index(i)
		d.record(ip, item)
		each(i, item, ip)
	}
}

// want reports a type mismatch and says whether n has the wanted type.
func (d *decoder) want(n *node, p path, t jsonType) bool {
	if n.kind == t {
		return true
	}
	article := "a"
	if t == typeArray || t == typeObject {
		article = "an"
	}
	d.vs.add(p, KindInvalid, "want %s %s, got %s", article, t, n.kind)
	return false
}

func (d *decoder) str(dst *string) handler {
	return func(n *node, p path) {
		if d.want(n, p, typeString) {
			*dst = n.text
		}
	}
}

func (d *decoder) optStr(dst **string) handler {
	return func(n *node, p path) {
		if d.want(n, p, typeString) {
			*dst = &n.text
		}
	}
}

func (d *decoder) boolean(dst *bool) handler {
	return func(n *node, p path) {
		if d.want(n, p, typeBool) {
			*dst = n.boolean
		}
	}
}

// orTrue sets *dst when the boolean is true and never clears it: for a
// setting two keys can turn on (root use_h2c and router's).
func (d *decoder) orTrue(dst *bool) handler {
	return func(n *node, p path) {
		if d.want(n, p, typeBool) && n.boolean {
			*dst = true
		}
	}
}

// falseOnly accepts a boolean key KrakenD has but this gateway does not
// implement, as long as it keeps its default (false).
func (d *decoder) falseOnly(what string) handler {
	return func(n *node, p path) {
		if d.want(n, p, typeBool) && n.boolean {
			d.vs.add(p, KindUnsupported, "%s is not supported; the only accepted value is false", what)
		}
	}
}

func (d *decoder) integer(dst *int64) handler {
	return func(n *node, p path) {
		if v, ok := d.int64(n, p); ok {
			*dst = v
		}
	}
}

func (d *decoder) optInteger(dst **int64) handler {
	return func(n *node, p path) {
		if v, ok := d.int64(n, p); ok {
			*dst = &v
		}
	}
}

func (d *decoder) int64(n *node, p path) (int64, bool) {
	if !d.want(n, p, typeNumber) {
		return 0, false
	}
	if v, err := strconv.ParseInt(n.text, 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(n.text, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		d.vs.add(p, KindInvalid, "%s: want an integer", n.text)
		return 0, false
	}
	return int64(f), true
}

// number decodes any finite JSON number (rates may be fractional).
func (d *decoder) number(dst *float64) handler {
	return func(n *node, p path) {
		if v, ok := d.float64(n, p); ok {
			*dst = v
		}
	}
}

func (d *decoder) optNumber(dst **float64) handler {
	return func(n *node, p path) {
		if v, ok := d.float64(n, p); ok {
			*dst = &v
		}
	}
}

func (d *decoder) float64(n *node, p path) (float64, bool) {
	if !d.want(n, p, typeNumber) {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.text, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		d.vs.add(p, KindInvalid, "%s: not a finite number", n.text)
		return 0, false
	}
	return f, true
}

// duration decodes a Go duration string. KrakenD silently reads an
// unparsable duration as 0; here it is a violation.
func (d *decoder) duration(dst *time.Duration) handler {
	return func(n *node, p path) {
		if v, ok := d.parseDuration(n, p); ok {
			*dst = v
		}
	}
}

func (d *decoder) optDuration(dst **time.Duration) handler {
	return func(n *node, p path) {
		if v, ok := d.parseDuration(n, p); ok {
			*dst = &v
		}
	}
}

func (d *decoder) parseDuration(n *node, p path) (time.Duration, bool) {
	if n.kind != typeString {
		d.vs.add(p, KindInvalid, "want a duration string such as \"2s\" or \"500ms\", got %s", n.kind)
		return 0, false
	}
	v, err := time.ParseDuration(n.text)
	if err != nil {
		d.vs.add(p, KindInvalid, "%q is not a duration (use Go syntax such as \"2s\", \"1m30s\", \"500ms\")", n.text)
		return 0, false
	}
	return v, true
}

// strings decodes an array of strings. The result stays aligned with the
// array: an element of the wrong type is reported and left empty.
func (d *decoder) strings(dst *[]string) handler {
	return func(n *node, p path) {
		out := make([]string, 0, len(n.items))
		d.list(n, p, func(_ int, item *node, ip path) {
			var s string
			if d.want(item, ip, typeString) {
				s = item.text
			}
			out = append(out, s)
		})
		if n.kind == typeArray {
			*dst = out
		}
	}
}

// stringMap decodes an object of strings.
func (d *decoder) stringMap(dst *map[string]string) handler {
	return func(n *node, p path) {
		out := make(map[string]string, len(n.members))
		for _, m := range d.members(n, p, path.key) {
			if d.want(m.val, p.key(m.key), typeString) {
				out[m.key] = m.val.text
			}
		}
		if n.kind == typeObject {
			*dst = out
		}
	}
}

// rawObject stores the canonical JSON of an object value.
func (d *decoder) rawObject(dst *[]byte) handler {
	return func(n *node, p path) {
		if d.want(n, p, typeObject) {
			*dst = canonicalJSON(n)
		}
	}
}

func (d *decoder) service(n *node) *Service {
	s := &Service{}
	d.record("", n)
	d.object(n, "", objectSpec{
		fields: map[string]handler{
			"$schema":         d.str(&s.Schema),
			"version":         d.optInteger(&s.Version),
			"name":            d.str(&s.Name),
			"port":            d.integer(&s.Port),
			"listen_ip":       d.str(&s.ListenIP),
			"timeout":         d.optDuration(&s.Timeout),
			"cache_ttl":       d.optDuration(&s.CacheTTL),
			"output_encoding": d.str(&s.OutputEncoding),
			"host":            d.strings(&s.Host),
			"disable_rest":    d.boolean(&s.DisableRest),
			"endpoints": func(n *node, p path) {
				d.list(n, p, func(_ int, item *node, ip path) {
					s.Endpoints = append(s.Endpoints, d.endpoint(item, ip))
				})
			},
			"extra_config": func(n *node, p path) {
				decodeExtraConfig(d, n, p, serviceNamespaces, &s.ExtraConfig)
			},

			"read_timeout":           d.duration(&s.ReadTimeout),
			"write_timeout":          d.duration(&s.WriteTimeout),
			"idle_timeout":           d.duration(&s.IdleTimeout),
			"read_header_timeout":    d.duration(&s.ReadHeaderTimeout),
			"max_header_bytes":       d.integer(&s.MaxHeaderBytes),
			"max_shutdown_wait_time": d.duration(&s.MaxShutdownWaitTime),
			"use_h2c":                d.orTrue(&s.UseH2C),

			"max_idle_connections":          d.noEffect(d.integer(&s.MaxIdleConnections), "the edge pools idle connections per backend host (max_idle_connections_per_host); it has no process-wide idle limit"),
			"max_idle_connections_per_host": d.integer(&s.MaxIdleConnectionsPerHost),
			"idle_connection_timeout":       d.duration(&s.IdleConnectionTimeout),
			"response_header_timeout": d.approximated(d.duration(&s.ResponseHeaderTimeout),
				"it bounds reading the whole backend response, headers and body, from the end of the request (the edge's HTTP client, fasthttp, has no timeout for the headers alone)"),
			"expect_continue_timeout": d.noEffect(d.duration(&s.ExpectContinueTimeout),
				"the edge's HTTP client (fasthttp) sends a request body at once, without waiting for 100 Continue, which is what KrakenD does with expect_continue_timeout 0"),
			"dialer_timeout":             d.duration(&s.DialerTimeout),
			"dialer_keep_alive":          d.duration(&s.DialerKeepAlive),
			"dialer_fallback_delay":      d.duration(&s.DialerFallbackDelay),
			"disable_keep_alives":        d.boolean(&s.DisableKeepAlives),
			"disable_compression":        d.boolean(&s.DisableCompression),
			"allow_insecure_connections": d.boolean(&s.AllowInsecureConnections),

			"tls":        func(n *node, p path) { s.TLS = d.tls(n, p) },
			"client_tls": d.clientTLS(&s.ClientTLS),
			"async_agent": func(n *node, p path) {
				d.list(n, p, func(_ int, item *node, ip path) {
					s.AsyncAgents = append(s.AsyncAgents, d.asyncAgent(item, ip))
				})
			},
			"debug_endpoint": d.boolean(&s.DebugEndpoint),
			"echo_endpoint":  d.boolean(&s.EchoEndpoint),
			"dns_cache_ttl": func(n *node, p path) {
				s.DNSCacheTTLSet = true
				d.duration(&s.DNSCacheTTL)(n, p)
			},
			"sequential_start": d.noEffect(d.boolean(&s.SequentialStart), "the edge starts the async agents of a snapshot once its plan is live, without holding the listener back; there are no plugins whose start could be ordered"),
		},
		notSupported: map[string]string{
			"plugin": "Go plugins are not supported",
		},
	})
	return s
}

func (d *decoder) endpoint(n *node, p path) *Endpoint {
	if !d.want(n, p, typeObject) {
		return nil
	}
	e := &Endpoint{}
	d.object(n, p, objectSpec{
		fields: map[string]handler{
			"endpoint": d.str(&e.Endpoint),
			"method":   d.str(&e.Method),
			"backend": func(n *node, p path) {
				d.list(n, p, func(_ int, item *node, ip path) {
					e.Backend = append(e.Backend, d.backend(item, ip))
				})
			},
			"concurrent_calls":    d.optInteger(&e.ConcurrentCalls),
			"timeout":             d.optDuration(&e.Timeout),
			"cache_ttl":           d.optDuration(&e.CacheTTL),
			"input_headers":       d.strings(&e.InputHeaders),
			"input_query_strings": d.strings(&e.InputQueryStrings),
			"output_encoding":     d.str(&e.OutputEncoding),
			"extra_config": func(n *node, p path) {
				decodeExtraConfig(d, n, p, endpointNamespaces, &e.ExtraConfig)
			},
		},
		renamed: renamedInputs,
		notSupported: map[string]string{
			"disable_rest": "disable_rest is a service-level key in KrakenD",
		},
	})
	return e
}

func (d *decoder) backend(n *node, p path) *Backend {
	if !d.want(n, p, typeObject) {
		return nil
	}
	b := &Backend{}
	d.object(n, p, objectSpec{
		fields: map[string]handler{
			"url_pattern": func(n *node, p path) {
				if !d.want(n, p, typeString) {
					return
				}
				b.URLPattern = n.text
				if n.text != "" && !strings.HasPrefix(n.text, "/") {
					// KrakenD prepends the slash at start-up.
					b.URLPattern = "/" + n.text
					d.ws.add(p, KindNormalized, "%q does not start with \"/\"; read as %q, as KrakenD does", n.text, b.URLPattern)
				}
			},
			"timeout": func(n *node, p path) {
				var ignored time.Duration
				d.duration(&ignored)(n, p)
				d.ws.add(p, KindOverridden, "KrakenD reads a backend's timeout and then replaces it with its endpoint's; set timeout on the endpoint (or the service)")
			},
			"concurrent_calls": func(n *node, p path) {
				var ignored int64
				d.integer(&ignored)(n, p)
				d.ws.add(p, KindOverridden, "KrakenD takes concurrent_calls from the endpoint and ignores the backend's; set it on the endpoint")
			},
			"host":                  d.strings(&b.Host),
			"sd":                    d.str(&b.SD),
			"sd_scheme":             d.str(&b.SDScheme),
			"disable_host_sanitize": d.boolean(&b.DisableHostSanitize),
			"method":                d.str(&b.Method),
			"encoding":              d.str(&b.Encoding),
			"is_collection":         d.boolean(&b.IsCollection),
			"target":                d.str(&b.Target),
			"allow":                 d.strings(&b.Allow),
			"deny":                  d.strings(&b.Deny),
			"mapping":               d.stringMap(&b.Mapping),
			"group":                 d.str(&b.Group),
			"input_headers":         d.strings(&b.InputHeaders),
			"input_query_strings":   d.strings(&b.InputQueryStrings),
			"extra_config": func(n *node, p path) {
				decodeExtraConfig(d, n, p, backendNamespaces, &b.ExtraConfig)
			},
		},
		renamed: renamedBackend,
	})
	return b
}

// flatmap decodes a flatmap_filter list.
func (d *decoder) flatmap(dst *[]FlatmapOp) handler {
	return func(n *node, p path) {
		out := make([]FlatmapOp, 0, len(n.items))
		d.list(n, p, func(_ int, item *node, ip path) {
			var op FlatmapOp
			d.object(item, ip, objectSpec{fields: map[string]handler{
				"type": d.str(&op.Type),
				"args": d.strings(&op.Args),
			}})
			out = append(out, op)
		})
		if n.kind == typeArray {
			*dst = out
		}
	}
}
