package aggregate_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/edge/aggregate"
)

// TestParsePropagated reads sequential_propagated_params as lura's
// sequential merger does: every respN[_field] match, lura's key names, and
// backends past the endpoint's ignored.
func TestParsePropagated(t *testing.T) {
	got := aggregate.ParsePropagated([]string{"resp0_first.foo", "Resp1", "resp0_a resp1_b", "resp9_x", "nothing"}, 3)
	want := []aggregate.Propagated{
		{Backend: 0, Path: []string{"first", "foo"}, Key: "Resp0_first.foo"},
		{Backend: 1, Path: []string{""}, Key: "Resp1", Full: true},
		{Backend: 0, Path: []string{"a"}, Key: "Resp0_a"},
		{Backend: 1, Path: []string{"b"}, Key: "Resp1_b"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
