package cel_test

import (
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/apigw/gateway/edge/cel"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// BenchmarkCEL measures one evaluation of a stage: KrakenD's fixture
// request check (a header and the parameter, building req_headers and
// req_params) and a response check reading one field of a decoded body
// (building resp_data).
func BenchmarkCEL(b *testing.B) {
	now := time.Now()
	b.Run("request", func(b *testing.B) {
		c, err := cel.New(&gatewayv1.CelChecks{Request: []string{"'something' in req_headers['X-Header'] && int(req_params.Id) % 2 == 0"}})
		if err != nil {
			b.Fatal(err)
		}
		r := request("http://gw/cel/30", "X-Header", "something")
		b.ReportAllocs()
		for b.Loop() {
			in := inbound(r)
			if _, ok := c.CheckRequest(in, now); !ok {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("response", func(b *testing.B) {
		c, err := cel.New(&gatewayv1.CelChecks{Response: []string{"resp_data.address.city == 'Paris'"}})
		if err != nil {
			b.Fatal(err)
		}
		v := fastjson.MustParse(`{"id":1,"name":"alice","email":"a@example.com","tags":["x","y"],"address":{"city":"Paris","zip":"75001"}}`)
		b.ReportAllocs()
		for b.Loop() {
			res := cel.Result{Complete: true, Value: v}
			if _, ok := c.CheckResponse(&res, now); !ok {
				b.Fatal("rejected")
			}
		}
	})
}
