package config

import (
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// naivePosition is the definition lineIndex.at must agree with.
func naivePosition(data []byte, off int) position {
	line, start := 1, 0
	for i := 0; i < off; i++ {
		if data[i] == '\n' {
			line, start = line+1, i+1
		}
	}
	return position{line: line, col: utf8.RuneCount(data[start:off]) + 1}
}

func TestLineIndexMatchesDefinition(t *testing.T) {
	t.Parallel()
	data := []byte("{\"é\": 1,\n  \"ü\":\n\n [1, \"日本\", 3]}\n")
	rng := rand.New(rand.NewSource(1))
	// Increasing order (the parser's), then random order (syntax errors
	// and out-of-order callers).
	var offs []int
	for i := 0; i <= len(data); i++ {
		if i == len(data) || utf8.RuneStart(data[i]) {
			offs = append(offs, i)
		}
	}
	random := append([]int(nil), offs...)
	rng.Shuffle(len(random), func(i, j int) { random[i], random[j] = random[j], random[i] })
	for _, order := range [][]int{offs, random, append(sort.IntSlice(nil), offs...)} {
		li := newLineIndex(data)
		for _, off := range order {
			if got, want := li.at(off), naivePosition(data, off); got != want {
				t.Fatalf("at(%d) = %v, want %v", off, got, want)
			}
		}
	}
}

// TestMinifiedPositions checks positions deep into a one-line document.
func TestMinifiedPositions(t *testing.T) {
	t.Parallel()
	doc := largeConfig(t, 300, true)
	doc = append(doc[:len(doc)-2:len(doc)-2], []byte(`,{"endpoint":"/x","backend":[{"url_pattern":"/y","bogus":1}]}]}`)...)
	vs := violationsOf(t, "krakend.json", string(doc))
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %v", vs)
	}
	col := len(doc) - len(`1}]}]}`) + 1
	if want := "(line 1, column " + strconv.Itoa(col) + ")"; !strings.HasSuffix(vs[0].GetDetail(), want) {
		t.Errorf("detail %q, want it to end with %s", vs[0].GetDetail(), want)
	}
}
