package config

import (
	"crypto/tls"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

const tlsPair = `"public_key": "/c.pem", "private_key": "/k.pem"`

func TestTLSWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []pair
	}{
		{"plain pair", conf(`"tls": {`+tlsPair+`}`, ep("/a", "")), nil},
		{"prefer_server_cipher_suites", conf(`"tls": {`+tlsPair+`, "prefer_server_cipher_suites": true}`, ep("/a", "")),
			[]pair{{"tls.prefer_server_cipher_suites", KindNoEffect}}},
		{"CA settings without mTLS", conf(`"tls": {`+tlsPair+`, "ca_certs": ["/ca.pem"], "disable_system_ca_pool": true}`, ep("/a", "")),
			[]pair{{"tls.ca_certs", KindNoEffect}, {"tls.disable_system_ca_pool", KindNoEffect}}},
		{"CA settings with mTLS", conf(`"tls": {`+tlsPair+`, "enable_mtls": true, "ca_certs": ["/ca.pem"], "disable_system_ca_pool": true}`, ep("/a", "")), nil},
		{"cipher suites under TLS 1.3 only", conf(`"tls": {`+tlsPair+`, "cipher_suites": [49199]}`, ep("/a", "")),
			[]pair{{"tls.cipher_suites", KindNoEffect}}},
		{"cipher suites with TLS 1.2", conf(`"tls": {`+tlsPair+`, "min_version": "TLS12", "cipher_suites": [49199, 1]}`, ep("/a", "")),
			[]pair{{"tls.cipher_suites[1]", KindNoEffect}}},
		{"TLS 1.2 suites without HTTP/2's", conf(`"tls": {`+tlsPair+`, "min_version": "TLS12", "cipher_suites": [49200, 52392]}`, ep("/a", "")),
			[]pair{{"tls.cipher_suites", KindApproximated}}},
		{"TLS 1.2 suites with HTTP/2's ECDSA one", conf(`"tls": {`+tlsPair+`, "min_version": "TLS12", "cipher_suites": [49200, 49195]}`, ep("/a", "")), nil},
		{"unknown curve", conf(`"tls": {`+tlsPair+`, "curve_preferences": [29, 7]}`, ep("/a", "")),
			[]pair{{"tls.curve_preferences[1]", KindNoEffect}}},
		{"unknown version", conf(`"tls": {`+tlsPair+`, "min_version": "TLS1.2"}`, ep("/a", "")),
			[]pair{{"tls.min_version", KindNormalized}}},
		{"client_tls unknown version", conf(`"client_tls": {"max_version": "tls12"}`, ep("/a", "")),
			[]pair{{"client_tls.max_version", KindNormalized}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, warningsOf(t, tt.doc)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTLSSnapshot: what the edge receives, KrakenD's defaults written in.
func TestTLSSnapshot(t *testing.T) {
	t.Parallel()
	kp := func(c, k string) *gatewayv1.KeyPair { return &gatewayv1.KeyPair{Certificate: c, PrivateKey: k} }
	defaultSuites := []uint32{0xc02f, 0xc02b, 0xc030, 0xc02c, 0xcca8, 0xcca9}
	defaultCurves := []uint32{25, 24, 23}
	tests := []struct {
		name       string
		root       string
		wantServer *gatewayv1.ServerTLS
		wantClient *gatewayv1.ClientTLS
	}{
		{"no tls", ``, nil, nil},
		{"disabled", `"tls": {"disabled": true, ` + tlsPair + `}`, nil, nil},
		{"defaults, keys[] before the root pair", `"tls": {` + tlsPair + `, "keys": [{"public_key": "/b.pem", "private_key": "/b.key"}]}`,
			&gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{kp("/b.pem", "/b.key"), kp("/c.pem", "/k.pem")},
				MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13, CipherSuites: defaultSuites, CurvePreferences: defaultCurves}, nil},
		{"every setting", `"tls": {` + tlsPair + `, "min_version": "TLS11", "max_version": "TLS12", "cipher_suites": [49199], "curve_preferences": [29], "enable_mtls": true, "ca_certs": ["/ca.pem"], "disable_system_ca_pool": true}`,
			&gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{kp("/c.pem", "/k.pem")}, MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS12,
				CipherSuites: []uint32{49199}, CurvePreferences: []uint32{29}, EnableMtls: true, CaCerts: []string{"/ca.pem"}, DisableSystemCaPool: true}, nil},
		{"mTLS trusts keys[] certificates, not the root pair", `"tls": {` + tlsPair + `, "keys": [{"public_key": "/b.pem", "private_key": "/b.key"}], "enable_mtls": true, "ca_certs": ["/ca.pem"]}`,
			&gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{kp("/b.pem", "/b.key"), kp("/c.pem", "/k.pem")}, MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13,
				CipherSuites: defaultSuites, CurvePreferences: defaultCurves, EnableMtls: true, CaCerts: []string{"/ca.pem", "/b.pem"}}, nil},
		{"root allow_insecure_connections is a client_tls", `"allow_insecure_connections": true`, nil,
			&gatewayv1.ClientTLS{AllowInsecureConnections: true, MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13, CipherSuites: defaultSuites, CurvePreferences: defaultCurves}},
		{"client_tls", `"client_tls": {"ca_certs": ["/ca.pem"], "disable_system_ca_pool": true, "min_version": "TLS12", "client_certs": [{"certificate": "/c.pem", "private_key": "/c.key"}]}`, nil,
			&gatewayv1.ClientTLS{CaCerts: []string{"/ca.pem"}, DisableSystemCaPool: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13,
				CipherSuites: defaultSuites, CurvePreferences: defaultCurves, ClientCerts: []*gatewayv1.KeyPair{kp("/c.pem", "/c.key")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap := compileDoc(t, conf(tt.root, ep("/a", "")))
			if diff := cmp.Diff(tt.wantServer, snap.GetService().GetTls(), protocmp.Transform()); diff != "" {
				t.Errorf("service.tls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantClient, snap.GetService().GetHttpClient().GetTls(), protocmp.Transform()); diff != "" {
				t.Errorf("service.http_client.tls (-want +got):\n%s", diff)
			}
		})
	}
}
