package response

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// validCases are checked against encoding/json.Valid, KrakenD's decoder.
var validCases = []string{
	``, ` `, `{}`, ` {} `, "\t[\r\n]\n", `[`, `]`, `{`, `}`, `[1,]`, `{"a":1,}`, `[,1]`, `{,}`,
	`{"a"}`, `{"a":}`, `{"a" 1}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `{} {}`, `1 2`, `{}x`,
	`0`, `-0`, `01`, `-01`, `1.`, `.1`, `1.5`, `1e`, `1e+`, `1E-7`, `1e07`, `+1`, `-`, `--1`, `0x1`,
	`1.5e3`, `-12.34E+56`, `NaN`, `Infinity`, `-Infinity`, `inf`,
	`true`, `false`, `null`, `tru`, `nul`, `fals`, `True`, `nulll`, `[true,false,null]`,
	`""`, `"`, `"abc`, `"a\"b"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\a"`, `"\x"`, `"\'"`, `"\`,
	`"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u12"`, `"\u"`, `"\ud800"`, `"\uDFFF\uD800"`,
	"\"\x13\\b\"", "\"\\b\x13\"", "\"a\x01\"", "\"\x1f\"", "\"\x00\"", "\"\x7f\"", "\"\xff\xfe\"",
	"\"\xc3\xa9\"", "\"\xe2\x80\xa8\"", "{\"\x13\\n\":1}", "{\"k\\n\x01\":1}", "{\"a\":\"x\x01\"}",
	"\"abcdefgh\x01ijklmnop\"", "\"abcdefghijklmnop\\\"qrstuvwx\"", "\"abcdefg\\", "\"abcdefghijklmno",
	`{"a":[{"b":{"c":[1,2,{"d":null}]}}]}`, `[[[[]]]]`, `[[[[]]]`, `{"a":{"b":[}]}`, `[{]}`, `{[]}`,
	"\x00", "{}\x00", "\u00a0{}", "{\u00a0}", "\v{}", "\f{}",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat(`[{"a":`, 40) + `0` + strings.Repeat(`}]`, 40),
	smallBody,
}

func TestValidJSON(t *testing.T) {
	t.Parallel()
	for _, in := range append(validCases, string(body20KB), string(body20KB[:len(body20KB)-1])) {
		want := json.Valid([]byte(in))
		if got, _ := validJSON([]byte(in)); got != want {
			t.Errorf("validJSON(%.80q) = %v, want %v (encoding/json.Valid)", in, got, want)
		}
	}
}

// TestValidJSONStricterThanFastjson shows what fastjson.ValidateBytes let
// through that encoding/json rejects, and that the decoder now rejects it.
func TestValidJSONStricterThanFastjson(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"{\"a\":\"\x13\\b\"}", "{\"\x01\\n\":1}"} {
		if json.Valid([]byte(in)) {
			t.Fatalf("encoding/json accepts %q", in)
		}
		if ok, _ := validJSON([]byte(in)); ok {
			t.Errorf("validJSON(%q) = true, want false", in)
		}
		f, err := NewFormatter(nil)
		if err != nil {
			t.Fatal(err)
		}
		s := AcquireScratch(1)
		if _, err := f.Decode(s, 0, []byte(in)); err == nil {
			t.Errorf("Decode(%q) accepted it", in)
		}
		ReleaseScratch(s)
		if ValidObject([]byte(in)) {
			t.Errorf("ValidObject(%q) = true", in)
		}
	}
}

func TestValidJSONAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { validJSON(body20KB) }); n != 0 {
		t.Errorf("validJSON allocates %v times", n)
	}
}

// FuzzValidJSON checks validJSON against encoding/json.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, in := range validCases[:len(validCases)-5] {
		f.Add([]byte(in))
	}
	f.Add(body20KB[:512])
	f.Fuzz(func(t *testing.T, in []byte) {
		want := json.Valid(in)
		if got, _ := validJSON(in); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json.Valid = %v", in, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	for _, size := range []struct {
		name string
		body []byte
	}{{"small", []byte(smallBody)}, {"20KB", body20KB}} {
		b.Run(size.name+"/ours", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(size.body)))
			for b.Loop() {
				if ok, _ := validJSON(size.body); !ok {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(size.name+"/fastjson", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(size.body)))
			for b.Loop() {
				if fastjson.ValidateBytes(size.body) != nil {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(size.name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(size.body)))
			for b.Loop() {
				if !json.Valid(size.body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
