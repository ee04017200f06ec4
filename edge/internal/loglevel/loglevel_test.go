package loglevel

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestVarFiltersItsLoggersOnly(t *testing.T) {
	t.Parallel()
	var mine, other bytes.Buffer
	v := New(zerolog.InfoLevel)
	log := zerolog.New(v.Writer(&mine)).With().Str("c", "x").Logger()
	unrelated := zerolog.New(&other)

	log.Debug().Msg("d1")
	log.Info().Msg("i1")
	v.Set(zerolog.DebugLevel)
	log.Debug().Msg("d2") // a child made before Set follows it too
	v.Set(zerolog.ErrorLevel)
	log.Warn().Msg("w1")
	log.Error().Msg("e1")
	log.Log().Msg("n1")
	unrelated.Debug().Msg("u1")

	got := mine.String()
	for _, want := range []string{"i1", "d2", "e1", "n1"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	for _, no := range []string{"d1", "w1"} {
		if strings.Contains(got, no) {
			t.Errorf("log holds %s, below the level then:\n%s", no, got)
		}
	}
	if !strings.Contains(other.String(), "u1") {
		t.Error("a logger not built on the Var was filtered")
	}
	if v.Level() != zerolog.ErrorLevel {
		t.Errorf("Level = %s", v.Level())
	}
}
