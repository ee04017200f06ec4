package service

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/apigw/gateway/controlplane/pki"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

// Who may hold a sync stream, and how much of the control plane one stream
// may take. An edge with a client certificate is the node its certificate
// names (pki.Identity); its Hello must agree. Every Hello field has a
// length and character limit, the registry has a size cap and forgets
// disconnected edges after a TTL, new streams are admitted at a bounded
// rate, and a message from an edge is at most SyncMaxRecvBytes.

// Values of gw_controlplane_streams_refused_total{reason}.
const (
	refusedIdentity  = "identity"
	refusedHello     = "hello"
	refusedRate      = "rate"
	refusedFleetFull = "fleet_full"
)

// Defaults of the stream limits.
const (
	// SyncMaxRecvBytes bounds one message from an edge. The largest an
	// edge sends is a NACK with violations; a megabyte is far above that.
	SyncMaxRecvBytes = 1 << 20
	// DefaultMaxEdges caps the fleet registry.
	DefaultMaxEdges = 10_000
	// DefaultFleetTTL is how long a disconnected edge stays listed.
	DefaultFleetTTL = 24 * time.Hour
	// DefaultAdmissionRate and DefaultAdmissionBurst bound how fast new
	// streams are accepted (a reconnect storm of a whole fleet after a
	// restart spreads over a few seconds; edges back off with jitter).
	DefaultAdmissionRate  = 200
	DefaultAdmissionBurst = 400
)

// Limits of a Hello (node id and region: pki.CheckID).
const (
	maxBuildLen   = 128
	maxFeatures   = 64
	maxFeatureLen = 64
)

// SyncServerOptions are the gRPC server options the sync listener needs.
//
// The rest keep an idle stream small, since a control plane holds one per
// edge (10,000 and more; measured with test/bench/fleet): the 32 KiB write
// buffer of each connection goes back to a shared pool after every flush
// instead of staying with the connection (gRPC already pools read buffers),
// and fixed 64 KiB windows turn off gRPC's bandwidth-delay probing, which
// answers the first data frame after a quiet period with a PING: a write
// and a read per ACK on every stream, for streams whose edge-to-control-plane
// traffic is small ACKs and keepalives (a window of 64 KiB still carries
// the largest message, SyncMaxRecvBytes, with window updates).
func SyncServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(SyncMaxRecvBytes),
		grpc.InitialWindowSize(syncWindow),
		grpc.InitialConnWindowSize(syncWindow),
	}
}

// syncWindow is the flow-control window of sync streams and connections
// (gRPC's minimum; setting it disables the dynamic window).
const syncWindow = 64 << 10

// checkHello applies the limits of every Hello field.
func checkHello(h *gatewayv1.Hello) error {
	if err := pki.CheckID("hello.node_id", h.GetNodeId()); err != nil {
		return err
	}
	if h.GetRegion() != "" {
		if err := pki.CheckID("hello.region", h.GetRegion()); err != nil {
			return err
		}
	}
	if err := checkPrintable("hello.build_version", h.GetBuildVersion(), maxBuildLen); err != nil {
		return err
	}
	if n := len(h.GetFeatures()); n > maxFeatures {
		return fmt.Errorf("hello.features: %d entries, at most %d", n, maxFeatures)
	}
	for i, f := range h.GetFeatures() {
		if err := checkPrintable(fmt.Sprintf("hello.features[%d]", i), f, maxFeatureLen); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{"hello.config_sha256": h.GetConfigSha256(), "hello.revocation_set_sha256": h.GetRevocationSetSha256()} {
		if err := checkPrintable(name, v, 64); err != nil {
			return err
		}
	}
	return nil
}

// checkPrintable allows up to max bytes of printable ASCII without spaces.
func checkPrintable(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes, at most %d", what, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%s: byte %d (%q) is not printable ASCII", what, i, c)
		}
	}
	return nil
}

// identity is who a stream's peer proved to be.
type identity struct {
	nodeID, region string // from the certificate; region "" = any
	notAfter       time.Time
}

// peerIdentity returns the identity of a stream whose peer presented a
// verified client certificate, nil for a stream without one (plaintext on
// loopback, or the explicit insecure mode).
func peerIdentity(ctx context.Context) (*identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil, nil
	}
	leaf := ti.State.VerifiedChains[0][0]
	return identityOf(leaf)
}

func identityOf(leaf *x509.Certificate) (*identity, error) {
	node, region, err := pki.Identity(leaf)
	if err != nil {
		return nil, err
	}
	return &identity{nodeID: node, region: region, notAfter: leaf.NotAfter}, nil
}

// admit checks a Hello against the limits and the stream's identity.
func (s *syncServer) admit(ctx context.Context, hello *gatewayv1.Hello) (*identity, error) {
	if err := checkHello(hello); err != nil {
		s.svc.metrics.streamsRefused.WithLabelValues(refusedHello).Inc()
		return nil, protocolError("%v", err)
	}
	id, err := peerIdentity(ctx)
	if err != nil {
		s.svc.metrics.streamsRefused.WithLabelValues(refusedIdentity).Inc()
		return nil, status.Errorf(codes.PermissionDenied, "client certificate: %v", err)
	}
	if id == nil {
		return nil, nil
	}
	if hello.GetNodeId() != id.nodeID {
		s.svc.metrics.streamsRefused.WithLabelValues(refusedIdentity).Inc()
		s.svc.log.Warn().Str("certificate_node_id", id.nodeID).Str("hello_node_id", hello.GetNodeId()).Msg("refused a sync stream: its Hello names another node than its certificate")
		return nil, status.Errorf(codes.PermissionDenied, "hello.node_id %q is not the node your certificate names (%q)", hello.GetNodeId(), id.nodeID)
	}
	if id.region != "" && hello.GetRegion() != id.region {
		s.svc.metrics.streamsRefused.WithLabelValues(refusedIdentity).Inc()
		return nil, status.Errorf(codes.PermissionDenied, "hello.region %q is not the region your certificate names (%q)", hello.GetRegion(), id.region)
	}
	return id, nil
}

// errAdmission refuses a new stream over the admission limit.
var errAdmission = status.Error(codes.ResourceExhausted, "too many new sync streams; retry with backoff")

// admittedKey marks the context of a stream SyncTap admitted.
type admittedKey struct{}

// SyncTap applies the admission limit as the sync server's tap
// (grpc.InTapHandle(svc.SyncTap)), when gRPC has read a stream's headers and
// before it starts the stream's handler: a refused stream then costs a
// reset, not a handler goroutine, its contexts and buffers. A reconnect
// storm of 10,000 edges at 200/s refuses about 50,000 streams, whose
// garbage stays behind as fragmented heap. Sync applies the limit itself to
// a stream that did not pass a tap (a server without this option).
func (s *Service) SyncTap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != gatewayv1.SyncService_Sync_FullMethodName {
		return ctx, nil
	}
	if !s.admit.allow(time.Now()) {
		s.metrics.streamsRefused.WithLabelValues(refusedRate).Inc()
		return nil, errAdmission
	}
	return context.WithValue(ctx, admittedKey{}, true), nil
}

// admission is a token bucket over new streams.
type admission struct {
	rate, burst float64

	mu     sync.Mutex // guards the fields below
	tokens float64
	last   time.Time
}

func newAdmission(rate, burst int) *admission {
	return &admission{rate: float64(rate), burst: float64(burst), tokens: float64(burst)}
}

// allow takes a token if one is left.
func (a *admission) allow(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.last.IsZero() {
		a.tokens = min(a.burst, a.tokens+now.Sub(a.last).Seconds()*a.rate)
	}
	a.last = now
	if a.tokens < 1 {
		return false
	}
	a.tokens--
	return true
}

// SetSyncCertExpiry records when the sync listener's certificate expires
// (metric and Status).
func (s *Service) SetSyncCertExpiry(t time.Time) {
	s.syncCertNotAfter.Store(t.UnixMilli())
	s.metrics.syncCertExpiry.Set(float64(t.Unix()))
}

// revocationSetDiffers reports whether the set an edge reported in its
// Hello differs from the log at the edge's seq. A store error or a seq the
// log does not reach (the stream's catch-up handles that) reports false.
func (s *Service) revocationSetDiffers(ctx context.Context, hello *gatewayv1.Hello) bool {
	if hello.GetRevocationSetSha256() == "" || hello.GetRevocationSeq() == 0 {
		return false
	}
	cutoff := hello.GetRevocationSetCutoffUnixMs()
	live, head, err := s.store.LiveRevocations(ctx, time.UnixMilli(cutoff))
	if err != nil || hello.GetRevocationSeq() > head {
		return false
	}
	return sign.RevocationSetHash(toEntries(live), hello.GetRevocationSeq(), cutoff) != hello.GetRevocationSetSha256()
}

// IssueCertificate signs an edge certificate with the built-in CA.
func (a *adminServer) IssueCertificate(ctx context.Context, req *gatewayv1.IssueCertificateRequest) (_ *gatewayv1.IssueCertificateResponse, err error) {
	ae := &gatewayv1.AuditEntry{Action: "issue_certificate", NodeId: truncate(req.GetNodeId(), maxAuditReason)}
	defer func() { a.svc.record(ctx, ae, err) }()
	ca := a.svc.cfg.CA
	if ca == nil {
		return nil, status.Error(codes.FailedPrecondition, "this control plane has no built-in CA: run `gw-controlplane ca init` in its data dir, or issue certificates with your own PKI")
	}
	validity := time.Duration(req.GetValiditySeconds()) * time.Second
	cert, notAfter, err := ca.Issue([]byte(req.GetCsrPem()), req.GetNodeId(), req.GetRegion(), validity, time.Now())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "issue certificate: %v", err)
	}
	ae.Outcome = outcomeCreated
	a.svc.log.Info().Str("node_id", req.GetNodeId()).Str("region", req.GetRegion()).Time("not_after", notAfter).
		Str("author", auditAuthor(ctx, "")).Msg("edge certificate issued")
	resp := &gatewayv1.IssueCertificateResponse{CertificatePem: string(cert), CaPem: string(ca.CertPEM()), NotAfterUnixMs: notAfter.UnixMilli()}
	if s := a.svc.cfg.Signer; s != nil {
		pub, err := sign.EncodePublicKey(s.Public())
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode signing key: %v", err)
		}
		resp.SnapshotPublicKeyPem = string(pub)
	}
	return resp, nil
}
