package plan

import (
	"testing"
	"time"

	"github.com/apigw/gateway/edge/proxy"
)

func TestUpstreamGrace(t *testing.T) {
	t.Parallel()
	u := NewUpstreams()
	u.grace = 20 * time.Millisecond
	defer u.Close()
	cfg := proxy.ClientConfig{Name: "b", Hosts: []string{"http://127.0.0.1:1"}}
	key := upstreamKey(cfg)
	c1, created, err := u.acquire(key, cfg)
	if err != nil || !created {
		t.Fatalf("acquire: %v %v", created, err)
	}
	u.release([]string{key}, nil)
	// Taken back within the grace period: the same client survives.
	c2, created, err := u.acquire(key, cfg)
	if err != nil || created || c2 != c1 {
		t.Fatalf("re-acquire in grace: created=%v same=%v err=%v", created, c2 == c1, err)
	}
	time.Sleep(50 * time.Millisecond)
	if u.Len() != 1 {
		t.Fatal("client in use was closed")
	}
	u.release([]string{key}, nil)
	deadline := time.Now().Add(2 * time.Second)
	for u.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("unused client not closed after the grace period")
		}
		time.Sleep(5 * time.Millisecond)
	}
	u.Close()
	u.Close() // idempotent
	if _, _, err := u.acquire(key, cfg); err == nil {
		t.Error("acquire after Close succeeded")
	}
}
