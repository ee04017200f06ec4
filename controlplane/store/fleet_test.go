package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// board collects one session's view of the others' entries.
type board struct {
	mu      sync.Mutex
	entries map[string]string // session/key -> value
	resets  int
	changed chan struct{}
}

func newBoard() *board {
	return &board{entries: map[string]string{}, changed: make(chan struct{}, 1)}
}

func (b *board) event(ev FleetEvent) {
	b.mu.Lock()
	switch {
	case ev.Reset:
		b.resets++
		clear(b.entries)
	case ev.Value == nil:
		delete(b.entries, ev.Session+"/"+ev.Key)
	default:
		b.entries[ev.Session+"/"+ev.Key] = string(ev.Value)
	}
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until the board holds exactly want.
func (b *board) waitFor(t *testing.T, what string, want map[string]string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		b.mu.Lock()
		got := fmt.Sprint(b.entries)
		b.mu.Unlock()
		if got == fmt.Sprint(want) {
			return
		}
		select {
		case <-b.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: board holds %s, want %s", what, got, fmt.Sprint(want))
		}
	}
}

func TestEtcdFleetBoard(t *testing.T) {
	t.Parallel()
	c := sharedEtcd(t)
	ctx := context.Background()
	prefix := etcdBackend(t).place(t)
	a, b := openEtcdTest(t, c.Endpoints(), prefix, nil), openEtcdTest(t, c.Endpoints(), prefix, nil)

	va, vb := newBoard(), newBoard()
	sa, err := a.JoinFleet(ctx, 2*time.Second, va.event)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	if err := sa.Publish(ctx, []FleetWrite{{Key: "edge-1", Value: []byte("a1")}, {Key: "edge-2", Value: []byte("a2")}}); err != nil {
		t.Fatal(err)
	}
	// A session joining later reads what is already there.
	sb, err := b.JoinFleet(ctx, 2*time.Second, vb.event)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if sa.ID() == sb.ID() {
		t.Fatalf("two sessions share id %s", sa.ID())
	}
	vb.waitFor(t, "b after joining", map[string]string{sa.ID() + "/edge-1": "a1", sa.ID() + "/edge-2": "a2"})
	if err := sb.Publish(ctx, []FleetWrite{{Key: "edge-3", Value: []byte("b3")}}); err != nil {
		t.Fatal(err)
	}
	// Updates and deletes reach the other session; nobody sees its own.
	if err := sa.Publish(ctx, []FleetWrite{{Key: "edge-1", Value: []byte("a1'")}, {Key: "edge-2"}}); err != nil {
		t.Fatal(err)
	}
	vb.waitFor(t, "b after a's update", map[string]string{sa.ID() + "/edge-1": "a1'"})
	va.waitFor(t, "a", map[string]string{sb.ID() + "/edge-3": "b3"})

	// More entries than one transaction may hold.
	var many []FleetWrite
	want := map[string]string{sa.ID() + "/edge-1": "a1'"}
	for i := range 300 {
		k := fmt.Sprintf("n%03d", i)
		many = append(many, FleetWrite{Key: k, Value: []byte(k)})
		want[sa.ID()+"/"+k] = k
	}
	e0, t0 := sa.Writes()
	if err := sa.Publish(ctx, many); err != nil {
		t.Fatal(err)
	}
	if e1, t1 := sa.Writes(); e1-e0 != 300 || t1-t0 != 3 {
		t.Errorf("300 entries took %d entries in %d transactions, want 300 in 3", e1-e0, t1-t0)
	}
	vb.waitFor(t, "b after 300 entries", want)

	// Close revokes: the entries vanish at once.
	if err := sa.Close(); err != nil {
		t.Fatal(err)
	}
	vb.waitFor(t, "b after a closed", map[string]string{})

	// A lease that expired (the replica stalled past its TTL) is replaced
	// on the next publish, which reports it.
	ep := sb.Epoch()
	cli := rawClient(t, c.Endpoints())
	var id uint64
	fmt.Sscanf(sb.ID(), "%x", &id)
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil {
		t.Fatal(err)
	}
	if err := sb.Publish(ctx, []FleetWrite{{Key: "edge-3", Value: []byte("b3")}}); !errors.Is(err, ErrFleetLeaseLost) {
		t.Fatalf("publish on a revoked lease: %v, want ErrFleetLeaseLost", err)
	}
	if sb.Epoch() == ep {
		t.Fatal("epoch did not change with the new lease")
	}
	if err := sb.Publish(ctx, []FleetWrite{{Key: "edge-3", Value: []byte("b3")}}); err != nil {
		t.Fatal(err)
	}
	// A third session sees b's entry under its new id only.
	vc := newBoard()
	sc, err := a.JoinFleet(ctx, 2*time.Second, vc.event)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	vc.waitFor(t, "c", map[string]string{sb.ID() + "/edge-3": "b3"})
	if vc.resets != 1 {
		t.Errorf("resets = %d, want 1", vc.resets)
	}

	// A session whose process dies (no Close, no keepalive) vanishes after
	// the TTL: simulate by stopping the keepalive of a fresh session.
	sd, err := b.JoinFleet(ctx, time.Second, func(FleetEvent) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.Publish(ctx, []FleetWrite{{Key: "edge-9", Value: []byte("d9")}}); err != nil {
		t.Fatal(err)
	}
	vc.waitFor(t, "c sees d", map[string]string{sb.ID() + "/edge-3": "b3", sd.ID() + "/edge-9": "d9"})
	d := sd.(*etcdFleet)
	d.mu.Lock()
	d.cancelKA()
	d.mu.Unlock()
	vc.waitFor(t, "c after d's lease expired", map[string]string{sb.ID() + "/edge-3": "b3"})
	d.stop()
	<-d.done

	if _, err := a.JoinFleet(ctx, 0, func(FleetEvent) {}); err == nil {
		t.Error("JoinFleet with a zero ttl: no error")
	}
}
