package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDetectFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, filename, content string
		want                    Format
	}{
		{"json extension", "krakend.json", "version: 3", FormatJSON},
		{"yaml extension", "k.yaml", "{}", FormatYAML},
		{"yml extension upper case", "K.YML", "{}", FormatYAML},
		{"sniff json", "config", "\n  {\"version\": 3}", FormatJSON},
		{"sniff json after BOM", "", "\xEF\xBB\xBF{}", FormatJSON},
		{"sniff yaml", "config.conf", "version: 3\n", FormatYAML},
		{"empty is yaml", "", "", FormatYAML},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := DetectFormat(tc.filename, []byte(tc.content)); got != tc.want {
				t.Errorf("DetectFormat(%q) = %v, want %v", tc.filename, got, tc.want)
			}
		})
	}
}

// TestDecodePositions checks that decode errors name the line and column
// of the original document, JSON or YAML.
func TestDecodePositions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, filename, doc string
		wantPath, wantKind  string
		wantPos             string
	}{
		{
			name:     "json syntax",
			filename: "k.json",
			doc:      "{\n  \"version\": 3,\n  \"port\": 80 80\n}",
			wantKind: KindInvalid, wantPos: "(line 3, column 14)",
		},
		{
			name:     "json truncated",
			filename: "k.json",
			doc:      "{\n  \"version\": 3,\n",
			wantKind: KindInvalid, wantPos: "(line 3, column 1)",
		},
		{
			name:     "json wrong type",
			filename: "k.json",
			doc:      "{\n  \"version\": 3,\n  \"endpoints\": [\n    {\"endpoint\": \"/a\", \"timeout\": 5, \"backend\": [{\"url_pattern\": \"/x\", \"host\": [\"h:80\"]}]}\n  ]\n}",
			wantPath: "endpoints[0].timeout", wantKind: KindInvalid, wantPos: "(line 4, column 35)",
		},
		{
			name:     "json unknown key",
			filename: "k.json",
			doc:      "{\n\t\"version\": 3,\n\t\"prot\": 8080\n}",
			wantPath: "prot", wantKind: KindUnsupported, wantPos: "(line 3, column 10)",
		},
		{
			name:     "json column counts characters",
			filename: "k.json",
			doc:      "{\"name\": \"é\", \"version\": 3, \"port\": \"x\"}",
			wantPath: "port", wantKind: KindInvalid, wantPos: "(line 1, column 37)",
		},
		{
			name:     "yaml syntax",
			filename: "k.yaml",
			doc:      "version: 3\nendpoints:\n  - endpoint: /a\n    method: GET: POST\n",
			wantKind: KindInvalid, wantPos: "(line 4)",
		},
		{
			name:     "yaml wrong type",
			filename: "k.yaml",
			doc:      "version: 3\nhost: [\"http://h\"]\nendpoints:\n  - endpoint: /a\n    concurrent_calls: many\n    backend:\n      - url_pattern: /x\n",
			wantPath: "endpoints[0].concurrent_calls", wantKind: KindInvalid, wantPos: "(line 5, column 23)",
		},
		{
			name:     "yaml validation violation",
			filename: "k.yml",
			doc:      "version: 3\nhost: [\"http://h\"]\nendpoints:\n  - endpoint: /a\n    backend:\n      - url_pattern: /x\n        host:\n          - ok:80\n          - amqp://q\n",
			wantPath: "endpoints[0].backend[0].host[1]", wantKind: KindInvalid, wantPos: "(line 9, column 13)",
		},
		{
			name:     "yaml missing key points at its object",
			filename: "k.yml",
			doc:      "version: 3\nhost: [\"http://h\"]\nendpoints:\n  - endpoint: /a\n    backend:\n      - method: GET\n",
			wantPath: "endpoints[0].backend[0].url_pattern", wantKind: KindRequired, wantPos: "(line 6, column 9)",
		},
		{
			name:     "yaml duplicate key",
			filename: "k.yml",
			doc:      "version: 3\nversion: 3\n",
			wantPath: "version", wantKind: KindDuplicate, wantPos: "(line 2, column 10)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vs := violationsOf(t, tc.filename, tc.doc)
			if len(vs) != 1 {
				t.Fatalf("got %d violations, want 1: %v", len(vs), vs)
			}
			v := vs[0]
			if v.GetPath() != tc.wantPath || v.GetKind() != tc.wantKind {
				t.Errorf("got %s %s, want %s %s", v.GetPath(), v.GetKind(), tc.wantPath, tc.wantKind)
			}
			if !strings.Contains(v.GetDetail(), tc.wantPos) {
				t.Errorf("detail %q does not contain %q", v.GetDetail(), tc.wantPos)
			}
		})
	}
}

func TestDecodeUnsupportedFormat(t *testing.T) {
	t.Parallel()
	got := pairsOf(violationsOf(t, "krakend.hcl", `version = 3`))
	if diff := cmp.Diff([]pair{{"", KindUnsupported}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeDetails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key lists allowed keys", conf(`"portt": 1`), "allowed keys: $schema, allow_insecure_connections,"},
		{"legacy key names v3 key", conf("", ep("/a", `"headers_to_pass": ["A"]`)), `config version 3 uses "input_headers"`},
		{"unsupported namespace lists supported ones", conf("", ep("/a", `"extra_config": {"auth/api-keys": {}}`)),
			"supported here: apigw/jwt, auth/signer, auth/validator, modifier/lua-endpoint, modifier/lua-proxy, proxy, qos/ratelimit/router, security/bot-detector, telemetry/opencensus, telemetry/opentelemetry, validation/cel, validation/json-schema"},
		{"alias named with its v3 name", conf("", ep("/a", `"extra_config": {"github_com/devopsfaith/krakend-cors": {}}`)),
			`"github_com/devopsfaith/krakend-cors" (security/cors) is not supported at this level`},
		{"unsupported value lists allowed values", conf("", ep("/a", `"output_encoding": "fast-json"`)),
			"allowed: json, json-collection, string, no-op, negotiate, xml, yaml"},
		{"route conflict names both endpoints", conf("", ep("/a/{id}", ""), ep("/a/{name}", "")),
			"GET /a/{name} conflicts with endpoints[0] (GET /a/{id})"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vs := violationsOf(t, "k.json", tc.doc)
			if len(vs) != 1 || !strings.Contains(vs[0].GetDetail(), tc.want) {
				t.Errorf("violations %v: want one whose detail contains %q", vs, tc.want)
			}
		})
	}
}

func TestComparePaths(t *testing.T) {
	t.Parallel()
	ordered := []string{
		"",
		"endpoints[2]",
		"endpoints[2].backend[0].host[0]",
		"endpoints[2].endpoint",
		"endpoints[10]",
		`endpoints[10].extra_config["a.b"].x`,
		`endpoints[10].extra_config["b"]`,
		"host[0]",
		"version",
	}
	for i := 0; i+1 < len(ordered); i++ {
		if c := comparePaths(ordered[i], ordered[i+1]); c >= 0 {
			t.Errorf("comparePaths(%q, %q) = %d, want < 0", ordered[i], ordered[i+1], c)
		}
	}
	if got := parentPath(`a.extra_config["x.y"].z`); got != `a.extra_config["x.y"]` {
		t.Errorf("parentPath = %q", got)
	}
}

// TestYAMLCoreSchema pins the YAML 1.2 behaviour KrakenD users get from
// KrakenD itself (yaml.v3): y/n/on/off/yes/no are strings, and anchors,
// aliases and merge keys work.
func TestYAMLCoreSchema(t *testing.T) {
	t.Parallel()
	doc := `
version: 3
host: [backend:8080]
endpoints:
  - endpoint: /a
    extra_config:
      proxy:
        static:
          data: {y: 1, "on": 2, n: no, big: 12345678901234567890, f: 1.0}
    backend:
      - &common
        url_pattern: /common
        group: g
      - <<: *common
        group: other
`
	c, err := Compile("k.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Snapshot.GetEndpoints()[0]
	if got, want := string(e.GetStatic().GetData()), `{"big":12345678901234567000,"f":1,"n":"no","on":2,"y":1}`; got != want {
		t.Errorf("static data = %s, want %s", got, want)
	}
	b := e.GetBackends()
	if len(b) != 2 || b[1].GetUrlPattern() != "/common" || b[1].GetGroup() != "other" || b[0].GetGroup() != "g" {
		t.Errorf("merge key not applied: %v", b)
	}

	got := pairsOf(violationsOf(t, "k.yaml", "version: 3\nextra_config:\n  telemetry/logging:\n    stdout: yes\n"))
	if diff := cmp.Diff([]pair{{`extra_config["telemetry/logging"].stdout`, KindInvalid}}, got); diff != "" {
		t.Errorf("yes is a string in YAML 1.2 (-want +got):\n%s", diff)
	}
}
