package modifier

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"
)

// failing is a modifier that fails: none of the supported martian
// modifiers can fail on a well-formed message, so fifo.Group's error
// handling is exercised with this one.
type failing struct{ err error }

func (f failing) modifyRequest(*fasthttp.Request) error                      { return f.err }
func (f failing) modifyResponse(*fasthttp.Response, *fasthttp.Request) error { return f.err }

func TestGroupErrors(t *testing.T) {
	t.Parallel()
	errA, errB := errors.New("a"), errors.New("b")
	setX := &headerModifier{name: []byte("X-Set"), value: []byte("1")}
	tests := []struct {
		name      string
		aggregate bool
		wantErrs  []error
		wantSet   bool // the modifier after the failures ran
	}{
		{"stop at the first error", false, []error{errA}, false},
		{"aggregate errors and continue", true, []error{errA, errB}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rg := &requestGroup{aggregate: tc.aggregate, mods: []requestModifier{failing{errA}, failing{errB}, setX}}
			sg := &responseGroup{aggregate: tc.aggregate, mods: []responseModifier{failing{errA}, failing{errB}, setX}}
			m := &Modifier{req: rg, resp: sg}

			var req fasthttp.Request
			check(t, m.ModifyRequest(&req), tc.wantErrs)
			if got := req.Header.Peek("X-Set") != nil; got != tc.wantSet {
				t.Errorf("request: later modifier ran = %v, want %v", got, tc.wantSet)
			}
			var resp fasthttp.Response
			check(t, m.ModifyResponse(&resp, nil), tc.wantErrs)
			if got := resp.Header.Peek("X-Set") != nil; got != tc.wantSet {
				t.Errorf("response: later modifier ran = %v, want %v", got, tc.wantSet)
			}
		})
	}
}

// check compares the errors err wraps, in order, with want.
func check(t *testing.T, err error, want []error) {
	t.Helper()
	var got []error
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		got = multi.Unwrap()
	} else if err != nil {
		got = []error{err}
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
		t.Errorf("errors (-want +got)\n%s", diff)
	}
}

// TestNestedGroupErrors checks martian's nesting: an inner group that
// stops still lets an aggregating outer group continue.
func TestNestedGroupErrors(t *testing.T) {
	t.Parallel()
	errA := errors.New("a")
	setX := &headerModifier{name: []byte("X-Set"), value: []byte("1")}
	inner := &requestGroup{mods: []requestModifier{failing{errA}, setX}}
	outer := &requestGroup{aggregate: true, mods: []requestModifier{inner, &headerModifier{name: []byte("X-After"), value: []byte("1")}}}
	var req fasthttp.Request
	check(t, (&Modifier{req: outer}).ModifyRequest(&req), []error{errA})
	if req.Header.Peek("X-Set") != nil || req.Header.Peek("X-After") == nil {
		t.Errorf("headers = %q; want X-After only", req.Header.Header())
	}
}
