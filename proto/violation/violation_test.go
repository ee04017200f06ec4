package violation

import (
	"regexp"
	"testing"
)

// TestKindsAreSnakeCase: kinds are wire values; they stay lowercase
// snake_case and unique.
func TestKindsAreSnakeCase(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[Kind]bool{}
	for _, k := range Kinds() {
		if !re.MatchString(k.String()) || seen[k] {
			t.Errorf("kind %q: not snake_case or listed twice", k)
		}
		seen[k] = true
	}
}
