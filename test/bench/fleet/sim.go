package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apigw/gateway/edge/watch"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// simEdge is one simulated edge: its own gRPC connection and Sync stream,
// which answers every snapshot with an ACK and every revocation delta or
// reset with a RevocationAck, as a real edge does once it applied them.
// It reconnects with the real edge's backoff (200 ms doubling to 10 s,
// jittered) when the stream ends or is refused.
type simEdge struct {
	id string
	cc *grpc.ClientConn

	// mu serialises Send on the current stream (the receive loop ACKs, the
	// keepalive loop sends keepalives).
	mu     sync.Mutex
	stream gatewayv1.SyncService_SyncClient

	ver   atomic.Uint64 // newest snapshot version received (and ACKed)
	sha   atomic.Pointer[string]
	verAt atomic.Int64 // unix ns of its arrival
	seq   atomic.Uint64
	seqAt atomic.Int64
}

// runSim is the simulator process: it connects -edges streams to -sync and
// answers the coordinator's commands on stdin, one line each:
//
//	version V T TIMEOUT   wait until every edge holds version >= V, print
//	                      "version V n p50 p99 max" (ns after unix-ns T)
//	seq S T TIMEOUT       the same for revocation seq S
//	quit
func runSim(syncAddr string, n int) error {
	edges := make([]*simEdge, n)
	ctx := context.Background()
	for i := range edges {
		// The real edge's transport settings; small buffers keep this
		// process's memory down and do not change what the control plane
		// sees.
		cc, err := grpc.NewClient("passthrough:///"+syncAddr, append(watch.TransportDialOptions(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithReadBufferSize(4<<10), grpc.WithWriteBufferSize(4<<10))...)
		if err != nil {
			return err
		}
		e := &simEdge{id: fmt.Sprintf("sim-%05d", i), cc: cc}
		e.sha.Store(new(string))
		edges[i] = e
	}
	for _, e := range edges { // all at once: the cold start is a storm too
		go e.run(ctx)
	}
	go keepalives(edges, watch.DefaultKeepalive)

	out := bufio.NewWriter(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "quit":
			return nil
		case "version", "seq":
			target, _ := strconv.ParseUint(f[1], 10, 64)
			ref, _ := strconv.ParseInt(f[2], 10, 64)
			timeout, _ := time.ParseDuration(f[3])
			get := func(e *simEdge) (uint64, int64) { return e.ver.Load(), e.verAt.Load() }
			if f[0] == "seq" {
				get = func(e *simEdge) (uint64, int64) { return e.seq.Load(), e.seqAt.Load() }
			}
			have, lat := waitAll(edges, target, ref, timeout, get)
			fmt.Fprintf(out, "%s %d %d %d %d %d\n", f[0], target, have, pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1))
		default:
			fmt.Fprintf(out, "error unknown command %q\n", f[0])
		}
		out.Flush()
	}
	return sc.Err()
}

// waitAll polls until every edge's value reaches target or the timeout, and
// returns how many did and their arrival times after ref (ns, 0 when an
// edge had it before ref).
func waitAll(edges []*simEdge, target uint64, ref int64, timeout time.Duration, get func(*simEdge) (uint64, int64)) (int, []int64) {
	deadline := time.Now().Add(timeout)
	for {
		lat := make([]int64, 0, len(edges))
		for _, e := range edges {
			if v, at := get(e); v >= target {
				lat = append(lat, max(at-ref, 0))
			}
		}
		if len(lat) == len(edges) || time.Now().After(deadline) {
			slices.Sort(lat)
			return len(lat), lat
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pct(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (e *simEdge) run(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for {
		if e.session(ctx) {
			backoff = 200 * time.Millisecond
		}
		time.Sleep(backoff/2 + rand.N(backoff/2+1))
		backoff = min(2*backoff, 10*time.Second)
	}
}

// session runs one stream; it reports whether the control plane answered
// (a stream that got a first message).
func (e *simEdge) session(ctx context.Context) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := gatewayv1.NewSyncServiceClient(e.cc).Sync(ctx)
	if err != nil {
		return false
	}
	hello := &gatewayv1.Hello{NodeId: e.id, Region: "sim", BuildVersion: "sim",
		ConfigVersion: e.ver.Load(), ConfigSha256: *e.sha.Load(), RevocationSeq: e.seq.Load()}
	if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: hello}}); err != nil {
		return false
	}
	e.mu.Lock()
	e.stream = stream
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.stream = nil
		e.mu.Unlock()
	}()
	answered := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			return answered
		}
		answered = true
		now := time.Now().UnixNano()
		var req *gatewayv1.SyncRequest
		switch m := resp.GetMsg().(type) {
		case *gatewayv1.SyncResponse_Snapshot:
			env := m.Snapshot
			sha := env.GetSha256()
			e.sha.Store(&sha)
			e.verAt.Store(now)
			e.ver.Store(env.GetVersion())
			req = &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Ack{Ack: &gatewayv1.Ack{Version: env.GetVersion(), Sha256: sha}}}
		case *gatewayv1.SyncResponse_RevocationDelta:
			req = e.revoked(m.RevocationDelta.GetToSeq(), now)
		case *gatewayv1.SyncResponse_RevocationReset:
			req = e.revoked(m.RevocationReset.GetSeq(), now)
		}
		if req != nil {
			e.mu.Lock()
			err := stream.Send(req)
			e.mu.Unlock()
			if err != nil {
				return answered
			}
		}
	}
}

func (e *simEdge) revoked(seq uint64, now int64) *gatewayv1.SyncRequest {
	if seq > e.seq.Load() {
		e.seqAt.Store(now)
		e.seq.Store(seq)
	}
	return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_RevocationAck{RevocationAck: &gatewayv1.RevocationAck{Seq: seq}}}
}

// keepalives sends every open stream a keepalive each period, from one
// goroutine for the whole fleet.
func keepalives(edges []*simEdge, period time.Duration) {
	for range time.Tick(period) {
		now := time.Now().UnixMilli()
		for _, e := range edges {
			e.mu.Lock()
			if e.stream != nil {
				_ = e.stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Keepalive{Keepalive: &gatewayv1.Keepalive{UnixMs: now}}})
			}
			e.mu.Unlock()
		}
	}
}
