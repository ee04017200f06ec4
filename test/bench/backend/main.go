// Command backend is the upstream for the load benchmarks: a fasthttp server
// answering fixed bodies from memory, so that it costs as little CPU as
// possible and the edge is what the benchmark measures. It prints one JSON
// line {"message":"listening","addr":"…"} once bound.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	flag.Parse()

	small := []byte(`{"id":42,"name":"Ada Lovelace","email":"ada@example.com","active":true,"score":97.5,"tags":["math","engines"]}`)
	users := []byte(`{"user":{"id":42,"name":"Ada"},"plan":"pro"}`)
	orders := []byte(`{"orders":[{"id":1,"total":12.5},{"id":2,"total":99}],"count":2}`)
	prefs := []byte(`{"theme":"dark","lang":"en","notifications":{"email":true,"sms":false}}`)
	big := bigBody(20 << 10)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "{\"message\":\"listening\",\"addr\":%q}\n", ln.Addr().String())

	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			switch string(ctx.Path()) {
			case "/small":
				ctx.SetBody(small)
			case "/users":
				ctx.SetBody(users)
			case "/orders":
				ctx.SetBody(orders)
			case "/prefs":
				ctx.SetBody(prefs)
			case "/big":
				ctx.SetBody(big)
			default:
				ctx.SetStatusCode(fasthttp.StatusNotFound)
			}
		},
		NoDefaultServerHeader: true,
	}
	log.Fatal(srv.Serve(ln))
}

// bigBody builds a JSON object of about n bytes: a few top-level fields and
// an array of records, the shape an allow-filter typically trims.
func bigBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":7,"name":"catalogue","currency":"EUR","items":[`)
	for i := 0; b.Len() < n-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"sku":"SKU-`)
		b.WriteString(strconv.Itoa(i))
		b.WriteString(`","price":`)
		b.WriteString(strconv.Itoa(i*7 + 3))
		b.WriteString(`,"stock":`)
		b.WriteString(strconv.Itoa(i % 13))
		b.WriteString(`,"description":"a fairly long description of the item"}`)
	}
	b.WriteString(`],"internal":{"cost_center":"X1","owner":"ops"}}`)
	return b.Bytes()
}
