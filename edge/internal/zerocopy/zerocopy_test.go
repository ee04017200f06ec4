package zerocopy

import "testing"

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := []byte("hello")
	if s := String(b); s != "hello" {
		t.Errorf("String = %q", s)
	}
	if got := Bytes("world"); string(got) != "world" || len(got) != 5 {
		t.Errorf("Bytes = %q", got)
	}
	if String(nil) != "" || len(Bytes("")) != 0 {
		t.Error("empty views are not empty")
	}
}
