package plan

import (
	"net"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apigw/gateway/edge/lease"
	"github.com/apigw/gateway/edge/proxy"
)

func TestUpstreamGrace(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	u := newUpstreams(time.Minute, lease.WithClock(now.Load))
	defer u.Close()
	cfg := proxy.ClientConfig{Hosts: []string{"http://127.0.0.1:1"}}
	key := identityOf(cfg)
	c1, created, err := u.acquire(key, cfg)
	if err != nil || !created {
		t.Fatalf("acquire: %v %v", created, err)
	}
	u.release([]clientIdentity{key}, nil)
	// Taken back within the grace period: the same client survives.
	now.Add(int64(59 * time.Second))
	c2, created, err := u.acquire(key, cfg)
	if err != nil || created || c2 != c1 {
		t.Fatalf("re-acquire in grace: created=%v same=%v err=%v", created, c2 == c1, err)
	}
	now.Add(int64(time.Hour))
	if n := u.sweep(); n != 0 || u.Len() != 1 {
		t.Fatal("client in use was closed")
	}
	u.release([]clientIdentity{key}, nil)
	now.Add(int64(time.Minute))
	if n := u.sweep(); n != 1 || u.Len() != 0 {
		t.Fatalf("unused client not closed after the grace period (swept %d)", n)
	}
	u.Close()
	u.Close() // idempotent
	if _, _, err := u.acquire(key, cfg); err == nil {
		t.Error("acquire after Close succeeded")
	}
}

// TestClientIdentityCoversEverySetting changes each field of
// proxy.ClientConfig in turn (found by reflection, so a field added later is
// covered) and requires a different identity; equal configs share one.
func TestClientIdentityCoversEverySetting(t *testing.T) {
	t.Parallel()
	base := proxy.ClientConfig{Hosts: []string{"http://a:1", "http://b:2"}, MaxConns: 10}
	same := base
	same.Hosts = append([]string(nil), base.Hosts...)
	if identityOf(base) != identityOf(same) {
		t.Error("equal configs, different identities")
	}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		c := base
		c.Hosts = append([]string(nil), base.Hosts...)
		v := reflect.ValueOf(&c).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"http://a:1\x00http://b:2"})) // what a NUL-joined key would confuse with the two hosts
		case reflect.Struct:
			switch f.Name {
			case "TLS":
				c.TLS.Key += "x" // the key identifies the configuration
			case "SD":
				for _, change := range []func(*proxy.SD){
					func(s *proxy.SD) { s.Name += "x" },
					func(s *proxy.SD) { s.Scheme += "x" },
					func(s *proxy.SD) { s.TTL++ },
					func(s *proxy.SD) { s.Resolver = &net.Resolver{} },
				} {
					d := c
					change(&d.SD)
					if identityOf(d) == identityOf(base) {
						t.Errorf("ClientConfig.SD changed (%+v), identity did not", d.SD)
					}
				}
				if reflect.TypeOf(c.SD).NumField() != 4 {
					t.Error("proxy.SD has a new field: teach identityOf and this test about it")
				}
				continue
			default:
				t.Fatalf("ClientConfig.%s (%s): teach identityOf and this test about it", f.Name, v.Kind())
			}
		default:
			t.Fatalf("ClientConfig.%s (%s): teach identityOf and this test about it", f.Name, v.Kind())
		}
		if identityOf(c) == identityOf(base) {
			t.Errorf("ClientConfig.%s changed, identity did not: add it to clientIdentity", f.Name)
		}
	}
}
