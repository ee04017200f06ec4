package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// syncServer implements gatewayv1.SyncServiceServer on top of a Service.
type syncServer struct {
	gatewayv1.UnimplementedSyncServiceServer
	svc *Service
}

// Sync serves one edge stream. The structure follows go-control-plane's
// StreamHandler: one goroutine turns Recv into a channel, and this goroutine
// alone sends, selecting on the stream ctx, the service shutdown, wake-ups
// of both hubs, received messages and the keepalive ticker. Nothing here
// holds a lock while sending.
//
// Config and revocations are independent on the stream: a snapshot waits
// for the ACK of the previous one, revocations never wait for anything
// (their own "sent up to" seq decides), and after every event revocations
// are sent first.
func (s *syncServer) Sync(stream gatewayv1.SyncService_SyncServer) error {
	svc := s.svc
	if !svc.admit.allow(time.Now()) {
		svc.metrics.streamsRefused.WithLabelValues(refusedRate).Inc()
		return status.Error(codes.ResourceExhausted, "too many new sync streams; retry with backoff")
	}
	if !svc.track() {
		return errShuttingDown
	}
	defer svc.untrack()

	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	defer context.AfterFunc(svc.closing, func() { cancel(errShuttingDown) })()

	reqs := make(chan *gatewayv1.SyncRequest)
	recvErr := make(chan error, 1)
	// The pump ends when Recv fails, which gRPC guarantees once this handler
	// returns (the stream's context is cancelled); Service.Close waits for it.
	svc.wg.Add(1) // the handler's own track keeps the counter above zero
	go func() {
		defer svc.wg.Done()
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	hello, err := s.awaitHello(ctx, reqs, recvErr)
	if err != nil {
		return err
	}
	id, err := s.admit(ctx, hello)
	if err != nil {
		return err
	}

	peerAddr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	e := &edgeStream{
		svc:       svc,
		stream:    stream,
		node:      hello.GetNodeId(),
		region:    hello.GetRegion(),
		build:     hello.GetBuildVersion(),
		heldVer:   hello.GetConfigVersion(),
		heldSHA:   hello.GetConfigSha256(),
		revSent:   hello.GetRevocationSeq(),
		revAcked:  hello.GetRevocationSeq(),
		lastRecv:  time.Now(),
		startedAt: time.Now(),
	}
	e.log = svc.log.With().Str("node_id", e.node).Str("region", hello.GetRegion()).Logger()
	if e.connID, err = svc.fleet.connect(hello, id, peerAddr, cancel, e.startedAt); err != nil {
		svc.metrics.streamsRefused.WithLabelValues(refusedFleetFull).Inc()
		return err
	}
	// An edge whose set differs from the log at its seq (a rogue or
	// confused control plane reset it, or its disk lied) gets a reset.
	e.repair = svc.revocationSetDiffers(ctx, hello)
	if rv := hello.GetRejectedVersion(); rv != 0 {
		// The edge refused the current snapshot before it connected here (a
		// restarted control plane forgets NACKs): remember it, so the
		// snapshot is not sent again.
		if cur := svc.hub.target(hello.GetRegion()); cur != nil && cur.env.GetVersion() == rv && cur.env.GetSha256() == hello.GetRejectedSha256() {
			svc.fleet.nack(e.node, e.connID, &gatewayv1.Nack{
				Version: rv, Sha256: hello.GetRejectedSha256(), RunningVersion: hello.GetConfigVersion(),
				Detail: fmt.Sprintf("snapshot v%d refused before the edge connected to this control plane", rv),
			}, e.startedAt)
		}
	}
	svc.metrics.streamsOpen.Inc()
	e.log.Info().
		Uint64("version", e.heldVer).
		Str("sha256", e.heldSHA).
		Uint64("revocation_seq", e.revSent).
		Str("build", hello.GetBuildVersion()).
		Str("peer", peerAddr).
		Msg("edge connected")
	if id != nil {
		if left := time.Until(id.notAfter); left < svc.cfg.CertWarnBefore {
			e.log.Warn().Time("not_after", id.notAfter).Dur("left", left.Round(time.Minute)).
				Msg("the edge's client certificate expires soon; issue a new one (gwctl certs issue), the edge picks it up without a restart")
		}
	}

	err = e.serve(ctx, cancel, reqs, recvErr)

	svc.metrics.streamsOpen.Dec()
	reason := ""
	if err != nil && !errors.Is(err, errStreamReplace) && ctx.Err() == nil {
		reason = "stream ended: " + err.Error()
	}
	svc.fleet.disconnect(e.node, e.connID, reason, time.Now())
	e.log.Info().Err(err).Dur("connected_for", time.Since(e.startedAt)).Msg("edge disconnected")
	return err
}

// awaitHello waits for the first message, which must be a Hello naming the
// node, within the receive timeout.
func (s *syncServer) awaitHello(ctx context.Context, reqs <-chan *gatewayv1.SyncRequest, recvErr <-chan error) (*gatewayv1.Hello, error) {
	t := time.NewTimer(s.svc.cfg.RecvTimeout)
	defer t.Stop()
	select {
	case req := <-reqs:
		hello := req.GetHello()
		if hello == nil {
			return nil, protocolError("the first message must be a hello")
		}
		if hello.GetNodeId() == "" {
			return nil, protocolError("hello.node_id is required")
		}
		return hello, nil
	case err := <-recvErr:
		return nil, endOfStream(err)
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-s.svc.done:
		return nil, errShuttingDown
	case <-t.C:
		return nil, livenessError("no hello within %s", s.svc.cfg.RecvTimeout)
	}
}

// edgeStream is the state of one stream after its Hello. It is used by the
// handler goroutine only.
type edgeStream struct {
	svc    *Service
	stream gatewayv1.SyncService_SyncServer
	log    zerolog.Logger
	node   string
	region string
	build  string
	connID uint64

	// heldVer/heldSHA: what the edge serves (from Hello, then its ACKs).
	heldVer uint64
	heldSHA string
	// inflight is the version sent and not yet ACKed or NACKed. While one is
	// in flight nothing else is sent, so pushes made while the edge applies
	// coalesce and it receives only the newest afterwards.
	inflight   uint64
	inflightAt time.Time
	// lastSent is never sent again on this stream.
	lastSent uint64
	// revSent is the revocation seq the edge holds once it has applied
	// everything sent on this stream (its Hello's seq, then the end of each
	// delta or reset sent). Deltas go out from here, pipelined, without
	// waiting for ACKs.
	revSent uint64
	// revAcked is the newest revocation seq the edge ACKed (its Hello's
	// seq until the first RevocationAck).
	revAcked  uint64
	lastRecv  time.Time
	startedAt time.Time
	// repair sends a reset first: the edge's reported set differs from
	// the log.
	repair bool
}

// serve runs the stream until it ends. Its select has as few cases as the
// work needs, since every edge runs it at every revocation, push and ACK
// (at 10,000 edges the cases' locking was a fifth of the control plane's
// CPU in a fan-out): the shutdown and the age cap end the stream through
// ctx (cancel), and both hubs wake one channel, since a wake-up means
// "look at both" anyway.
func (e *edgeStream) serve(ctx context.Context, cancel context.CancelCauseFunc, reqs <-chan *gatewayv1.SyncRequest, recvErr <-chan error) error {
	wake := make(chan struct{}, 1)
	defer e.svc.hub.subs.add(wake)()
	defer e.svc.revHub.subs.add(wake)()
	ticker := time.NewTicker(e.svc.cfg.Keepalive)
	defer ticker.Stop()
	if age := e.svc.cfg.MaxStreamAge; age > 0 {
		t := time.AfterFunc(jitter(age), func() {
			e.svc.metrics.streamsAged.Inc()
			cancel(errStreamAged)
		})
		defer t.Stop()
	}

	if err := e.sendRevocations(ctx); err != nil {
		return err
	}
	if err := e.maybeSend(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-recvErr:
			return endOfStream(err)
		case req := <-reqs:
			if err := e.handle(req); err != nil {
				return err
			}
		case <-wake:
		case now := <-ticker.C:
			if idle := now.Sub(e.lastRecv); idle > e.svc.cfg.RecvTimeout {
				return livenessError("no message from the edge for %s", idle.Round(time.Second))
			}
			if e.inflight != 0 && now.Sub(e.inflightAt) > e.svc.cfg.AckTimeout {
				// Never answered: let newer versions through rather than
				// parking the edge until it reconnects. The same version is
				// not resent (lastSent).
				e.log.Warn().Uint64("version", e.inflight).Dur("waited", now.Sub(e.inflightAt)).Msg("edge did not ACK or NACK the snapshot")
				e.inflight = 0
			}
			ka := &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Keepalive{Keepalive: &gatewayv1.Keepalive{UnixMs: now.UnixMilli()}}}
			if err := e.stream.Send(ka); err != nil {
				return err
			}
		}
		if err := e.sendRevocations(ctx); err != nil {
			return err
		}
		if err := e.maybeSend(); err != nil {
			return err
		}
	}
}

func (e *edgeStream) handle(req *gatewayv1.SyncRequest) error {
	now := time.Now()
	e.lastRecv = now
	switch m := req.GetMsg().(type) {
	case *gatewayv1.SyncRequest_Ack:
		a := m.Ack
		if a.GetVersion() >= e.inflight {
			e.inflight = 0
		}
		e.heldVer, e.heldSHA = a.GetVersion(), a.GetSha256()
		changed := e.svc.fleet.ack(e.node, e.connID, a, now)
		ev := e.log.Info().Uint64("version", a.GetVersion()).Str("sha256", a.GetSha256())
		if cur := e.svc.hub.target(e.region); changed && cur != nil && cur.env.GetVersion() == a.GetVersion() {
			lag := now.Sub(time.UnixMilli(cur.env.GetCreatedUnixMs()))
			e.svc.metrics.convergence.Observe(max(lag, 0).Seconds())
			e.svc.converge.add(a.GetVersion(), time.UnixMilli(cur.env.GetCreatedUnixMs()), e.node, max(lag, 0))
			ev = ev.Dur("since_created", lag)
		}
		ev.Msg("edge ACK")
	case *gatewayv1.SyncRequest_Nack:
		n := m.Nack
		if n.GetVersion() >= e.inflight {
			e.inflight = 0
		}
		e.svc.fleet.nack(e.node, e.connID, n, now)
		e.svc.metrics.nacks.WithLabelValues(nackReason(n.GetViolations())).Inc()
		e.log.Warn().
			Uint64("version", n.GetVersion()).
			Uint64("running_version", n.GetRunningVersion()).
			Int("violations", len(n.GetViolations())).
			Str("detail", n.GetDetail()).
			Msg("edge NACK")
	case *gatewayv1.SyncRequest_RevocationAck:
		e.revocationAck(m.RevocationAck.GetSeq(), now)
	case *gatewayv1.SyncRequest_Keepalive:
		e.svc.fleet.keepalive(e.node, e.connID, m.Keepalive, now)
	case *gatewayv1.SyncRequest_Hello:
		return protocolError("hello sent twice on one stream")
	default:
		// A message type from a newer edge build: ignore it, stay compatible.
		e.svc.fleet.seen(e.node, e.connID, now)
		e.log.Debug().Msg("ignored an unknown sync message")
	}
	return nil
}

// maybeSend sends the current snapshot if the edge lacks it, nothing is in
// flight, this stream has not sent it already and the node never NACKed it.
func (e *edgeStream) maybeSend() error {
	cur := e.svc.hub.target(e.region)
	if cur == nil || e.inflight != 0 {
		return nil
	}
	v := cur.env.GetVersion()
	if v == e.lastSent || (v == e.heldVer && cur.env.GetSha256() == e.heldSHA) {
		return nil
	}
	if e.svc.nackedVersion(e.node, e.build, v) {
		return nil
	}
	if err := e.stream.Send(cur.resp); err != nil {
		return err
	}
	e.inflight, e.inflightAt, e.lastSent = v, time.Now(), v
	e.log.Info().Uint64("version", v).Int("bytes", len(cur.env.GetPayload())).Msg("snapshot sent")
	return nil
}

// jitter returns d moved by up to 10% either way, so streams opened
// together (a reconnect storm) do not all end together.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// endOfStream turns the Recv error that ended a stream into the handler's
// result: a clean close by the edge is not an error.
func endOfStream(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
