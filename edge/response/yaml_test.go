package response

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fastjson"
	"go.yaml.in/yaml/v3"
)

// TestYAMLStringsAsYAMLv3: KrakenD renders YAML with yaml.v3 (gin's
// renderer); each string value must come out as yaml.v3 writes it (plain,
// single- or double-quoted).
func TestYAMLStringsAsYAMLv3(t *testing.T) {
	for _, str := range []string{
		"v: x", " lead", "trail ", "é", "a #b", "a#b", "1.5", "0x1F", "12:30", "1e5", "1a", "-type", "-1", "---", "- x",
		"y", "yes", "No", "null", "~", ".inf", "-.5", "+1", "1_000", "a'b", "'q'", "\"dq\"", "@at", "`tick`", "%p", "!bang",
		"&amp", "*star", "[x", "{x", "|x", ">x", "?x", "? x", ":x", "a:", "tab\there", "emoji 🙂", "0o17", "0b101", "1.2.3", "<<",
		"é<>&\u2028", "a\u2029\u2028", "a \u2029", "\u2028", "a\u0085b", "a \u2028b",
	} {
		want, err := yaml.Marshal(map[string]string{"k": str})
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.Marshal(map[string]string{"k": str})
		got := appendYAMLDoc(nil, mustParse(t, string(doc)))
		if string(got) != string(want) {
			t.Errorf("%q: got %q, yaml.v3 writes %q", str, got, want)
		}
	}
}

func mustParse(t *testing.T, s string) *fastjson.Value {
	v, err := fastjson.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
