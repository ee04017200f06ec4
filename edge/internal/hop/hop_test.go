package hop

import "testing"

func TestIs(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"connection", "Keep-Alive", "TRANSFER-ENCODING", "te", "Proxy-Connection"} {
		if !Is([]byte(name)) {
			t.Errorf("Is(%q) = false", name)
		}
	}
	for _, name := range []string{"Content-Type", "Age", "Tee", "", "Connections"} {
		if Is([]byte(name)) {
			t.Errorf("Is(%q) = true", name)
		}
	}
}
