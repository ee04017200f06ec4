// Package tlsconf turns a snapshot's TLS settings into crypto/tls
// configurations: the edge listener's (ServerTLS, whose files are watched so
// a rotated certificate is served without a restart) and the upstream
// client's (ClientTLS).
//
// Every file a snapshot names is a path on the edge's host, as in KrakenD:
// the control plane stores the names, and each edge reads its own copies
// when it builds a plan. A file that is missing or unreadable fails the
// build, with the path of the key that names it.
//
// Reloading needs no goroutine: a handshake that starts at least
// CheckInterval after the last check reads the files again (one handshake
// at a time does so; the others use what is loaded; a few kilobytes a
// second at most), and reloads them when one's content changed. A reload that fails (a certificate
// written before its key, say) keeps the previous material and is retried
// at the next check. Connections already open keep the certificate they
// were set up with.
package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// CheckInterval is the least time between two looks at a Server's files.
const CheckInterval = time.Second

// FileError is a file of the TLS settings that could not be used; Path is
// the snapshot field that names it ("tls.keys[0].certificate").
type FileError struct {
	Path string
	File string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s: %s: %v", e.Path, e.File, e.Err) }

func (e *FileError) Unwrap() error { return e.Err }

// Server is the TLS configuration of the edge's listener. Config returns
// what each new connection is served with. It is safe for concurrent use.
type Server struct {
	spec     *gatewayv1.ServerTLS
	log      zerolog.Logger
	interval time.Duration
	base     *tls.Config // GetConfigForClient hands out cur

	cur       atomic.Pointer[serverState]
	nextCheck atomic.Int64 // unix nanoseconds
	checking  sync.Mutex   // one check at a time
	failed    []fileStat   // the stats of the last reload that failed (guarded by checking)
}

// serverState is what one set of files produced.
type serverState struct {
	cfg   *tls.Config
	stats []fileStat
	// fingerprints of the leaf certificates, for logs and tests.
	leaves []string
	digest hash.Hash // of every file read, in order (nil: not kept)
}

// fileStat is what a file held when it was read: comparing digests, not
// modification times, sees a rewrite within the file system's clock tick.
type fileStat struct {
	name string
	sum  [sha256.Size]byte
}

// NewServer reads the files of spec and returns the listener's
// configuration. It fails with a *FileError when a file cannot be read or
// parsed, or when spec names no key pair. log receives reload events.
func NewServer(spec *gatewayv1.ServerTLS, log zerolog.Logger) (*Server, error) {
	return newServer(spec, log, CheckInterval)
}

func newServer(spec *gatewayv1.ServerTLS, log zerolog.Logger, interval time.Duration) (*Server, error) {
	if len(spec.GetKeys()) == 0 {
		return nil, &FileError{Path: "tls.keys", Err: errors.New("TLS is enabled but no certificate is configured (public_key/private_key or keys)")}
	}
	s := &Server{spec: spec, log: log.With().Str("component", "tls").Logger(), interval: interval}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(st)
	s.nextCheck.Store(time.Now().Add(interval).UnixNano())
	s.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current(), nil
		},
	}
	return s, nil
}

// Config is the configuration a new connection is wrapped with: it picks
// the current certificates when the handshake starts.
func (s *Server) Config() *tls.Config { return s.base }

// Leaves returns the SHA-256 fingerprints (hex) of the served leaf
// certificates, in order.
func (s *Server) Leaves() []string { return s.cur.Load().leaves }

// Spec returns the settings s was built from.
func (s *Server) Spec() *gatewayv1.ServerTLS { return s.spec }

// current returns the loaded configuration, first reloading the files if a
// check is due and one of them changed.
func (s *Server) current() *tls.Config {
	now := time.Now()
	if now.UnixNano() >= s.nextCheck.Load() && s.checking.TryLock() {
		s.check()
		s.nextCheck.Store(time.Now().Add(s.interval).UnixNano())
		s.checking.Unlock()
	}
	return s.cur.Load().cfg
}

// check reloads the files when their stats differ from the loaded ones.
// s.checking is held.
func (s *Server) check() {
	st := s.cur.Load()
	stats := contentsOf(st.stats)
	if equalStats(stats, st.stats) || equalStats(stats, s.failed) {
		return
	}
	next, err := s.load()
	if err != nil {
		s.failed = stats
		s.log.Error().Err(err).Msg("TLS files changed but cannot be loaded; still serving the previous certificates")
		return
	}
	s.failed = nil
	s.cur.Store(next)
	s.log.Info().Strs("certificates", next.leaves).Msg("TLS files reloaded")
}

// load reads every file of the spec into a new state.
func (s *Server) load() (*serverState, error) {
	spec := s.spec
	st := &serverState{}
	cfg := &tls.Config{
		MinVersion:       uint16(spec.GetMinVersion()),
		MaxVersion:       uint16(spec.GetMaxVersion()),
		CipherSuites:     uint16s(spec.GetCipherSuites()),
		CurvePreferences: curves(spec.GetCurvePreferences()),
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.NextProtos = nextProtos(cfg)
	for i, k := range spec.GetKeys() {
		p := fmt.Sprintf("tls.keys[%d]", i)
		certPEM, err := s.read(st, p+".certificate", k.GetCertificate())
		if err != nil {
			return nil, err
		}
		keyPEM, err := s.read(st, p+".private_key", k.GetPrivateKey())
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, &FileError{Path: p, File: k.GetCertificate() + ", " + k.GetPrivateKey(), Err: err}
		}
		cfg.Certificates = append(cfg.Certificates, cert)
		st.leaves = append(st.leaves, fingerprint(cert.Certificate[0]))
	}
	if spec.GetEnableMtls() {
		pool, err := s.pool(st, spec.GetDisableSystemCaPool(), spec.GetCaCerts(), "tls.ca_certs")
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	st.cfg = cfg
	return st, nil
}

// Protocols offered by ALPN: h2 first, as Go's net/http (and so KrakenD)
// offers on a TLS listener; HTTP/1.1 stays on fasthttp.
var (
	protosH2    = []string{"h2", "http/1.1"}
	protosHTTP1 = []string{"http/1.1"}
)

// nextProtos returns the ALPN protocols cfg is served with: h2 and
// http/1.1, or http/1.1 alone when cfg's cipher suites would have HTTP/2
// refuse the connection (see H2Capable).
func nextProtos(cfg *tls.Config) []string {
	if H2Capable(cfg.MinVersion, cfg.CipherSuites) {
		return protosH2
	}
	return protosHTTP1
}

// H2Capable reports whether a listener with this minimum version and
// TLS 1.0–1.2 cipher suite list (nil: Go's defaults) can serve HTTP/2:
// RFC 9113 §9.2.2 makes TLS_ECDHE_{RSA,ECDSA}_WITH_AES_128_GCM_SHA256
// mandatory, and Go's net/http requires one of them in the list unless the
// minimum is TLS 1.3 (KrakenD refuses to start without it; the control
// plane warns instead, and the listener then offers HTTP/1.1 only).
func H2Capable(minVersion uint16, suites []uint16) bool {
	if len(suites) == 0 || minVersion >= tls.VersionTLS13 {
		return true
	}
	for _, cs := range suites {
		switch cs {
		case tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:
			return true
		}
	}
	return false
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// read reads one file and records its stat for change detection.
func (s *Server) read(st *serverState, path, name string) ([]byte, error) {
	if name == "" {
		return nil, &FileError{Path: path, Err: errors.New("no file named")}
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, &FileError{Path: path, File: name, Err: err}
	}
	st.stats = append(st.stats, fileStat{name: name, sum: sha256.Sum256(b)})
	if st.digest != nil {
		st.digest.Write([]byte(strconv.Itoa(len(b)) + ":"))
		st.digest.Write(b)
	}
	return b, nil
}

// pool builds a CA pool: the system's roots unless disabled, plus files.
func (s *Server) pool(st *serverState, noSystem bool, files []string, path string) (*x509.CertPool, error) {
	pool, err := basePool(noSystem)
	if err != nil {
		return nil, &FileError{Path: path, File: "(system roots)", Err: err}
	}
	for i, f := range files {
		p := fmt.Sprintf("%s[%d]", path, i)
		b, err := s.read(st, p, f)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, &FileError{Path: p, File: f, Err: errors.New("no PEM certificate in the file")}
		}
	}
	return pool, nil
}

func basePool(noSystem bool) (*x509.CertPool, error) {
	if noSystem {
		return x509.NewCertPool(), nil
	}
	return x509.SystemCertPool()
}

// contentsOf reads the files named in prev again and digests them; a
// file that cannot be read digests as its error.
func contentsOf(prev []fileStat) []fileStat {
	out := make([]fileStat, len(prev))
	for i, f := range prev {
		out[i].name = f.name
		b, err := os.ReadFile(f.name)
		if err != nil {
			b = []byte("\x00" + err.Error())
		}
		out[i].sum = sha256.Sum256(b)
	}
	return out
}

func equalStats(a, b []fileStat) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func uint16s(v []uint32) []uint16 {
	if len(v) == 0 {
		return nil
	}
	out := make([]uint16, len(v))
	for i, x := range v {
		out[i] = uint16(x)
	}
	return out
}

func curves(v []uint32) []tls.CurveID {
	if len(v) == 0 {
		return nil
	}
	out := make([]tls.CurveID, len(v))
	for i, x := range v {
		out[i] = tls.CurveID(x)
	}
	return out
}
