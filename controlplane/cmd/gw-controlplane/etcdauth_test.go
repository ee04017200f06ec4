package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/apigw/gateway/test/etcdtest"
)

// TestEtcdPassword: the password comes from the file's first line, else
// from the environment, and is required with --etcd-user.
func TestEtcdPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == etcdPasswordEnv {
				return v
			}
			return ""
		}
	}
	if pw, err := etcdPassword(&Config{EtcdUser: "gw", EtcdPasswordFile: file}, env("other")); err != nil || pw != "s3cret" {
		t.Errorf("from the file: %q, %v", pw, err)
	}
	if pw, err := etcdPassword(&Config{EtcdUser: "gw"}, env("fromenv")); err != nil || pw != "fromenv" {
		t.Errorf("from the env: %q, %v", pw, err)
	}
	if _, err := etcdPassword(&Config{EtcdUser: "gw"}, env("")); err == nil || !strings.Contains(err.Error(), etcdPasswordEnv) {
		t.Errorf("no password: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := etcdPassword(&Config{EtcdUser: "gw", EtcdPasswordFile: empty}, env("x")); err == nil {
		t.Error("an empty file was accepted")
	}
}

// TestOpenStoreEtcdAuth runs a real etcd with authentication enabled: the
// store opens with --etcd-user and the right password file, and is refused
// with a wrong one.
func TestOpenStoreEtcdAuth(t *testing.T) {
	if _, err := etcdtest.Binary(); err != nil {
		t.Skipf("no etcd binary: %v", err) // .ci/run installs etcd-server
	}
	dir := t.TempDir()
	c, err := etcdtest.Start(filepath.Join(dir, "etcd"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("enable etcd auth: %v", err)
		}
	}
	_ = cli.Close()

	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(good, []byte("rootpw\n"), 0o600)
	_ = os.WriteFile(bad, []byte("wrong\n"), 0o600)
	cfg := &Config{Store: "etcd://" + strings.Join(c.Endpoints(), ",") + "/authtest", EtcdUser: "root", EtcdPasswordFile: good}
	st, err := openStore(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("open with the password: %v", err)
	}
	if _, err := st.RevocationSeq(ctx); err != nil {
		t.Errorf("read with the password: %v", err)
	}
	_ = st.Close()
	cfg.EtcdPasswordFile = bad
	if st, err := openStore(ctx, cfg, zerolog.Nop()); err == nil {
		_ = st.Close()
		t.Fatal("opened with a wrong password")
	}
	cfg.EtcdUser, cfg.EtcdPasswordFile = "", ""
	if st, err := openStore(ctx, cfg, zerolog.Nop()); err == nil {
		_ = st.Close()
		t.Fatal("opened without credentials on an etcd with authentication")
	}
}
