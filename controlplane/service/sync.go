package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/peer"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// syncServer implements gatewayv1.SyncServiceServer on top of a Service.
type syncServer struct {
	gatewayv1.UnimplementedSyncServiceServer
	svc *Service
}

// Sync serves one edge stream with two goroutines while it is idle: this
// handler, which only waits for the stream's end (a handler's return is the
// only way to end a gRPC stream, and Recv cannot be interrupted), and a
// receiver that runs Recv and handles each message at once. Sending has no
// goroutine of its own: a wake-up (a hub changed, an ACK freed the next
// snapshot, the keepalive timer fired) starts one sender goroutine that
// sends what is due and exits (edgeStream.wake). An idle control plane holds
// one per edge (10,000 and more), so a goroutine fewer per stream is its
// stack fewer; the per-stream ticker is a timer whose function runs only
// when it fires. Nothing here holds a lock while sending.
//
// Config and revocations are independent on the stream: a snapshot waits
// for the ACK of the previous one, revocations never wait for anything
// (their own "sent up to" seq decides), and after every event revocations
// are sent first.
func (s *syncServer) Sync(stream gatewayv1.SyncService_SyncServer) error {
	svc := s.svc
	if stream.Context().Value(admittedKey{}) == nil && !svc.admit.allow(time.Now()) {
		svc.metrics.streamsRefused.WithLabelValues(refusedRate).Inc()
		return errAdmission
	}
	if !svc.track() {
		return errShuttingDown
	}
	defer svc.untrack()

	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	defer context.AfterFunc(svc.closing, func() { cancel(errShuttingDown) })()

	first := make(chan received, 1)
	ready := make(chan *edgeStream, 1)
	// The receiver ends when Recv fails, which gRPC guarantees once this
	// handler returns (the stream's context is cancelled); Service.Close
	// waits for it.
	svc.wg.Add(1) // the handler's own track keeps the counter above zero
	go func() {
		defer svc.wg.Done()
		req, err := stream.Recv()
		first <- received{req, err}
		if err != nil {
			return
		}
		select {
		case e := <-ready:
			e.receive()
		case <-ctx.Done():
		}
	}()

	hello, err := s.awaitHello(ctx, first)
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
		ctx:       ctx,
		cancel:    cancel,
		node:      hello.GetNodeId(),
		region:    hello.GetRegion(),
		build:     hello.GetBuildVersion(),
		heldVer:   hello.GetConfigVersion(),
		heldSHA:   hello.GetConfigSha256(),
		revSent:   hello.GetRevocationSeq(),
		revAcked:  hello.GetRevocationSeq(),
		startedAt: time.Now(),
	}
	e.lastRecv.Store(e.startedAt.UnixNano())
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
	e.event(e.svc.log.Info()).
		Uint64("version", e.heldVer).
		Str("sha256", e.heldSHA).
		Uint64("revocation_seq", e.revSent).
		Str("build", hello.GetBuildVersion()).
		Str("peer", peerAddr).
		Msg("edge connected")
	if id != nil {
		if left := time.Until(id.notAfter); left < svc.cfg.CertWarnBefore {
			e.event(e.svc.log.Warn()).Time("not_after", id.notAfter).Dur("left", left.Round(time.Minute)).
				Msg("the edge's client certificate expires soon; issue a new one (gwctl certs issue), the edge picks it up without a restart")
		}
	}

	reason, err := e.serve(ready)

	svc.metrics.streamsOpen.Dec()
	svc.fleet.disconnect(e.node, e.connID, reason, time.Now())
	e.event(e.svc.log.Info()).Err(err).Dur("connected_for", time.Since(e.startedAt)).Msg("edge disconnected")
	return err
}

// event adds the stream's node and region to a log event (a logger made
// with With per stream would hold a 500-byte buffer per edge).
func (e *edgeStream) event(ev *zerolog.Event) *zerolog.Event {
	return ev.Str("node_id", e.node).Str("region", e.region)
}

// received is the result of one Recv.
type received struct {
	req *gatewayv1.SyncRequest
	err error
}

// awaitHello waits for the first message, which must be a Hello naming the
// node, within the receive timeout.
func (s *syncServer) awaitHello(ctx context.Context, first <-chan received) (*gatewayv1.Hello, error) {
	t := time.NewTimer(s.svc.cfg.RecvTimeout)
	defer t.Stop()
	select {
	case r := <-first:
		if r.err != nil {
			return nil, endOfStream(r.err)
		}
		hello := r.req.GetHello()
		if hello == nil {
			return nil, protocolError("the first message must be a hello")
		}
		if hello.GetNodeId() == "" {
			return nil, protocolError("hello.node_id is required")
		}
		return hello, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-s.svc.done:
		return nil, errShuttingDown
	case <-t.C:
		return nil, livenessError("no hello within %s", s.svc.cfg.RecvTimeout)
	}
}

// edgeStream is the state of one stream after its Hello. Three goroutines
// touch it: the handler (serve, until the end), the receiver (receive and
// handle) and at most one sender at a time (flush); the comments say which
// fields each owns.
type edgeStream struct {
	svc    *Service
	stream gatewayv1.SyncService_SyncServer
	ctx    context.Context
	cancel context.CancelCauseFunc
	node   string
	region string
	build  string
	connID uint64

	// pending counts wake-ups since the sender last looked; the one that
	// makes it 1 starts the sender (wake).
	pending atomic.Int32
	// tick asks the sender for the keepalive round (set by keepalive).
	tick      atomic.Bool
	keepalive *time.Timer
	// ended holds the error that ended the stream from inside (a failed
	// Recv or Send, a protocol error, a silent edge); nil when the stream's
	// context ended it (shutdown, age cap, replaced, cancelled by the edge).
	ended atomic.Pointer[endReason]
	// lastRecv is when the edge last sent anything (unix ns; receiver).
	lastRecv atomic.Int64

	// mu guards the fields below, which the receiver (ACK, NACK) and the
	// sender share. It is never held while sending.
	mu sync.Mutex
	// heldVer/heldSHA: what the edge serves (from Hello, then its ACKs).
	heldVer uint64
	heldSHA string
	// inflight is the version sent and not yet ACKed or NACKed. While one is
	// in flight nothing else is sent, so pushes made while the edge applies
	// coalesce and it receives only the newest afterwards.
	inflight   uint64
	inflightAt time.Time

	// The sender's own fields.
	//
	// lastSent is never sent again on this stream.
	lastSent uint64
	// revSent is the revocation seq the edge holds once it has applied
	// everything sent on this stream (its Hello's seq, then the end of each
	// delta or reset sent). Deltas go out from here, pipelined, without
	// waiting for ACKs.
	revSent uint64
	// repair sends a reset first: the edge's reported set differs from
	// the log.
	repair bool

	// The receiver's own fields: revAcked is the newest revocation seq the
	// edge ACKed (its Hello's seq until the first RevocationAck).
	revAcked  uint64
	startedAt time.Time
}

// endReason is the error that ended a stream from inside.
type endReason struct{ err error }

// serve runs the stream until it ends and returns the handler's result and
// the reason recorded in the fleet ("" when the stream's context ended it,
// or the edge closed it cleanly). It subscribes the stream to both hubs (a
// wake-up means "look at both"), hands the stream to the receiver, starts
// the keepalive timer and the age cap and sends what the edge lacks.
func (e *edgeStream) serve(ready chan<- *edgeStream) (string, error) {
	defer e.svc.hub.subs.add(e)()
	defer e.svc.revHub.subs.add(e)()
	ready <- e
	e.mu.Lock() // the sender rearms it
	e.keepalive = time.AfterFunc(e.svc.cfg.Keepalive, func() {
		e.tick.Store(true)
		e.wake()
	})
	e.mu.Unlock()
	defer e.keepalive.Stop()
	if age := e.svc.cfg.MaxStreamAge; age > 0 {
		t := time.AfterFunc(jitter(age), func() {
			e.svc.metrics.streamsAged.Inc()
			e.cancel(errStreamAged)
		})
		defer t.Stop()
	}
	e.wake()

	<-e.ctx.Done()
	if r := e.ended.Load(); r != nil {
		if r.err == nil || errors.Is(r.err, errStreamReplace) {
			return "", r.err
		}
		return "stream ended: " + r.err.Error(), r.err
	}
	return "", context.Cause(e.ctx)
}

// end ends the stream from inside with err (nil: the edge closed it). The
// first end wins; one after the context ended changes nothing.
func (e *edgeStream) end(err error) {
	if e.ctx.Err() == nil {
		e.ended.CompareAndSwap(nil, &endReason{err})
	}
	e.cancel(err)
}

// receive runs Recv until it fails, handling each message as it arrives.
func (e *edgeStream) receive() {
	for {
		req, err := e.stream.Recv()
		if err != nil {
			e.end(endOfStream(err))
			return
		}
		now := time.Now()
		e.lastRecv.Store(now.UnixNano())
		if err := e.handle(req, now); err != nil {
			e.end(err)
			return
		}
	}
}

// wake asks for a look at both hubs, the ACK state and the keepalive: the
// wake-up that finds no sender running starts one, which runs until it has
// seen every wake-up made so far. Hubs call it for every stream at every
// change, so it costs an atomic add when a sender is already at work.
func (e *edgeStream) wake() {
	if e.pending.Add(1) != 1 {
		return
	}
	if !e.svc.track() {
		return // shutting down: the stream is ending
	}
	go func() {
		defer e.svc.untrack()
		for {
			n := e.pending.Load()
			if err := e.flush(); err != nil {
				// pending stays above zero: no sender starts again on a
				// stream that is ending.
				e.end(err)
				return
			}
			if e.pending.CompareAndSwap(n, 0) {
				return
			}
		}
	}()
}

// flush sends what is due: the keepalive round when the timer asked for it,
// then revocations, then the snapshot.
func (e *edgeStream) flush() error {
	if e.ctx.Err() != nil {
		return context.Cause(e.ctx)
	}
	if e.tick.Swap(false) {
		if err := e.keepaliveRound(); err != nil {
			return err
		}
	}
	if err := e.sendRevocations(e.ctx); err != nil {
		return err
	}
	return e.maybeSend()
}

// keepaliveRound rearms the timer, checks that the edge is alive and its
// ACK is not overdue, and sends a keepalive.
func (e *edgeStream) keepaliveRound() error {
	now := time.Now()
	if idle := now.Sub(time.Unix(0, e.lastRecv.Load())); idle > e.svc.cfg.RecvTimeout {
		return livenessError("no message from the edge for %s", idle.Round(time.Second))
	}
	e.mu.Lock()
	e.keepalive.Reset(e.svc.cfg.Keepalive)
	if e.inflight != 0 && now.Sub(e.inflightAt) > e.svc.cfg.AckTimeout {
		// Never answered: let newer versions through rather than parking
		// the edge until it reconnects. The same version is not resent
		// (lastSent).
		e.event(e.svc.log.Warn()).Uint64("version", e.inflight).Dur("waited", now.Sub(e.inflightAt)).Msg("edge did not ACK or NACK the snapshot")
		e.inflight = 0
	}
	e.mu.Unlock()
	ka := &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Keepalive{Keepalive: &gatewayv1.Keepalive{UnixMs: now.UnixMilli()}}}
	return e.stream.Send(ka)
}

// handle applies one message from the edge (receiver).
func (e *edgeStream) handle(req *gatewayv1.SyncRequest, now time.Time) error {
	switch m := req.GetMsg().(type) {
	case *gatewayv1.SyncRequest_Ack:
		a := m.Ack
		e.mu.Lock()
		if e.inflight != 0 && a.GetVersion() >= e.inflight {
			e.inflight = 0
		}
		e.heldVer, e.heldSHA = a.GetVersion(), a.GetSha256()
		e.mu.Unlock()
		changed := e.svc.fleet.ack(e.node, e.connID, a, now)
		ev := e.event(e.svc.log.Info()).Uint64("version", a.GetVersion()).Str("sha256", a.GetSha256())
		if cur := e.svc.hub.target(e.region); changed && cur != nil && cur.env.GetVersion() == a.GetVersion() {
			lag := now.Sub(time.UnixMilli(cur.env.GetCreatedUnixMs()))
			e.svc.metrics.convergence.Observe(max(lag, 0).Seconds())
			e.svc.converge.add(a.GetVersion(), time.UnixMilli(cur.env.GetCreatedUnixMs()), e.node, max(lag, 0))
			ev = ev.Dur("since_created", lag)
		}
		ev.Msg("edge ACK")
		e.wake() // a newer version may wait for this ACK; the edge's state changed
	case *gatewayv1.SyncRequest_Nack:
		n := m.Nack
		e.mu.Lock()
		if e.inflight != 0 && n.GetVersion() >= e.inflight {
			e.inflight = 0
		}
		e.mu.Unlock()
		e.svc.fleet.nack(e.node, e.connID, n, now)
		e.svc.metrics.nacks.WithLabelValues(nackReason(n.GetViolations())).Inc()
		e.event(e.svc.log.Warn()).
			Uint64("version", n.GetVersion()).
			Uint64("running_version", n.GetRunningVersion()).
			Int("violations", len(n.GetViolations())).
			Str("detail", n.GetDetail()).
			Msg("edge NACK")
		e.wake()
	case *gatewayv1.SyncRequest_RevocationAck:
		e.revocationAck(m.RevocationAck.GetSeq(), now)
	case *gatewayv1.SyncRequest_Keepalive:
		e.svc.fleet.keepalive(e.node, e.connID, m.Keepalive, now)
	case *gatewayv1.SyncRequest_Hello:
		return protocolError("hello sent twice on one stream")
	default:
		// A message type from a newer edge build: ignore it, stay compatible.
		e.svc.fleet.seen(e.node, e.connID, now)
		e.event(e.svc.log.Debug()).Msg("ignored an unknown sync message")
	}
	return nil
}

// maybeSend sends the current snapshot if the edge lacks it, nothing is in
// flight, this stream has not sent it already and the node never NACKed it
// (sender).
func (e *edgeStream) maybeSend() error {
	cur := e.svc.hub.target(e.region)
	if cur == nil {
		return nil
	}
	v := cur.env.GetVersion()
	e.mu.Lock()
	skip := e.inflight != 0 || v == e.lastSent || (v == e.heldVer && cur.env.GetSha256() == e.heldSHA)
	e.mu.Unlock()
	if skip || e.svc.nackedVersion(e.node, e.build, v) {
		return nil
	}
	// In flight before the send: the ACK may arrive before Send returns.
	e.mu.Lock()
	e.inflight, e.inflightAt = v, time.Now()
	e.mu.Unlock()
	e.lastSent = v
	if err := e.stream.Send(cur.resp); err != nil {
		return err
	}
	e.event(e.svc.log.Info()).Uint64("version", v).Int("bytes", len(cur.env.GetPayload())).Msg("snapshot sent")
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
