package config

import (
	"crypto/tls"
	"slices"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TLS is the service's `tls` block when enabled: TLS on the edge's
// listener. File names are paths on the edge's host, as in KrakenD; the
// control plane never reads them.
type TLS struct {
	Keys                []KeyPair // keys[], then public_key/private_key (KrakenD's order)
	MinVersion          uint16
	MaxVersion          uint16
	CipherSuites        []uint16
	CurvePreferences    []tls.CurveID
	EnableMTLS          bool
	CACerts             []string
	DisableSystemCAPool bool
}

// KeyPair names a PEM certificate and its private key.
type KeyPair struct {
	Certificate string
	PrivateKey  string
}

// ClientTLS is `client_tls`: the upstream client's TLS settings.
type ClientTLS struct {
	AllowInsecureConnections bool
	CACerts                  []string
	DisableSystemCAPool      bool
	MinVersion               uint16
	MaxVersion               uint16
	CurvePreferences         []tls.CurveID
	CipherSuites             []uint16
	ClientCerts              []KeyPair
}

// KrakenD's defaults (lura transport/http/server): a version it does not
// know, or none, is TLS 1.3; no curves means P-521, P-384, P-256 (in that
// order); no cipher suites means six ECDHE AEAD suites (TLS 1.2 and lower;
// Go's TLS 1.3 suites are fixed).
var (
	tlsVersions = map[string]uint16{
		//lint:ignore SA1019 KrakenD's name; Go refuses SSL 3.0 at handshake
		"SSL3.0": tls.VersionSSL30,
		"TLS10":  tls.VersionTLS10,
		"TLS11":  tls.VersionTLS11,
		"TLS12":  tls.VersionTLS12,
		"TLS13":  tls.VersionTLS13,
	}
	defaultCurves       = []tls.CurveID{tls.CurveP521, tls.CurveP384, tls.CurveP256}
	defaultCipherSuites = []uint16{
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
	}
)

// tlsVersion decodes min_version/max_version as KrakenD reads them.
func (d *decoder) tlsVersion(dst *uint16) handler {
	return func(n *node, p path) {
		if !d.want(n, p, typeString) {
			return
		}
		v, ok := tlsVersions[n.text]
		if !ok {
			d.ws.add(p, KindNormalized, "%q is not a version KrakenD knows (SSL3.0, TLS10, TLS11, TLS12, TLS13); KrakenD reads it as TLS13, and so does the edge", n.text)
			v = tls.VersionTLS13
		}
		//lint:ignore SA1019 KrakenD's SSL3.0 name is read to warn that Go cannot use it
		if v == tls.VersionSSL30 {
			d.ws.add(p, KindNormalized, "Go's TLS has no SSL 3.0; TLS 1.0 is the lowest version a handshake can use")
		}
		*dst = v
	}
}

// uint16List decodes a list of 16-bit numbers (cipher suite and curve IDs).
func (d *decoder) uint16List(dst *[]uint16) handler {
	return func(n *node, p path) {
		var out []uint16
		d.list(n, p, func(_ int, item *node, ip path) {
			v, ok := d.int64(item, ip)
			if !ok {
				return
			}
			if v < 0 || v > 0xffff {
				d.vs.add(ip, KindInvalid, "%d is not a 16-bit TLS identifier", v)
				return
			}
			out = append(out, uint16(v))
		})
		*dst = out
	}
}

// keyPair decodes {public_key|certificate, private_key}; certKey names the
// certificate's key.
func (d *decoder) keyPair(n *node, p path, certKey string) (KeyPair, bool) {
	var k KeyPair
	d.object(n, p, objectSpec{fields: map[string]handler{
		certKey:       d.str(&k.Certificate),
		"private_key": d.str(&k.PrivateKey),
	}})
	if n.kind != typeObject {
		return k, false
	}
	ok := true
	if k.Certificate == "" {
		d.vs.add(p.field(certKey), KindRequired, "a key pair needs the path of its PEM certificate (on the edge's host)")
		ok = false
	}
	if k.PrivateKey == "" {
		d.vs.add(p.field("private_key"), KindRequired, "a key pair needs the path of its PEM private key (on the edge's host)")
		ok = false
	}
	return k, ok
}

// tls decodes the service's tls block. A disabled block serves plain HTTP,
// as KrakenD does; its other keys are then warned about.
func (d *decoder) tls(n *node, p path) *TLS {
	var (
		disabled, preferServer bool
		pub, priv              string
		t                      = &TLS{}
		set                    []path
		keys                   []KeyPair
		ciphers, curves        []uint16
		minV, maxV             = uint16(tls.VersionTLS13), uint16(tls.VersionTLS13)
	)
	track := func(h handler) handler {
		return func(n *node, kp path) { set = append(set, kp); h(n, kp) }
	}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"disabled":    d.boolean(&disabled),
		"public_key":  track(d.str(&pub)),
		"private_key": track(d.str(&priv)),
		"keys": track(func(n *node, kp path) {
			d.list(n, kp, func(_ int, item *node, ip path) {
				if k, ok := d.keyPair(item, ip, "public_key"); ok {
					keys = append(keys, k)
				}
			})
		}),
		"min_version":                 track(d.tlsVersion(&minV)),
		"max_version":                 track(d.tlsVersion(&maxV)),
		"cipher_suites":               track(d.uint16List(&ciphers)),
		"curve_preferences":           track(d.uint16List(&curves)),
		"prefer_server_cipher_suites": track(d.boolean(&preferServer)),
		"enable_mtls":                 track(d.boolean(&t.EnableMTLS)),
		"ca_certs":                    track(d.strings(&t.CACerts)),
		"disable_system_ca_pool":      track(d.boolean(&t.DisableSystemCAPool)),
	}})
	if n.kind != typeObject {
		return nil
	}
	if disabled {
		for _, kp := range set {
			d.ws.add(kp, KindNoEffect, "accepted but has no effect: the tls block is disabled, so the edge serves plain HTTP (as KrakenD does)")
		}
		return nil
	}
	if t.EnableMTLS {
		// KrakenD trusts the certificates of keys[] for clients too; the
		// root public_key joins the served keys only after its client
		// pool is built, so it is not trusted.
		for _, k := range keys {
			t.CACerts = append(t.CACerts, k.Certificate)
		}
	}
	if pub != "" || priv != "" {
		k := KeyPair{Certificate: pub, PrivateKey: priv}
		switch {
		case pub == "":
			d.vs.add(p.field("public_key"), KindRequired, "private_key is set: give the path of its PEM certificate too")
		case priv == "":
			d.vs.add(p.field("private_key"), KindRequired, "public_key is set: give the path of its PEM private key too")
		default:
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 && pub == "" && priv == "" && !d.hasErrorsUnder(p) {
		d.vs.add(p, KindRequired, "TLS is enabled but no certificate is given: set public_key and private_key (paths on the edge's host) or keys, or \"disabled\": true")
	}
	t.Keys = keys
	t.MinVersion, t.MaxVersion = minV, maxV
	if t.MinVersion > t.MaxVersion {
		d.vs.add(p.field("min_version"), KindInvalid, "min_version is above max_version: no handshake could succeed")
	}
	t.CipherSuites = d.cipherSuites(ciphers, p.field("cipher_suites"), t.MinVersion, t.MaxVersion)
	if len(ciphers) > 0 && t.MinVersion < tls.VersionTLS13 && !hasH2Suite(ciphers) {
		d.ws.add(p.field("cipher_suites"), KindApproximated, "no TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (49199) or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (49195), which HTTP/2 over TLS requires (RFC 9113 §9.2.2) below min_version TLS13: KrakenD's server refuses to start with this list (Go's net/http); the edge serves it with HTTP/1.1 only (no h2 by ALPN)")
	}
	t.CurvePreferences = d.curves(curves, p.field("curve_preferences"))
	if preferServer {
		d.ws.add(p.field("prefer_server_cipher_suites"), KindNoEffect, "accepted but has no effect: KrakenD does not pass it on, and Go's TLS ignores it (it orders cipher suites itself)")
	}
	if !t.EnableMTLS {
		for _, k := range []string{"ca_certs", "disable_system_ca_pool"} {
			if slices.Contains(set, p.field(k)) {
				d.ws.add(p.field(k), KindNoEffect, "accepted but has no effect: client certificates are only asked for with enable_mtls (as KrakenD)")
			}
		}
	}
	return t
}

// hasErrorsUnder reports a violation already recorded at or under p.
func (d *decoder) hasErrorsUnder(p path) bool {
	for _, v := range d.vs.list {
		if v.Path == string(p) || len(v.Path) > len(p) && v.Path[:len(p)] == string(p) {
			return true
		}
	}
	return false
}

// cipherSuites applies KrakenD's default and warns about suites that do
// nothing: unknown to Go, or set where only TLS 1.3 can be negotiated
// (Go's TLS 1.3 suites cannot be configured).
func (d *decoder) cipherSuites(ids []uint16, p path, minV, maxV uint16) []uint16 {
	if len(ids) == 0 {
		return defaultCipherSuites
	}
	if minV >= tls.VersionTLS13 && maxV >= tls.VersionTLS13 {
		d.ws.add(p, KindNoEffect, "accepted but has no effect: only TLS 1.3 can be negotiated (min_version and max_version, TLS13 by default as in KrakenD), and Go's TLS 1.3 cipher suites are fixed")
		return ids
	}
	known := map[uint16]bool{}
	for _, c := range tls.CipherSuites() {
		known[c.ID] = true
	}
	for _, c := range tls.InsecureCipherSuites() {
		known[c.ID] = true
	}
	for i, id := range ids {
		if !known[id] {
			d.ws.add(p.index(i), KindNoEffect, "accepted but has no effect: %d (0x%04x) is not a cipher suite Go's TLS implements", id, id)
		}
	}
	return ids
}

// hasH2Suite reports whether ids holds one of the TLS 1.2 cipher suites
// HTTP/2 makes mandatory; the edge offers h2 by ALPN on the same rule
// (edge/tlsconf.H2Capable).
func hasH2Suite(ids []uint16) bool {
	return slices.Contains(ids, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) || slices.Contains(ids, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
}

// curves applies KrakenD's default and warns about unknown curve IDs.
func (d *decoder) curves(ids []uint16, p path) []tls.CurveID {
	if len(ids) == 0 {
		return defaultCurves
	}
	out := make([]tls.CurveID, len(ids))
	for i, id := range ids {
		out[i] = tls.CurveID(id)
		switch out[i] {
		case tls.CurveP256, tls.CurveP384, tls.CurveP521, tls.X25519, tls.X25519MLKEM768:
		default:
			d.ws.add(p.index(i), KindNoEffect, "accepted but has no effect: %d is not a curve Go's TLS implements (23 P-256, 24 P-384, 25 P-521, 29 X25519, 4588 X25519MLKEM768)", id)
		}
	}
	return out
}

// clientTLS decodes `client_tls`.
func (d *decoder) clientTLS(dst **ClientTLS) handler {
	return func(n *node, p path) {
		c := &ClientTLS{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13}
		var ciphers, curves []uint16
		d.object(n, p, objectSpec{fields: map[string]handler{
			"allow_insecure_connections": d.boolean(&c.AllowInsecureConnections),
			"ca_certs":                   d.strings(&c.CACerts),
			"disable_system_ca_pool":     d.boolean(&c.DisableSystemCAPool),
			"min_version":                d.tlsVersion(&c.MinVersion),
			"max_version":                d.tlsVersion(&c.MaxVersion),
			"curve_preferences":          d.uint16List(&curves),
			"cipher_suites":              d.uint16List(&ciphers),
			"client_certs": func(n *node, kp path) {
				d.list(n, kp, func(_ int, item *node, ip path) {
					if k, ok := d.keyPair(item, ip, "certificate"); ok {
						c.ClientCerts = append(c.ClientCerts, k)
					}
				})
			},
		}})
		if n.kind != typeObject {
			return
		}
		if c.MinVersion > c.MaxVersion {
			d.vs.add(p.field("min_version"), KindInvalid, "min_version is above max_version: no handshake could succeed")
		}
		c.CipherSuites = d.cipherSuites(ciphers, p.field("cipher_suites"), c.MinVersion, c.MaxVersion)
		c.CurvePreferences = d.curves(curves, p.field("curve_preferences"))
		*dst = c
	}
}

// compileClientTLS is KrakenD's client TLS: client_tls, or an empty one
// when only the root allow_insecure_connections is set (lura then builds
// one, so its defaults, TLS 1.3 only, apply too). nil: Go's defaults.
func compileClientTLS(s *Service) *gatewayv1.ClientTLS {
	c := s.ClientTLS
	if c == nil && !s.AllowInsecureConnections {
		return nil
	}
	if c == nil {
		c = &ClientTLS{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13,
			CipherSuites: defaultCipherSuites, CurvePreferences: defaultCurves}
	}
	return &gatewayv1.ClientTLS{
		AllowInsecureConnections: c.AllowInsecureConnections || s.AllowInsecureConnections,
		CaCerts:                  c.CACerts,
		DisableSystemCaPool:      c.DisableSystemCAPool,
		MinVersion:               uint32(c.MinVersion),
		MaxVersion:               uint32(c.MaxVersion),
		CurvePreferences:         curveIDs(c.CurvePreferences),
		CipherSuites:             wide(c.CipherSuites),
		ClientCerts:              keyPairs(c.ClientCerts),
	}
}

func compileServerTLS(t *TLS) *gatewayv1.ServerTLS {
	if t == nil {
		return nil
	}
	return &gatewayv1.ServerTLS{
		Keys:                keyPairs(t.Keys),
		MinVersion:          uint32(t.MinVersion),
		MaxVersion:          uint32(t.MaxVersion),
		CipherSuites:        wide(t.CipherSuites),
		CurvePreferences:    curveIDs(t.CurvePreferences),
		EnableMtls:          t.EnableMTLS,
		CaCerts:             t.CACerts,
		DisableSystemCaPool: t.DisableSystemCAPool,
	}
}

func keyPairs(ks []KeyPair) []*gatewayv1.KeyPair {
	out := make([]*gatewayv1.KeyPair, len(ks))
	for i, k := range ks {
		out[i] = &gatewayv1.KeyPair{Certificate: k.Certificate, PrivateKey: k.PrivateKey}
	}
	return out
}

func wide(v []uint16) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = uint32(x)
	}
	return out
}

func curveIDs(v []tls.CurveID) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = uint32(x)
	}
	return out
}
