package mq

import (
	"fmt"
	"sync"
)

// pool is a registry of shared broker connections keyed by their settings,
// reference counted: the first acquire of a key opens its connection, the
// release of its last user closes it, so a snapshot swap that keeps a
// backend keeps its connection. Safe for concurrent use.
type pool[K comparable, C interface{ close() }] struct {
	name string // for errors: "amqp consumers"

	mu     sync.Mutex // guards the fields below
	conns  map[K]*pooled[C]
	closed bool
}

type pooled[C any] struct {
	c    C
	refs int
}

func newPool[K comparable, C interface{ close() }](name string) pool[K, C] {
	return pool[K, C]{name: name, conns: map[K]*pooled[C]{}}
}

// acquire takes a reference on key's connection; open (called under the
// pool's lock, so it must not block) makes it when there is none.
func (p *pool[K, C]) acquire(key K, open func() C) (C, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		var zero C
		return zero, fmt.Errorf("%s: closed", p.name)
	}
	e := p.conns[key]
	if e == nil {
		e = &pooled[C]{c: open()}
		p.conns[key] = e
	}
	e.refs++
	return e.c, nil
}

// release gives a reference back and closes the connection with its last
// one. After closeAll it does nothing: closeAll closed every connection.
func (p *pool[K, C]) release(key K) {
	p.mu.Lock()
	e := p.conns[key]
	if e == nil {
		p.mu.Unlock()
		return
	}
	e.refs--
	last := e.refs == 0
	if last {
		delete(p.conns, key)
	}
	p.mu.Unlock()
	if last {
		e.c.close()
	}
}

// closeAll closes every connection and refuses later acquires. Idempotent.
func (p *pool[K, C]) closeAll() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[K]*pooled[C]{}
	p.mu.Unlock()
	for _, e := range conns {
		e.c.close()
	}
}
