// Package tlsfile serves a TLS certificate from files that an operator
// (or cert-manager, or gwctl certs issue) replaces in place: the sync
// transport of the control plane and of the edge both use it. It imports
// only the standard library, so edge and control plane may depend on it.
package tlsfile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// Reloader serves a certificate and key pair from files, reloading them
// when either file changes (checked at most once a second), so a rotated
// certificate is used for new handshakes without a restart and without
// touching open streams. A reload that fails keeps the previous pair.
type Reloader struct {
	certFile, keyFile string

	mu      sync.Mutex // guards the fields below
	cert    *tls.Certificate
	leaf    *x509.Certificate
	stamp   string
	checked time.Time
}

// New loads the pair once; it fails when that load fails.
func New(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(time.Now()); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) fileStamp() string {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				b.WriteString("missing;")
				continue
			}
			b.WriteString(err.Error())
			continue
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String()
}

// reload reads the files; r.mu must not be held.
func (r *Reloader) reload(now time.Time) error {
	stamp := r.fileStamp()
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s: %w", r.certFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("load certificate %s: %w", r.certFile, err)
	}
	pair.Leaf = leaf
	r.mu.Lock()
	r.cert, r.leaf, r.stamp, r.checked = &pair, leaf, stamp, now
	r.mu.Unlock()
	return nil
}

// current returns the pair, reloading it first when the files changed.
func (r *Reloader) current() *tls.Certificate {
	now := time.Now()
	r.mu.Lock()
	due := now.Sub(r.checked) >= time.Second
	if due {
		r.checked = now
	}
	cert, stamp := r.cert, r.stamp
	r.mu.Unlock()
	if due && r.fileStamp() != stamp {
		if err := r.reload(now); err == nil {
			r.mu.Lock()
			cert = r.cert
			r.mu.Unlock()
		}
	}
	return cert
}

// GetCertificate is a tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

// NotAfter returns when the current certificate expires.
func (r *Reloader) NotAfter() time.Time {
	r.current()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaf.NotAfter
}

// WatchExpiry calls check with the current certificate's expiry at once
// and then every interval until ctx is done; check sets the caller's
// metric and warns as the expiry nears. A rotated certificate is seen at
// the next call.
func (r *Reloader) WatchExpiry(ctx context.Context, interval time.Duration, check func(notAfter, now time.Time)) {
	check(r.NotAfter(), time.Now())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			check(r.NotAfter(), now)
		}
	}
}
