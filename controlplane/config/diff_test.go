package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func compileDoc(t *testing.T, doc string) *gatewayv1.Snapshot {
	t.Helper()
	c, err := Compile("k.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c.Snapshot
}

func TestDiff(t *testing.T) {
	t.Parallel()
	base := conf("",
		`{"endpoint": "/a", "backend": [{"url_pattern": "/a", "mapping": {"x": "y"}}]}`,
		ep("/b", ""),
		ep("/c", ""))
	tests := []struct {
		name     string
		old, new string // documents; "" is a nil snapshot
		want     []*gatewayv1.Change
	}{
		{"identical", base, base, nil},
		{"both nil", "", "", nil},
		{"from nothing", "", conf("", ep("/a", ""), ep("/b", `"method": "POST"`)), []*gatewayv1.Change{
			{Op: ChangeAdded, Subject: "service"},
			{Op: ChangeAdded, Subject: "GET /a"},
			{Op: ChangeAdded, Subject: "POST /b"},
		}},
		{"to nothing", conf("", ep("/a", "")), "", []*gatewayv1.Change{
			{Op: ChangeRemoved, Subject: "service"},
			{Op: ChangeRemoved, Subject: "GET /a"},
		}},
		{"service fields", base, conf(`"port": 9000, "extra_config": {"router": {"return_error_msg": true}}`,
			`{"endpoint": "/a", "backend": [{"url_pattern": "/a", "mapping": {"x": "y"}}]}`, ep("/b", ""), ep("/c", "")),
			[]*gatewayv1.Change{
				{Op: ChangeChanged, Subject: "service", Fields: []string{"port", "router.return_error_msg"}},
			}},
		{"endpoint fields", base, conf("",
			`{"endpoint": "/a", "timeout": "3s", "input_headers": ["X-A"],
			  "backend": [{"url_pattern": "/a2", "mapping": {"x": "z", "w": "v"}}, {"url_pattern": "/more"}]}`,
			ep("/b", ""), ep("/c", "")),
			[]*gatewayv1.Change{
				{Op: ChangeChanged, Subject: "GET /a", Fields: []string{
					"backends[0].url_pattern",
					`backends[0].mapping["w"]`,
					`backends[0].mapping["x"]`,
					"backends[1]",
					"timeout_ms",
					"input_headers",
				}},
			}},
		{"added, removed and reordered", base, conf("", ep("/c", ""), ep("/d", ""), `{"endpoint": "/a", "backend": [{"url_pattern": "/a", "mapping": {"x": "y"}}]}`),
			[]*gatewayv1.Change{
				{Op: ChangeAdded, Subject: "GET /d"},
				{Op: ChangeRemoved, Subject: "GET /b"},
			}},
		{"method change is a new endpoint", base, conf("",
			`{"endpoint": "/a", "backend": [{"url_pattern": "/a", "mapping": {"x": "y"}}]}`, ep("/b", `"method": "PUT"`), ep("/c", "")),
			[]*gatewayv1.Change{
				{Op: ChangeAdded, Subject: "PUT /b"},
				{Op: ChangeRemoved, Subject: "GET /b"},
			}},
		{"namespace values", conf("", backendNS(`"modifier/martian": {"header.Modifier": {"name": "X-A", "value": "1"}},
			"qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 1}`)),
			conf("", backendNS(`"modifier/martian": {"header.Modifier": {"name": "X-A", "value": "2"}},
			"qos/circuit-breaker": {"interval": 60, "timeout": 20, "max_errors": 1}`)),
			[]*gatewayv1.Change{
				{Op: ChangeChanged, Subject: "GET /a", Fields: []string{
					"backends[0].circuit_breaker.timeout_ms",
					"backends[0].martian.header_modifier.value",
				}},
			}},
		{"namespace replaced", conf("", backendNS(`"modifier/martian": {"header.Modifier": {"name": "X-A"}}`)),
			conf("", backendNS(`"modifier/martian": {"querystring.Modifier": {"name": "q"}}`)),
			[]*gatewayv1.Change{
				{Op: ChangeChanged, Subject: "GET /a", Fields: []string{
					"backends[0].martian.scope",
					"backends[0].martian.header_modifier",
					"backends[0].martian.querystring_modifier",
				}},
			}},
		{"service namespace added", conf("", ep("/a", "")), conf(`"extra_config": {"security/cors": {}}`, ep("/a", "")),
			[]*gatewayv1.Change{{Op: ChangeChanged, Subject: "service", Fields: []string{"cors"}}}},
		{"static added", base, conf("",
			`{"endpoint": "/a", "backend": [{"url_pattern": "/a", "mapping": {"x": "y"}}]}`, ep("/b", ""),
			ep("/c", `"extra_config": {"proxy": {"static": {"data": {}}}}`)),
			[]*gatewayv1.Change{
				{Op: ChangeChanged, Subject: "GET /c", Fields: []string{"static"}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var old, new *gatewayv1.Snapshot
			if tc.old != "" {
				old = compileDoc(t, tc.old)
			}
			if tc.new != "" {
				new = compileDoc(t, tc.new)
			}
			got := Diff(old, new)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffSchemaVersion(t *testing.T) {
	t.Parallel()
	a := compileDoc(t, conf("", ep("/a", "")))
	b := compileDoc(t, conf("", ep("/a", "")))
	b.SchemaVersion = SchemaVersion + 1
	want := []*gatewayv1.Change{{Op: ChangeChanged, Subject: "service", Fields: []string{"schema_version"}}}
	if diff := cmp.Diff(want, Diff(a, b), protocmp.Transform()); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
}
