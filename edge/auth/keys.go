package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/lease"
)

// Defaults of the JWKS machinery. KrakenD's cache_duration default is 900 s.
const (
	// DefaultCacheDuration is the refresh period of a source with cache:
	// true and no cache_duration.
	DefaultCacheDuration = 900 * time.Second
	// UncachedRefresh is the refresh period of a source with cache: false.
	// KrakenD then fetches the JWKS on every request (a documented quirk
	// that hammers the IdP and puts it on the request path); we keep the
	// keys in memory anyway and refresh them this often instead. A token
	// signed with a key that appeared meanwhile triggers an immediate
	// re-fetch, so rotation still works without waiting for the period.
	UncachedRefresh = 60 * time.Second
	// MinKeyCooldown is the floor of failed_jwk_key_cooldown: at most one
	// unknown-key re-fetch per source per this period.
	MinKeyCooldown = time.Second
	// DefaultUnknownKeyWait is how long a request whose token names an
	// unknown key waits for the re-fetch it triggered (or one under way).
	DefaultUnknownKeyWait = 100 * time.Millisecond
	// DefaultFetchTimeout bounds one JWKS fetch.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultMaxJWKSBytes caps a JWKS document.
	DefaultMaxJWKSBytes = 1 << 20
	// DefaultTokenCacheSize is the number of verified tokens kept per
	// distinct validator configuration.
	DefaultTokenCacheSize = 16384
	// maxFailureBackoff caps the retry period of a failing source.
	maxFailureBackoff = 60 * time.Second
)

// ErrClosed is returned by New and NewKeys' methods after Keys.Close.
var ErrClosed = errors.New("auth: keys registry closed")

// KeysConfig configures a Keys registry. The zero value is usable.
type KeysConfig struct {
	// Logger receives fetch failures and key-set changes (never per request).
	Logger zerolog.Logger
	// RootCAs, when set, replaces the system roots for https JWKS URLs
	// (test hook; private IdPs).
	RootCAs *x509.CertPool
	// FetchTimeout bounds one JWKS fetch; zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// UnknownKeyWait bounds how long a request whose token names a key the
	// set lacks waits for the re-fetch it triggers. It only waits when a
	// fetch is under way or may start now (not while the source is in its
	// cooldown), so a flood of made-up kids costs no waiting. Zero means
	// DefaultUnknownKeyWait; negative means never wait (401 at once).
	UnknownKeyWait time.Duration
	// MaxJWKSBytes caps a JWKS document; zero means DefaultMaxJWKSBytes.
	MaxJWKSBytes int64
	// TokenCacheSize is the number of verified tokens cached per distinct
	// validator configuration; zero means DefaultTokenCacheSize, negative
	// disables the cache (every request checks the signature).
	TokenCacheSize int
	// Clock is a test hook for the token time checks and the cache; nil
	// means time.Now.
	Clock func() time.Time
}

// Validate reports settings that cannot work.
func (c KeysConfig) Validate() error {
	var errs []error
	if c.FetchTimeout < 0 {
		errs = append(errs, errors.New("keys config: fetch timeout is negative"))
	}
	if c.MaxJWKSBytes < 0 {
		errs = append(errs, errors.New("keys config: max jwks bytes is negative"))
	}
	return errors.Join(errs...)
}

// Keys is the registry of JWKS key sources and of compiled validators. It
// outlives plans: a source is keyed by its sourceSpec (URL or local path and
// every fetch setting), a compiled validator by its whole JWTValidator
// message, and both are shared by every Validator that names them and
// closed when the last one is closed: two edge/lease registries with no
// grace period. Create one per edge process with NewKeys and Close it on
// shutdown. Safe for concurrent use.
type Keys struct {
	cfg KeysConfig
	log zerolog.Logger
	tr  *http.Transport
	now func() time.Time
	wg  sync.WaitGroup // the fetch goroutines; each stops by its source's cancel
	gen atomic.Uint64

	sources *lease.Registry[sourceSpec, *source]
	cores   *lease.Registry[string, *core] // by deterministic JWTValidator bytes
}

// NewKeys returns an empty registry.
func NewKeys(cfg KeysConfig) (*Keys, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.UnknownKeyWait == 0 {
		cfg.UnknownKeyWait = DefaultUnknownKeyWait
	}
	if cfg.MaxJWKSBytes == 0 {
		cfg.MaxJWKSBytes = DefaultMaxJWKSBytes
	}
	if cfg.TokenCacheSize == 0 {
		cfg.TokenCacheSize = DefaultTokenCacheSize
	}
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	k := &Keys{
		cfg: cfg,
		log: cfg.Logger.With().Str("component", "auth").Logger(),
		tr: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12, CipherSuites: DefaultJWKSCipherSuites},
			TLSHandshakeTimeout: cfg.FetchTimeout,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
		now: now,
	}
	// A source's fetch goroutine stops when its last validator lets it go
	// (or Keys closes); a core gives its source back.
	k.sources = lease.New[sourceSpec](0, func(s *source) {
		if s.cancel != nil {
			s.cancel()
		}
		if s.tr != k.tr {
			s.tr.CloseIdleConnections()
		}
	})
	k.cores = lease.New[string](0, func(c *core) { k.releaseSource(c.src) })
	return k, nil
}

// Close stops every background fetch and waits for the fetch goroutines to
// exit. Validators built from k keep their last keys and cached tokens but
// no longer refresh. Idempotent.
func (k *Keys) Close() {
	k.cores.Close()   // gives every source back...
	k.sources.Close() // ...and stops any left
	k.wg.Wait()
	k.tr.CloseIdleConnections()
}

// sourceSpec identifies a key source: where the keys come from and how they
// are fetched, every setting a source is built from, as one comparable
// value (its key in Keys.sources). Two validators with the same spec share
// one source.
type sourceSpec struct {
	url       string
	path      string
	refresh   time.Duration
	cooldown  time.Duration
	allowHTTP bool
	// tls is the deterministic encoding of the source's JWKSClientTLS
	// ("" for KrakenD's defaults): a source with its own TLS settings
	// gets its own transport.
	tls string
	// enc decrypts the local file (encKey; "" for a plain file).
	enc string
}

// source holds the current key set of one JWKS URL or file.
type source struct {
	k    *Keys
	spec sourceSpec
	name string

	set    atomic.Pointer[keySet]
	tr     *http.Transport // the registry's, or the source's own (spec.tls)
	kick   chan struct{}
	cancel context.CancelFunc
	ready  chan struct{} // closed after the first fetch attempt ends
	once   sync.Once

	lastAttempt atomic.Int64 // unix nanos when the last fetch started
	inflight    atomic.Bool

	// mu guards waitCh, which is closed (and replaced) whenever a fetch
	// attempt ends, waking requests waiting for an unknown key.
	mu     sync.Mutex
	waitCh chan struct{}
}

// acquireSource returns the shared source for spec, creating it (and, for a
// URL, starting its fetch goroutine) when needed. A local file is read on
// every acquire so a config push picks up an edited file.
func (k *Keys) acquireSource(spec sourceSpec) (*source, error) {
	s, _, err := k.sources.Acquire(spec, func() (*source, error) {
		s := &source{k: k, spec: spec, tr: k.tr, kick: make(chan struct{}, 1), ready: make(chan struct{}), waitCh: make(chan struct{})}
		if spec.tls != "" && spec.path == "" {
			tr, err := k.transportFor(spec.tls)
			if err != nil {
				return nil, err
			}
			s.tr = tr
		}
		s.name = spec.url
		if spec.path != "" {
			s.name = spec.path
		}
		if spec.path == "" {
			// The goroutine's own ctx, cancelled when the last validator
			// lets the source go or Keys closes (no ctx kept in Keys).
			ctx, cancel := context.WithCancel(context.Background())
			s.cancel = cancel
			k.wg.Add(1)
			go s.run(ctx)
		}
		return s, nil
	})
	if errors.Is(err, lease.ErrClosed) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, err
	}
	if spec.path != "" {
		if err := s.loadFile(); err != nil {
			k.releaseSource(s)
			return nil, err
		}
	}
	return s, nil
}

func (k *Keys) releaseSource(s *source) { k.sources.Release([]sourceSpec{s.spec}, nil) }

// keys returns the current key set (nil before the first successful load).
func (s *source) keys() *keySet { return s.set.Load() }

// gen returns the generation of the current key set (0 when none).
func (s *source) gen() uint64 {
	if ks := s.set.Load(); ks != nil {
		return ks.gen
	}
	return 0
}

func (s *source) loadFile() error {
	body, err := os.ReadFile(s.spec.path)
	if err != nil {
		return fmt.Errorf("read jwks %q: %w", s.spec.path, err)
	}
	if s.spec.enc != "" {
		if body, err = decryptJWKS(body, s.spec.enc); err != nil {
			return fmt.Errorf("jwks %q: %w", s.spec.path, err)
		}
	}
	if err := s.install(body); err != nil {
		return fmt.Errorf("load jwks %q: %w", s.spec.path, err)
	}
	s.once.Do(func() { close(s.ready) })
	return nil
}

// install parses a JWKS document and, when its keys differ from the current
// ones, publishes them under a new generation (invalidating every cached
// token verified with the old set).
func (s *source) install(body []byte) error {
	ks, err := parseKeySet(body)
	if err != nil {
		return err
	}
	if cur := s.set.Load(); cur != nil && cur.fp == ks.fp {
		return nil
	}
	ks.gen = s.k.gen.Add(1)
	s.set.Store(ks)
	s.k.log.Info().Str("jwks", s.name).Int("keys", len(ks.keys)).Uint64("generation", ks.gen).Msg("jwks keys loaded")
	return nil
}

// run fetches the JWKS at once, then every refresh period, sooner after a
// failure (backing off from the cooldown up to a minute) and when kicked
// by an unknown key, at most once per cooldown.
func (s *source) run(ctx context.Context) {
	defer s.k.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	backoff := s.spec.cooldown
	due := time.Now()
	for {
		select {
		case <-ctx.Done():
			s.once.Do(func() { close(s.ready) })
			return
		case <-s.kick:
			next := time.Unix(0, s.lastAttempt.Load()).Add(s.spec.cooldown)
			if wait := time.Until(next); wait > 0 {
				if next.Before(due) {
					due = next
					timer.Reset(wait)
				}
				continue
			}
		case <-timer.C:
		}
		var next time.Duration
		if err := s.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				s.once.Do(func() { close(s.ready) })
				return
			}
			s.k.log.Warn().Err(err).Str("jwks", s.name).Msg("jwks fetch failed; keeping the last good keys")
			next = min(backoff, s.spec.refresh)
			backoff = min(2*backoff, maxFailureBackoff)
		} else {
			backoff = s.spec.cooldown
			next = s.spec.refresh
		}
		due = time.Now().Add(next)
		timer.Reset(next)
	}
}

// fetch downloads and installs the JWKS once.
func (s *source) fetch(ctx context.Context) error {
	s.inflight.Store(true)
	s.lastAttempt.Store(time.Now().UnixNano())
	defer func() {
		s.inflight.Store(false)
		s.mu.Lock()
		close(s.waitCh)
		s.waitCh = make(chan struct{})
		s.mu.Unlock()
		s.once.Do(func() { close(s.ready) })
	}()
	ctx, cancel := context.WithTimeout(ctx, s.k.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.spec.url, nil)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	client := &http.Client{Transport: s.tr, CheckRedirect: s.checkRedirect}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.k.cfg.MaxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("fetch jwks: read body: %w", err)
	}
	if int64(len(body)) > s.k.cfg.MaxJWKSBytes {
		return fmt.Errorf("fetch jwks: body larger than %d bytes", s.k.cfg.MaxJWKSBytes)
	}
	if err := s.install(body); err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	return nil
}

func (s *source) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("jwks redirect: too many redirects")
	}
	if req.URL.Scheme != "https" && !s.spec.allowHTTP {
		return fmt.Errorf("jwks redirect: %q is not https", req.URL.Redacted())
	}
	return nil
}

// refetch asks for an immediate re-fetch (rate limited by the cooldown) and
// waits up to wait for a fetch to end when one is under way or may start
// now. It reports whether a fetch ended within the wait.
func (s *source) refetch(wait time.Duration) bool {
	if s.spec.path != "" {
		return false
	}
	s.mu.Lock()
	ch := s.waitCh
	s.mu.Unlock()
	soon := s.inflight.Load() || time.Since(time.Unix(0, s.lastAttempt.Load())) >= s.spec.cooldown
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if !soon || wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// keySet is one parsed JWKS: typed public keys indexed by every identifier
// a key_identify_strategy can use. Immutable.
type keySet struct {
	gen  uint64
	fp   [32]byte
	keys []*pubKey
	// by[strategy][id] lists the keys carrying that identifier.
	by [numStrategies]map[string][]*pubKey
}

// pubKey is one verification key, typed: the crypto type decides which
// algorithms can ever use it, so an HS256 token can never be checked with an
// RSA key's bytes (algorithm confusion).
type pubKey struct {
	kid, x5t, x5tS256 string
	alg               string // the JWK "alg" parameter; "" allows any matching alg
	key               any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (oct)
	// sign is the private form when the JWK carries it (*rsa.PrivateKey,
	// *ecdsa.PrivateKey, ed25519.PrivateKey, or the oct secret): what
	// auth/signer signs with. nil for a public key.
	sign any
}

// usableFor reports whether k may verify a signature made with alg.
func (k *pubKey) usableFor(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		switch alg {
		case "HS256", "HS384", "HS512":
			return len(key) > 0
		}
	}
	return false
}

// keyStrategy is key_identify_strategy.
type keyStrategy uint8

const (
	strategyKid keyStrategy = iota
	strategyX5t
	strategyX5tS256
	strategyKidX5t
	numStrategies
)

func parseStrategy(s string) (keyStrategy, bool) {
	switch s {
	case "", "kid":
		return strategyKid, true
	case "x5t":
		return strategyX5t, true
	case "x5t#S256":
		return strategyX5tS256, true
	case "kid_x5t":
		return strategyKidX5t, true
	}
	return 0, false
}

// tokenID returns the identifier a token's header gives under strategy,
// following krakend-jose: x5t falls back to kid when absent, kid_x5t is kid
// followed by x5t.
func (st keyStrategy) tokenID(h *joseHeader) string {
	x5t := h.X5t
	if x5t == "" {
		x5t = h.Kid
	}
	switch st {
	case strategyX5t:
		return x5t
	case strategyX5tS256:
		if h.X5tS256 != "" {
			return h.X5tS256
		}
		return h.Kid
	case strategyKidX5t:
		return h.Kid + x5t
	default:
		return h.Kid
	}
}

func (st keyStrategy) keyID(k *pubKey) string {
	switch st {
	case strategyX5t:
		return k.x5t
	case strategyX5tS256:
		return k.x5tS256
	case strategyKidX5t:
		if k.x5t == "" {
			return ""
		}
		return k.kid + k.x5t
	default:
		return k.kid
	}
}

// find returns the key for a token identifier under strategy that can
// verify alg. A token without an identifier is accepted only when exactly
// one key of the set can verify alg (common for single-key HS setups); we
// never try several keys in turn, which would multiply the cost of a forged
// token.
func (ks *keySet) find(st keyStrategy, id, alg string) *pubKey {
	if id == "" {
		var only *pubKey
		for _, k := range ks.keys {
			if k.usableFor(alg) {
				if only != nil {
					return nil
				}
				only = k
			}
		}
		return only
	}
	for _, k := range ks.by[st][id] {
		if k.usableFor(alg) {
			return k
		}
	}
	return nil
}

// parseKeySet parses a JWKS document into typed keys. Keys that are not
// signature keys (use other than "sig"), or of a type we cannot verify with,
// are skipped; a set with no usable key is an error, so a broken document
// never replaces good keys.
func parseKeySet(body []byte) (*keySet, error) {
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	ks := &keySet{}
	for st := range ks.by {
		ks.by[st] = make(map[string][]*pubKey)
	}
	var prints [][]byte
	for i := range set.Len() {
		key, _ := set.Key(i)
		if use, ok := key.KeyUsage(); ok && use != "sig" {
			continue
		}
		pk, err := toPubKey(key)
		if err != nil {
			continue
		}
		tp, err := key.Thumbprint(crypto.SHA256)
		if err != nil {
			continue
		}
		ks.keys = append(ks.keys, pk)
		for st := range numStrategies {
			if id := st.keyID(pk); id != "" {
				ks.by[st][id] = append(ks.by[st][id], pk)
			}
		}
		prints = append(prints, fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%x\x00%t", pk.kid, pk.x5t, pk.x5tS256, pk.alg, tp, pk.sign != nil))
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("parse jwks: no usable signature key")
	}
	sort.Slice(prints, func(i, j int) bool { return bytes.Compare(prints[i], prints[j]) < 0 })
	ks.fp = sha256.Sum256(bytes.Join(prints, []byte{'\n'}))
	return ks, nil
}

func toPubKey(key jwk.Key) (*pubKey, error) {
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, err
	}
	pk := &pubKey{}
	switch r := raw.(type) {
	case *rsa.PrivateKey:
		pk.key, pk.sign = &r.PublicKey, r
	case *rsa.PublicKey:
		pk.key = r
	case *ecdsa.PrivateKey:
		pk.key, pk.sign = &r.PublicKey, r
	case *ecdsa.PublicKey:
		pk.key = r
	case ed25519.PrivateKey:
		pk.key, pk.sign = r.Public().(ed25519.PublicKey), r
	case ed25519.PublicKey:
		pk.key = r
	case []byte:
		pk.key = slices.Clone(r)
		pk.sign = pk.key
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
	pk.kid, _ = key.KeyID()
	if alg, ok := key.Algorithm(); ok {
		pk.alg = alg.String()
	}
	pk.x5t, _ = key.X509CertThumbprint()
	pk.x5tS256, _ = key.X509CertThumbprintS256()
	if chain, ok := key.X509CertChain(); ok && chain.Len() > 0 && (pk.x5t == "" || pk.x5tS256 == "") {
		if enc, ok := chain.Get(0); ok {
			if der, err := base64.StdEncoding.DecodeString(string(enc)); err == nil {
				if pk.x5t == "" {
					sum := sha1.Sum(der)
					pk.x5t = base64.RawURLEncoding.EncodeToString(sum[:])
				}
				if pk.x5tS256 == "" {
					sum := sha256.Sum256(der)
					pk.x5tS256 = base64.RawURLEncoding.EncodeToString(sum[:])
				}
			}
		}
	}
	return pk, nil
}

// checkJWKURL enforces https unless disable_jwk_security.
func checkJWKURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwk url: %w", err)
	}
	switch {
	case u.Host == "":
		return errors.New("jwk url: no host")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && allowHTTP:
		return nil
	case u.Scheme == "http":
		return errors.New("jwk url: http needs disable_jwk_security")
	default:
		return fmt.Errorf("jwk url: scheme %q is not https", u.Scheme)
	}
}
