//go:build !race

package modifier_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
)

func TestModifierAllocs(t *testing.T) {
	m, err := modifier.New(fifo(false, nil,
		header("X-Tenant", "acme"),
		header("Host", "api.internal", req...),
		blacklist([]string{"X-Secret", "Cookie"}),
		query("version", "2", req...),
		body("application/json", `{"replaced":true}`),
	))
	if err != nil {
		t.Fatal(err)
	}
	var rq fasthttp.Request
	rq.SetRequestURI("http://10.0.0.1:8080/users/1?a=1&version=1")
	rq.Header.SetMethod(fasthttp.MethodPost)
	rq.Header.Set("X-Secret", "s")
	rq.SetBodyString(`{"orig":true}`)
	var rs fasthttp.Response
	rs.Header.Set("X-Secret", "s")
	rs.SetBodyString(`{"from":"backend"}`)

	if n := testing.AllocsPerRun(200, func() {
		if err := m.ModifyRequest(&rq); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ModifyRequest allocs = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() {
		if err := m.ModifyResponse(&rs, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ModifyResponse allocs = %v, want 0", n)
	}
}
