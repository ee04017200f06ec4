// Package dirlock gives one process at a time a data directory: an
// exclusive flock(2) on <dir>/.lock, held until Release or process exit
// (the kernel drops it when the process dies, so a crash never leaves a
// stale lock behind). The control plane and the edge take it before they
// read or write anything in their data dir, so two processes started on
// the same dir cannot interleave their writes.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// FileName is the lock file inside the directory. It holds the pid of the
// owner, for the error message of the next process.
const FileName = ".lock"

// Lock is a held directory lock.
type Lock struct{ f *os.File }

// ErrLocked is wrapped by Acquire's error when another process holds the
// directory.
var ErrLocked = errors.New("data dir in use by another process")

// Acquire creates dir (0700) when missing and locks it without waiting.
// When another process holds it, the error wraps ErrLocked and names the
// owner's pid.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := strings.TrimSpace(string(b[:n]))
			if _, perr := strconv.Atoi(owner); perr != nil {
				owner = "unknown"
			}
			return nil, fmt.Errorf("%w: %s is locked by pid %s (one process per data dir; give this one its own --data-dir)", ErrLocked, dir, owner)
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. Idempotent.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
