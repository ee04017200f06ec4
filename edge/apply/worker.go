package apply

import (
	"context"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Worker applies pushed snapshots on one goroutine of its own, so the
// control-plane stream that receives them never waits for a build. Offer
// hands a snapshot over without blocking; Replies yields the Ack or Nack of
// each snapshot applied, in order, for the stream to send.
//
// Offers are latest-wins: the worker holds at most one snapshot waiting, and
// a newer offer replaces it (the control plane only ever wants the newest
// one served; the replaced one gets no reply, which the control plane reads
// as "not held", exactly as for a snapshot lost with a stream).
//
// Run it once; it stops when its ctx is done. Offer and Replies are safe for
// use from one goroutine (the stream loop) while Run runs.
type Worker struct {
	a       *Applier
	pending chan *gatewayv1.SnapshotEnvelope // one slot: the newest snapshot not yet taken
	replies chan *gatewayv1.SyncRequest
}

// NewWorker returns a Worker applying through a.
func NewWorker(a *Applier) *Worker {
	return &Worker{
		a:       a,
		pending: make(chan *gatewayv1.SnapshotEnvelope, 1),
		replies: make(chan *gatewayv1.SyncRequest),
	}
}

// Offer queues env, replacing a snapshot still waiting. It never blocks.
// It must not be called from several goroutines at once.
func (w *Worker) Offer(env *gatewayv1.SnapshotEnvelope) {
	for {
		select {
		case w.pending <- env:
			return
		default:
		}
		// The slot holds an older snapshot the worker has not taken yet:
		// drop it. If the worker took it meanwhile, the next send succeeds.
		select {
		case <-w.pending:
		default:
		}
	}
}

// Replies yields the Ack or Nack of every snapshot applied. The worker waits
// for each reply to be taken before it applies the next snapshot, so a
// reader that stops reading (a stream being replaced) loses nothing: the
// reply goes out on the next stream.
func (w *Worker) Replies() <-chan *gatewayv1.SyncRequest { return w.replies }

// Run applies offered snapshots until ctx is done, then returns once the
// apply in progress (if any) has returned; that apply's reply is dropped.
// plan.Build itself is not interruptible: a stop waits for it.
func (w *Worker) Run(ctx context.Context) {
	for {
		var env *gatewayv1.SnapshotEnvelope
		select {
		case <-ctx.Done():
			return
		case env = <-w.pending:
		}
		reply := w.a.Answer(ctx, env)
		select {
		case <-ctx.Done():
			return
		case w.replies <- reply:
		}
	}
}
