package ascii

import (
	"strings"
	"testing"
)

func TestEqualFold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"Connection", "connection", true},
		{"CONNECTION", "connection", true},
		{"", "", true},
		{"te", "TE", true},
		{"te", "tf", false},
		{"te", "te ", false},
		{"[", "{", false}, // differ by 0x20 but are not letters
		{"@", "`", false},
		{"\xc3\x89", "\xc3\xa9", false}, // É and é: not ASCII
	}
	for _, tc := range tests {
		if got := EqualFold([]byte(tc.a), tc.b); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if want := tc.want; strings.EqualFold(tc.a, tc.b) != want && isASCII(tc.a+tc.b) {
			t.Errorf("%q %q: disagrees with strings.EqualFold on ASCII input", tc.a, tc.b)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
