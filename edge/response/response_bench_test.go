package response

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// body20KB is a ~20 KB object: scalar fields, nested objects and an array
// of records, the shape an allow filter usually trims.
var body20KB = func() []byte {
	var b strings.Builder
	b.WriteString(`{"id":12345,"name":"Ann \"the\" <admin>","active":true,"score":98.25,"profile":{"email":"a@example.com","phone":"+34 600 000 000","address":{"city":"Barcelona","zip":"08001","geo":{"lat":41.38,"lng":2.17}}}`)
	for i := 0; b.Len() < 12*1024; i++ {
		fmt.Fprintf(&b, `,"field_%03d":"lorem ipsum dolor sit amet %d consectetur adipiscing elit"`, i, i)
	}
	b.WriteString(`,"items":[`)
	for i := 0; b.Len() < 20*1024-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%05d","qty":%d,"price":%d.99,"tags":["a","b"]}`, i, i%7, i)
	}
	b.WriteString(`],"meta":{"total":250,"page":1}}`)
	return []byte(b.String())
}()

var allow20KB = []string{"id", "name", "profile.address.city", "profile.email", "meta.total", "items"}

func BenchmarkAllowFilter(b *testing.B) {
	for _, size := range []struct {
		name string
		body []byte
	}{{"small", []byte(smallBody)}, {"20KB", body20KB}} {
		b.Run(size.name+"/fastjson", func(b *testing.B) {
			f, err := NewFormatter(&gatewayv1.Backend{Allow: allow20KB})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(size.body)))
			for b.Loop() {
				s := AcquireScratch(1)
				v, err := f.Decode(s, 0, size.body)
				if err != nil {
					b.Fatal(err)
				}
				s.Render(OutputJSON, f.Apply(s, 0, v), nil)
				ReleaseScratch(s)
			}
		})
		b.Run(size.name+"/encoding-json", func(b *testing.B) {
			wl := baselineAllowTree(allow20KB)
			b.ReportAllocs()
			b.SetBytes(int64(len(size.body)))
			for b.Loop() {
				m := baselineDecode(b, size.body)
				baselineAllowPrune(wl, m)
				if _, err := json.Marshal(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAllowFew is the load benchmark's allow filter: three scalar
// fields of a 20 KB body. scan is the allow-list scan (decodeAllowed),
// tree the full decode it replaces.
func BenchmarkAllowFew(b *testing.B) {
	for _, scan := range []bool{true, false} {
		name := "tree"
		if scan {
			name = "scan"
		}
		b.Run(name, func(b *testing.B) {
			f, err := NewFormatter(&gatewayv1.Backend{Allow: []string{"id", "name", "meta.total"}})
			if err != nil {
				b.Fatal(err)
			}
			f.allowScan = scan
			b.ReportAllocs()
			b.SetBytes(int64(len(body20KB)))
			for b.Loop() {
				s := AcquireScratch(1)
				v, err := f.Decode(s, 0, body20KB)
				if err != nil {
					b.Fatal(err)
				}
				s.Render(OutputJSON, f.Apply(s, 0, v), nil)
				ReleaseScratch(s)
			}
		})
	}
}

// BenchmarkPassthrough is the Identity fast path: validate and forward.
func BenchmarkPassthrough(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body20KB)))
	for b.Loop() {
		if !ValidObject(body20KB) {
			b.Fatal("invalid")
		}
	}
}

var mergeBodies = [][]byte{
	[]byte(`{"user":{"id":1,"name":"Ann","roles":["admin","dev"]},"updated":"2024-01-01T00:00:00Z","x":1}`),
	[]byte(smallBody),
	[]byte(`{"orders":[{"id":1,"total":10.5},{"id":2,"total":99}],"x":2,"count":2}`),
}

func BenchmarkMerge3(b *testing.B) {
	b.Run("fastjson", func(b *testing.B) {
		fs := make([]*Formatter, 3)
		for i, g := range []string{"", "profile", ""} {
			fs[i], _ = NewFormatter(&gatewayv1.Backend{Group: g, Deny: []string{"secret"}})
		}
		parts := make([]*fastjson.Value, 3)
		b.ReportAllocs()
		for b.Loop() {
			s := AcquireScratch(3)
			for i, f := range fs {
				v, err := f.Decode(s, i, mergeBodies[i])
				if err != nil {
					b.Fatal(err)
				}
				parts[i] = f.Apply(s, i, v)
			}
			s.Render(OutputJSON, Merge(s, parts), nil)
			ReleaseScratch(s)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := map[string]any{}
			for i, body := range mergeBodies {
				m := baselineDecode(b, body)
				delete(m, "secret")
				if i == 1 {
					m = map[string]any{"profile": m}
				}
				for k, v := range m {
					out[k] = v
				}
			}
			if _, err := json.Marshal(out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var flatmapBody = func() []byte {
	var b strings.Builder
	b.WriteString(`{"meta":{"page":1},"users":[`)
	for i := range 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"user %d","password":"secret","profile":{"city":"c%d"}}`, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}()

func BenchmarkFlatmap(b *testing.B) {
	ops := []*gatewayv1.FlatmapOp{
		{Type: "del", Args: []string{"users.*.password"}},
		{Type: "move", Args: []string{"users.*.profile.city", "users.*.city"}},
		{Type: "move", Args: []string{"meta.page", "page"}},
	}
	b.Run("fastjson", func(b *testing.B) {
		f, err := NewFormatter(&gatewayv1.Backend{Flatmap: ops})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(flatmapBody)))
		for b.Loop() {
			s := AcquireScratch(1)
			v, err := f.Decode(s, 0, flatmapBody)
			if err != nil {
				b.Fatal(err)
			}
			s.Render(OutputJSON, f.Apply(s, 0, v), nil)
			ReleaseScratch(s)
		}
	})
	// The baseline hand-codes the three operations on maps; KrakenD's
	// flatmap tree (flatten, edges, re-expand) costs more than this.
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(flatmapBody)))
		for b.Loop() {
			m := baselineDecode(b, flatmapBody)
			for _, u := range m["users"].([]any) {
				um := u.(map[string]any)
				delete(um, "password")
				p := um["profile"].(map[string]any)
				um["city"] = p["city"]
				delete(p, "city")
			}
			meta := m["meta"].(map[string]any)
			m["page"] = meta["page"]
			delete(meta, "page")
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func baselineDecode(b *testing.B, body []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		b.Fatal(err)
	}
	return m
}

// baselineAllowTree and baselineAllowPrune are lura's allow filter
// (proxy/formatter.go), the code KrakenD runs.
func baselineAllowTree(list []string) map[string]any {
	wl := map[string]any{}
	for _, k := range list {
		fields := strings.Split(k, ".")
		p := wl
		i := 0
		for ; i < len(fields)-1; i++ {
			c, ok := p[fields[i]].(map[string]any)
			if !ok {
				break
			}
			p = c
		}
		for ; i < len(fields)-1; i++ {
			c := map[string]any{}
			p[fields[i]] = c
			p = c
		}
		p[fields[len(fields)-1]] = true
	}
	return wl
}

func baselineAllowPrune(wl, in map[string]any) bool {
	canDelete := true
	for k, v := range in {
		del := true
		if sub, ok := wl[k]; ok {
			if subWl, ok := sub.(map[string]any); ok {
				if subIn, ok := v.(map[string]any); ok && !baselineAllowPrune(subWl, subIn) {
					del = false
				}
			} else {
				del = false
			}
		}
		if del {
			delete(in, k)
		} else {
			canDelete = false
		}
	}
	return canDelete
}
