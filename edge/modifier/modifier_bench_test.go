package modifier_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func BenchmarkModifier(b *testing.B) {
	benches := []struct {
		name string
		mod  *gatewayv1.MartianModifier
	}{
		{"header", header("X-Tenant", "acme")},
		{"query", query("version", "2")},
		{"body", body("application/json", `{"replaced":true}`)},
		{"fifo5", fifo(true, nil,
			header("X-Tenant", "acme"),
			header("X-Other", "1"),
			blacklist([]string{"X-Secret", "Cookie"}),
			query("version", "2", req...),
			body("application/json", `{"replaced":true}`),
		)},
	}
	for _, bc := range benches {
		m, err := modifier.New(bc.mod)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name+"/request", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var rq fasthttp.Request
				for pb.Next() {
					rq.SetRequestURI("http://10.0.0.1:8080/users/1?a=1&version=1")
					rq.Header.Set("X-Secret", "s")
					if err := m.ModifyRequest(&rq); err != nil {
						b.Fatal(err)
					}
					rq.Reset()
				}
			})
		})
		b.Run(bc.name+"/response", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var rs fasthttp.Response
				for pb.Next() {
					rs.Header.Set("X-Secret", "s")
					rs.SetBodyString(`{"from":"backend"}`)
					if err := m.ModifyResponse(&rs, nil); err != nil {
						b.Fatal(err)
					}
					rs.Reset()
				}
			})
		})
	}
}
