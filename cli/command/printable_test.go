package command

import "testing"

func TestPrintable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"edge-1":                  "edge-1",
		"edge-\x1b[31mred\x1b[0m": `edge-\x1b[31mred\x1b[0m`,
		"title\x1b]0;pwned\x07":   `title\x1b]0;pwned\a`,
		"cr\rlf\n":                `cr\rlf\n`,
		"c1\u009b2J":              `c1\u009b2J`,
		"bidi\u202egnp.exe":       `bidi\u202egnp.exe`,
		"bad utf8 \xff":           `bad utf8 \xff`,
		"ünïcode ok":              "ünïcode ok",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
