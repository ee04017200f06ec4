package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// largeConfig returns a valid configuration with n endpoints, minified (one
// line) or pretty-printed.
func largeConfig(tb testing.TB, n int, minified bool) []byte {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`{"version":3,"host":["http://127.0.0.1:8080"],"endpoints":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"endpoint":"/api/v1/resource%d/{id}","method":"GET","backend":[{"url_pattern":"/r%d/{id}","allow":["a","b"]}]}`, i, i)
	}
	b.WriteString(`]}`)
	if minified {
		return []byte(b.String())
	}
	var v any
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		tb.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkCompileLarge validates and compiles 10,000 and 50,000 endpoints,
// minified and pretty-printed. The targets (issue 16) are under 1 s and 5 s
// per operation in any formatting.
func BenchmarkCompileLarge(b *testing.B) {
	for _, n := range []int{10000, 50000} {
		for _, minified := range []bool{true, false} {
			format := "pretty"
			if minified {
				format = "minified"
			}
			doc := largeConfig(b, n, minified)
			b.Run(fmt.Sprintf("endpoints=%d/%s", n, format), func(b *testing.B) {
				b.SetBytes(int64(len(doc)))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := Compile("krakend.json", doc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
