// Package loglevel is a log level that can change while the loggers using
// it run. zerolog fixes a Logger's level when the Logger is made, and its
// only dynamic level is the process-global zerolog.SetGlobalLevel, which
// every logger of the process (tests included) shares. A Var instead
// filters in the writer of the loggers built on it, so a snapshot's
// telemetry/logging level reaches exactly the edge's loggers.
//
// loglevel imports nothing from the project.
package loglevel

import (
	"io"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Var is a level shared by the loggers written through its Writer. It is
// safe for concurrent use; the zero value is not usable (use New).
type Var struct{ v atomic.Int32 }

// New returns a Var at level l.
func New(l zerolog.Level) *Var {
	v := &Var{}
	v.Set(l)
	return v
}

// Set changes the level; events below it are dropped from now on.
func (v *Var) Set(l zerolog.Level) { v.v.Store(int32(l)) }

// Level returns the current level.
func (v *Var) Level() zerolog.Level { return zerolog.Level(v.v.Load()) }

// Writer wraps w so that events below v's level are dropped. Events
// without a level (zerolog.NoLevel, Log()) always pass.
func (v *Var) Writer(w io.Writer) zerolog.LevelWriter { return levelWriter{v: v, w: w} }

type levelWriter struct {
	v *Var
	w io.Writer
}

func (lw levelWriter) Write(p []byte) (int, error) { return lw.w.Write(p) }

func (lw levelWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l != zerolog.NoLevel && l < lw.v.Level() {
		return len(p), nil
	}
	if w, ok := lw.w.(zerolog.LevelWriter); ok {
		// Pass the level on (edge/internal/logsink renders it).
		return w.WriteLevel(l, p)
	}
	return lw.w.Write(p)
}
