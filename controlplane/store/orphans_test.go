package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestEtcdCollectOrphanChunks: chunks written for commits that lost their
// race are deleted once their grace passed, unless another version holds
// the same content; committed chunks and young intents are left alone.
func TestEtcdCollectOrphanChunks(t *testing.T) {
	c := sharedEtcd(t)
	ctx := context.Background()
	prefix := etcdBackend(t).place(t)
	now := time.Now()
	clock := func() time.Time { return now }
	tweak := func(cfg *EtcdConfig) { cfg.ChunkBytes = 1000; cfg.OrphanGrace = time.Minute; cfg.Now = clock }
	a := openEtcdTest(t, c.Endpoints(), prefix, tweak)
	b := openEtcdTest(t, c.Endpoints(), prefix, tweak)

	kept := bigRev(5000)
	if _, err := a.Commit(ctx, 0, kept); err != nil {
		t.Fatal(err)
	}
	committed, err := a.blobCount(ctx)
	if err != nil || committed == 0 {
		t.Fatalf("chunks after a chunked commit: %d, %v", committed, err)
	}
	// Two pushes that lose to a's: new content, and the same content again.
	if _, err := b.Commit(ctx, 0, bigRev(7000)); !errors.Is(err, ErrStale) {
		t.Fatalf("lost commit: %v, want ErrStale", err)
	}
	if _, err := b.Commit(ctx, 0, kept); !errors.Is(err, ErrStale) {
		t.Fatalf("lost commit of the same content: %v, want ErrStale", err)
	}
	withOrphans, _ := a.blobCount(ctx)
	if withOrphans <= committed {
		t.Fatalf("chunks after the lost commits: %d, want more than %d", withOrphans, committed)
	}
	// Within the grace a commit may still be running: nothing goes.
	if n, err := a.CollectOrphanChunks(ctx); err != nil || n != 0 {
		t.Fatalf("collect within the grace = %d, %v; want 0", n, err)
	}
	if got, _ := a.blobCount(ctx); got != withOrphans {
		t.Fatalf("chunks after an early collect: %d, want %d", got, withOrphans)
	}
	now = now.Add(2 * time.Minute)
	if n, err := a.CollectOrphanChunks(ctx); err != nil || n != 1 {
		t.Fatalf("collect after the grace = %d, %v; want 1 (the new content; the repeated one is version 1's)", n, err)
	}
	if got, _ := a.blobCount(ctx); got != committed {
		t.Fatalf("chunks after the collect: %d, want the %d of version 1", got, committed)
	}
	r, err := b.Get(ctx, 1)
	if err != nil || r.SHA256 != kept.SHA256 {
		t.Fatalf("version 1 after the collect: %v", err)
	}
	// Intents are gone: a second pass finds nothing.
	if n, err := b.CollectOrphanChunks(ctx); err != nil || n != 0 {
		t.Fatalf("second collect = %d, %v", n, err)
	}
	// A commit that succeeds leaves no intent behind.
	if _, err := a.Commit(ctx, 1, bigRev(6000)); err != nil {
		t.Fatal(err)
	}
	before, _ := a.blobCount(ctx)
	now = now.Add(time.Hour)
	if n, err := a.CollectOrphanChunks(ctx); err != nil || n != 0 {
		t.Fatalf("collect after a good commit = %d, %v", n, err)
	}
	if after, _ := a.blobCount(ctx); after != before {
		t.Fatalf("a committed version lost chunks: %d → %d", before, after)
	}
}
