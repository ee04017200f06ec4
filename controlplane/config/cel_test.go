package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func celEndpoint(checks string, more string) string {
	s := `"extra_config": {"validation/cel": [` + checks + `]`
	if more != "" {
		s += ", " + more
	}
	return s + "}"
}

func TestValidateCELRules(t *testing.T) {
	t.Parallel()
	ns := `endpoints[0].extra_config["validation/cel"]`
	bns := `endpoints[0].backend[0].extra_config["validation/cel"]`
	backend := func(checks string) string {
		return conf("", `{"endpoint": "/a/{id}", "backend": [{"url_pattern": "/x", "extra_config": {"validation/cel": [`+checks+`]}}]}`)
	}
	checkRules(t, []rule{
		{"fixture checks", conf("", ep("/a/{id}", celEndpoint(`{"check_expr": "'something' in req_headers['X-Header']"},
			{"check_expr": "int(req_params.Id) % 2 == 0"}`, ""))), nil},
		{"long alias", conf("", ep("/a", `"extra_config": {"github.com/devopsfaith/krakend-cel": [{"check_expr": "req_method == 'GET'"}]}`)), nil},
		{"every variable", conf("", ep("/a", celEndpoint(`{"check_expr": "req_method == 'GET' && req_path != '' && size(req_params) >= 0 && size(req_headers) > 0 && size(req_querystring) >= 0 && now > ''"},
			{"check_expr": "resp_completed && resp_metadata_status == 0 && size(resp_metadata_headers) == 0 && has(resp_data.a)"}`, ""))), nil},
		{"syntax error", conf("", ep("/a", celEndpoint(`{"check_expr": "req_method =="}`, ""))), []pair{{ns + "[0].check_expr", KindInvalid}}},
		{"undeclared variable", conf("", ep("/a", celEndpoint(`{"check_expr": "req_method == 'GET'"}, {"check_expr": "resp_status == 200"}`, ""))),
			[]pair{{ns + "[1].check_expr", KindInvalid}}},
		{"type error", conf("", ep("/a", celEndpoint(`{"check_expr": "req_method + 1 == 2"}`, ""))), []pair{{ns + "[0].check_expr", KindInvalid}}},
		{"empty expression", conf("", ep("/a", celEndpoint(`{"check_expr": ""}`, ""))), []pair{{ns + "[0].check_expr", KindRequired}}},
		{"unknown key", conf("", ep("/a", celEndpoint(`{"check_expr": "req_method == 'GET'", "mod_expr": "x"}`, ""))), []pair{{ns + "[0].mod_expr", KindUnsupported}}},
		{"not a list", conf("", ep("/a", `"extra_config": {"validation/cel": {"check_expr": "req_method == 'GET'"}}`)), []pair{{ns, KindInvalid}}},
		{"not an object", conf("", ep("/a", celEndpoint(`"req_method == 'GET'"`, ""))), []pair{{ns + "[0]", KindInvalid}}},
		{"backend level", backend(`{"check_expr": "int(req_params.Id) % 3 == 0"}`), nil},
		{"backend syntax error", backend(`{"check_expr": "(("}`), []pair{{bns + "[0].check_expr", KindInvalid}}},
		{"no-op endpoint request check", conf("", ep("/a", `"output_encoding": "no-op", `+celEndpoint(`{"check_expr": "req_method == 'GET'"}`, ""))), nil},
		{"no-op endpoint response check", conf("", ep("/a", `"output_encoding": "no-op", `+celEndpoint(`{"check_expr": "resp_completed"}`, ""))),
			[]pair{{ns + "[0].check_expr", KindUnsupported}}},
		{"no-op endpoint backend check", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/x", "extra_config": {"validation/cel": [{"check_expr": "req_method == 'GET'"}]}}]}`),
			[]pair{{bns + "[0].check_expr", KindUnsupported}}},
		{"shadow backend", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x"}, {"url_pattern": "/y", "extra_config": {"proxy": {"shadow": true}, "validation/cel": [{"check_expr": "req_method == 'GET'"}]}}]}`),
			[]pair{{`endpoints[0].backend[1].extra_config["validation/cel"]`, KindUnsupported}}},
		{"not at service level", conf(`"extra_config": {"validation/cel": []}`, ep("/a", "")), []pair{{`extra_config["validation/cel"]`, KindUnsupported}}},
	})
}

func TestCELErrorText(t *testing.T) {
	t.Parallel()
	vs := violationsOf(t, "k.json", conf("", ep("/a", celEndpoint(`{"check_expr": "resp_status == 200"}`, ""))))
	if len(vs) != 1 || !strings.Contains(vs[0].GetDetail(), "undeclared reference to 'resp_status'") {
		t.Fatalf("violations %v: want CEL's undeclared reference message", vs)
	}
}

func TestCELWarnings(t *testing.T) {
	t.Parallel()
	ns := `endpoints[0].extra_config["validation/cel"]`
	got := warningsOf(t, conf("", ep("/a", celEndpoint(`{"check_expr": "now > '2020'"}, {"check_expr": "size(JWT) > 0"}`, ""))))
	want := []pair{{ns + "[0].check_expr", KindNoEffect}, {ns + "[1].check_expr", KindNoEffect}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestCompileCEL(t *testing.T) {
	t.Parallel()
	jwt := `"auth/validator": {"alg": "HS256", "jwk_url": "https://idp.example/jwks"}`
	doc := conf("",
		`{"endpoint": "/a/{id}", "backend": [{"url_pattern": "/x", "extra_config": {"validation/cel": [{"check_expr": "int(req_params.Id) % 3 == 0"}, {"check_expr": "resp_data.a == '1'"}]}}],
		`+celEndpoint(`{"check_expr": "'x' in req_headers"}, {"check_expr": "size(JWT.roles) > 1"}, {"check_expr": "resp_completed || req_method == 'GET'"}, {"check_expr": "now > ''"}`, jwt)+`}`,
		ep("/b", ""))
	c, err := Compile("k.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	eps := c.Snapshot.GetEndpoints()
	want := &gatewayv1.CelChecks{
		Request:  []string{"'x' in req_headers", "resp_completed || req_method == 'GET'"},
		Response: []string{"resp_completed || req_method == 'GET'"},
		Jwt:      []string{"size(JWT.roles) > 1"},
	}
	if diff := cmp.Diff(want, eps[0].GetCel(), protocmp.Transform()); diff != "" {
		t.Errorf("endpoint cel (-want +got):\n%s", diff)
	}
	wantB := &gatewayv1.CelChecks{Request: []string{"int(req_params.Id) % 3 == 0"}, Response: []string{"resp_data.a == '1'"}}
	if diff := cmp.Diff(wantB, eps[0].GetBackends()[0].GetCel(), protocmp.Transform()); diff != "" {
		t.Errorf("backend cel (-want +got):\n%s", diff)
	}
	if eps[1].GetCel() != nil {
		t.Errorf("an endpoint without the namespace got %v", eps[1].GetCel())
	}
	found := false
	for _, f := range c.Snapshot.GetFeatures() {
		found = found || f == feature.ValidationCEL
	}
	if !found {
		t.Errorf("features %v lack %s", c.Snapshot.GetFeatures(), feature.ValidationCEL)
	}
}

func TestCompileCELWithoutJWTValidator(t *testing.T) {
	t.Parallel()
	// Without auth/validator KrakenD has no rejecter: a JWT-only
	// expression never runs (warned) and is not compiled.
	c, err := Compile("k.json", []byte(conf("", ep("/a", celEndpoint(`{"check_expr": "size(JWT) > 0"}`, "")))))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Snapshot.GetEndpoints()[0].GetCel(); got != nil {
		t.Errorf("cel = %v, want none", got)
	}
}
