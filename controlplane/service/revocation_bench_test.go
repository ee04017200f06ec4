package service

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// BenchmarkRevocationFanout measures revocation propagation on real
// loopback gRPC: 500 simulated edges, each on its own connection and
// stream, and one operator calling Revoke. One op is one Revoke. p50-ms and
// p99-ms are the time from the Revoke reply to the moment the last edge
// received the delta (0 when the fan-out beat the reply); the -acked
// metrics run to the moment the control plane recorded the last edge's
// RevocationAck (what `gwctl revoke --wait` waits for).
func BenchmarkRevocationFanout(b *testing.B) {
	for _, edges := range []int{500} {
		b.Run(fmt.Sprint("edges=", edges), func(b *testing.B) { benchRevocationFanout(b, edges) })
	}
}

func benchRevocationFanout(b *testing.B, edges int) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	st, err := store.OpenBolt(filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	// The bench's edges connect all at once and never retry: admit them in
	// one burst (the admission limit is not what this measures).
	svc, err := New(Config{Store: st, Logger: zerolog.Nop(), AdmissionBurst: edges})
	if err != nil {
		b.Fatal(err)
	}
	adminSrv, syncSrv := grpc.NewServer(), grpc.NewServer()
	svc.RegisterAdmin(adminSrv)
	svc.RegisterSync(syncSrv)
	var wg sync.WaitGroup
	serve := func(srv *grpc.Server) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { _ = srv.Serve(lis) })
		return lis.Addr().String()
	}
	adminAddr, syncAddr := serve(adminSrv), serve(syncSrv)
	var conns []*grpc.ClientConn
	b.Cleanup(func() {
		cancel()
		for _, cc := range conns {
			cc.Close()
		}
		adminSrv.Stop()
		syncSrv.Stop()
		wg.Wait()
		svc.Close()
		st.Close()
	})
	dialB := func(addr string) *grpc.ClientConn {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, cc)
		return cc
	}
	admin := gatewayv1.NewAdminServiceClient(dialB(adminAddr))

	f := &fanout{edges: edges, done: make(chan time.Time, 1)}
	for i := range edges {
		stream, err := gatewayv1.NewSyncServiceClient(dialB(syncAddr)).Sync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		hello := &gatewayv1.Hello{NodeId: fmt.Sprint("edge-", i), Region: "bench"}
		if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: hello}}); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for {
				resp, err := stream.Recv()
				if err != nil {
					return
				}
				if d := resp.GetRevocationDelta(); d != nil {
					f.arrived(d.GetToSeq())
					ack := &gatewayv1.RevocationAck{Seq: d.GetToSeq()}
					if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_RevocationAck{RevocationAck: ack}}); err != nil {
						return
					}
				}
			}
		})
	}
	for deadline := time.Now().Add(time.Minute); svc.edgeCounts()[stateInSync] < edges; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d edges connected within a minute", svc.edgeCounts()[stateInSync], edges)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var seq uint64
	// revoke revokes one token and waits until every edge received it and
	// the control plane recorded every ACK (so the next op starts on a
	// quiet process; back-to-back revocations would otherwise measure the
	// previous op's 500 ACKs competing for the 2 cores).
	revoke := func() (received, acked time.Duration) {
		seq++
		f.expect(seq)
		if _, err := admin.Revoke(ctx, &gatewayv1.RevokeRequest{Value: fmt.Sprint("token-", seq)}); err != nil {
			b.Fatal(err)
		}
		replied := time.Now()
		last := <-f.done
		for !allAcked(svc, seq) {
			time.Sleep(100 * time.Microsecond)
		}
		return max(last.Sub(replied), 0), time.Since(replied)
	}
	// Warm-up: the first message on 500 fresh connections pays for TCP
	// slow start and stack growth; production streams carry keepalives.
	revoke()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var received, acked []time.Duration
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		r, a := revoke()
		received, acked = append(received, r), append(acked, a)
	}
	// CPU of the whole process (control plane and the simulated edges) per
	// revocation: unlike the latencies, it barely moves when other work
	// shares the cores.
	b.ReportMetric(ms(processCPU(b)-cpu0)/float64(len(received)), "cpu-ms/op")
	b.ReportMetric(ms(percentile(received, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(received, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(acked, 0.50)), "p50-acked-ms")
	b.ReportMetric(ms(percentile(acked, 0.99)), "p99-acked-ms")
}

// processCPU is the user and system CPU time of this process.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// allAcked reports whether every edge in the fleet ACKed seq.
func allAcked(svc *Service, seq uint64) bool {
	svc.fleet.mu.Lock()
	defer svc.fleet.mu.Unlock()
	for _, e := range svc.fleet.edges {
		if e.revocationSeq < seq {
			return false
		}
	}
	return true
}

// fanout counts the edges that received the expected seq and reports when
// the last one did.
type fanout struct {
	edges int
	done  chan time.Time // receives the last arrival of each expected seq

	// mu guards the fields below.
	mu     sync.Mutex
	target uint64
	count  int
}

func (f *fanout) expect(seq uint64) {
	f.mu.Lock()
	f.target, f.count = seq, 0
	f.mu.Unlock()
}

func (f *fanout) arrived(to uint64) {
	now := time.Now()
	f.mu.Lock()
	last := f.target != 0 && to >= f.target && f.count+1 == f.edges
	if f.target != 0 && to >= f.target {
		f.count++
	}
	if last {
		f.target = 0
	}
	f.mu.Unlock()
	if last {
		f.done <- now // buffered, and one value per expected seq
	}
}

// percentile returns the p-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
