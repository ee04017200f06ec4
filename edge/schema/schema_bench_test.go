package schema_test

import (
	"strings"
	"testing"
)

func BenchmarkValidate(b *testing.B) {
	v := mustNew(b, userSchema)
	items := make([]string, 50)
	for i := range items {
		items[i] = validUser
	}
	listSchema := `{"type":"array","items":` + userSchema + `}`
	lv := mustNew(b, listSchema)
	benches := []struct {
		name string
		doc  func([]byte) error
		body string
	}{
		{"small_valid", v.Validate, validUser},
		{"small_invalid", v.Validate, `{"name":"Ada","email":"x"}`},
		{"list50_valid", lv.Validate, "[" + strings.Join(items, ",") + "]"},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = bc.doc(body)
				}
			})
		})
	}
}
