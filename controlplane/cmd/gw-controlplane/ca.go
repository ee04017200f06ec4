package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/controlplane/pki"
)

// runCA runs `gw-controlplane ca init`: the built-in PKI (CA and the
// control plane's server certificate in <data-dir>/pki, keys 0600) and the
// snapshot signing key. Edge certificates are then issued by the running
// control plane: `gwctl certs issue --node-id ID --region R`.
func runCA(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "renew-server" {
		return runCARenewServer(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, "Usage: gw-controlplane ca init [--data-dir DIR] [--host H]... [--if-missing]\n       gw-controlplane ca renew-server [--data-dir DIR] [--host H]...")
		return exitUsage
	}
	fs := flag.NewFlagSet("gw-controlplane ca init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "the control plane's data directory")
	var hosts stringList
	fs.Var(&hosts, "host", "DNS name or IP address edges dial the control plane by (repeatable or comma-separated; default localhost, 127.0.0.1, ::1)")
	ifMissing := fs.Bool("if-missing", false, "exit 0 without changing anything when the CA already exists (for init containers and ExecStartPre)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: gw-controlplane ca init [flags]

Creates the built-in PKI in <data-dir>/pki: a CA (ca.crt, ca.key) and the
control plane's sync server certificate (server.crt, server.key) for the
--host names, plus the snapshot signing key (signing.key, signing.pub).
Keys are written with mode 0600. With them in place gw-controlplane serves
the sync API with mTLS and no TLS flag. Issue each edge's certificate with
gwctl certs issue --node-id ID --region R; give edges pki/ca.crt
(--controlplane-ca) and signing.pub (--snapshot-public-key).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *dataDir == "" {
		fmt.Fprintln(stderr, "gw-controlplane ca init: --data-dir: required")
		return exitUsage
	}
	if len(hosts) == 0 {
		hosts = stringList{"localhost", "127.0.0.1", "::1"}
	}
	caCert, caKey, srvCert, _ := pki.Paths(*dataDir)
	if _, err := os.Stat(caKey); err == nil && *ifMissing {
		if _, err := loadOrCreateSigner(*dataDir, zerolog.Nop()); err != nil {
			fmt.Fprintf(stderr, "gw-controlplane: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "CA exists (%s), nothing changed\n", caCert)
		return exitOK
	}
	if err := pki.Init(*dataDir, hosts, time.Now()); err != nil {
		fmt.Fprintf(stderr, "gw-controlplane: %v\n", err)
		return exitError
	}
	if _, err := loadOrCreateSigner(*dataDir, zerolog.Nop()); err != nil {
		fmt.Fprintf(stderr, "gw-controlplane: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "CA:                 %s\nserver certificate: %s (hosts %s)\nsigning public key: %s\n",
		caCert, srvCert, strings.Join(hosts, ", "), filepath.Join(*dataDir, signingPubFile))
	return exitOK
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

// Set appends v, split at commas (empty parts are skipped, so a unit file
// can write --host %H,${EXTRA_HOSTS} with EXTRA_HOSTS unset).
func (s *stringList) Set(v string) error {
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			*s = append(*s, h)
		}
	}
	return nil
}

// runCARenewServer runs `gw-controlplane ca renew-server`: a new sync
// (and admin) server key and certificate from the built-in CA, for the
// same names unless --host is given. A running control plane uses them
// for new connections within a second; open streams carry on.
func runCARenewServer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gw-controlplane ca renew-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "the control plane's data directory")
	var hosts stringList
	fs.Var(&hosts, "host", "DNS name or IP address for the new certificate (repeatable or comma-separated; default: the current certificate's names)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: gw-controlplane ca renew-server [flags]

Replaces <data-dir>/pki/server.crt and server.key with a new pair from the
built-in CA, valid for a year. The control plane picks it up without a
restart. Edges keep trusting it: the CA is the same.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *dataDir == "" {
		fmt.Fprintln(stderr, "gw-controlplane ca renew-server: --data-dir: required")
		return exitUsage
	}
	names, notAfter, err := pki.RenewServer(*dataDir, hosts, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "gw-controlplane: %v\n", err)
		return exitError
	}
	_, _, srvCert, _ := pki.Paths(*dataDir)
	fmt.Fprintf(stdout, "server certificate: %s (hosts %s), valid until %s\n", srvCert, strings.Join(names, ", "), notAfter.UTC().Format(time.RFC3339))
	return exitOK
}
