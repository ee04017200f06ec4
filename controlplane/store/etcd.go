package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apigw/gateway/internal/pause"
	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// Key layout of the etcd store, under a prefix (default "/apigw/") so
// several control planes can share one etcd cluster:
//
//	meta/format                   "1"
//	head/config                   be64 newest config version
//	head/revocations              be64 newest revocation seq ever assigned
//	head/rollout                  the staged-rollout record (generation = its mod revision)
//	config/meta/<v>               the revision without Payload and Source (List reads these)
//	config/content/<v>            0x00 + content, or 0x01 + a pointer to chunks
//	blob/<sha256>/<i>             chunk i of a content too large for one request
//	blob-intent/<sha256>          chunks written for a commit not yet made (orphans.go)
//	revocations/compacted         be64 compaction point
//	revocations/log/<seq>         one entry (revocations.go's encoding)
//	revocations/expiry/<exp><seq> empty: index for compaction
//
// Numbers in keys are 16 lowercase hex digits, so etcd's byte order is the
// numeric order. Versions and seqs are our own counters under head/, bumped
// in the same transaction that writes the revision or entry and guarded by a
// compare on the counter: two replicas can never assign the same one. Both
// counters live under head/ so one etcd watch tells every replica about
// every write any replica made.
//
// The content of a revision (payload and source) is zstd-compressed when
// that makes it smaller (snapshots shrink several times: every version is
// kept, and etcd's default quota is 2 GiB), and can still be larger than
// etcd's request limit (1.5 MiB by default). Up to the chunk size it is
// written inline in the commit transaction; above it, it is first written as
// content-addressed chunks (each its own request), and the commit
// transaction writes only a pointer (the chunks' sha256, count and length).
// A read fetches the pointer, then all the chunks with one range request,
// and checks the sha256 of their concatenation, so a revision is read whole
// or not at all. Chunks are immutable and keyed by their content, so a commit
// retried after losing a race rewrites the same keys.
const (
	etcdFormat = "1"
	// DefaultEtcdPrefix is the key prefix when the URL gives none.
	DefaultEtcdPrefix = "/apigw/"
	// DefaultEtcdChunkBytes keeps every request well under etcd's default
	// 1.5 MiB --max-request-bytes.
	DefaultEtcdChunkBytes = 1 << 20
	// DefaultEtcdOpTimeout bounds each store call: the etcd client waits for
	// a member to become ready rather than failing, so without a bound a
	// call made while etcd has no quorum would hang.
	DefaultEtcdOpTimeout = 10 * time.Second
	// etcdCompactBatch bounds the entries one compaction transaction
	// deletes: two deletes each, under etcd's default 128 ops per txn.
	etcdCompactBatch = 60

	// The first byte of config/content/<v>: where the content is and
	// whether it is zstd-compressed.
	contentInline      = 0x00
	contentChunked     = 0x01
	contentInlineZstd  = 0x02
	contentChunkedZstd = 0x03
	// maxContentBytes bounds a decompressed content (a corrupt or hostile
	// record must not make a replica allocate without limit): far above
	// the admin API's 32 MiB push limit.
	maxContentBytes = 256 << 20
)

// zstd coders are safe for concurrent use (EncodeAll/DecodeAll) and costly
// to build: one of each per process.
var (
	zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxContentBytes), zstd.WithDecoderMaxWindow(maxContentBytes))
)

// EtcdConfig configures OpenEtcd. Endpoints is required.
type EtcdConfig struct {
	// Endpoints are the etcd members' client URLs or host:port.
	Endpoints []string
	// Prefix is prepended to every key (default DefaultEtcdPrefix).
	Prefix string
	// TLS, when set, is used to connect to etcd (server verification and,
	// with a certificate, client authentication).
	TLS *tls.Config
	// Username and Password authenticate with etcd's own auth, when set.
	Username, Password string
	// DialTimeout bounds connecting to the members (default 5s).
	DialTimeout time.Duration
	// OrphanGrace is how old an intent of chunks must be before
	// CollectOrphanChunks judges it (default 3 × OpTimeout + 1 minute: a
	// commit ends within one op timeout; the rest covers clock skew
	// between replicas). Tests shorten it.
	OrphanGrace time.Duration
	// OpTimeout bounds each store call (default DefaultEtcdOpTimeout).
	OpTimeout time.Duration
	// ChunkBytes is the largest content written inline and the size of each
	// chunk above it (default DefaultEtcdChunkBytes; tests lower it).
	ChunkBytes int
	// Logger receives the watch's resyncs and errors.
	Logger zerolog.Logger
	// Now stamps CreatedUnixMs (default time.Now; tests fix it).
	Now func() time.Time
	// AuditRetain is how many audit records are kept (default
	// DefaultAuditRetain).
	AuditRetain int
}

// ParseEtcdURL parses the --store value etcd://host:port[,host:port...][/prefix]
// (etcds:// for TLS) into endpoints, a key prefix and whether TLS is
// implied.
func ParseEtcdURL(s string) (endpoints []string, prefix string, useTLS bool, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "etcd" && scheme != "etcds") {
		return nil, "", false, fmt.Errorf("store %q: want etcd://host:port[,host:port...][/prefix] or etcds://host:port (TLS)", s)
	}
	useTLS = scheme == "etcds"
	hosts, path, _ := strings.Cut(rest, "/")
	for h := range strings.SplitSeq(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, err := url.Parse("//" + h); err != nil || !strings.Contains(h, ":") {
			return nil, "", false, fmt.Errorf("store %q: endpoint %q: want host:port", s, h)
		}
		endpoints = append(endpoints, h)
	}
	if len(endpoints) == 0 {
		return nil, "", false, fmt.Errorf("store %q: no etcd endpoint", s)
	}
	prefix = DefaultEtcdPrefix
	if path = strings.Trim(path, "/"); path != "" {
		prefix = "/" + path + "/"
	}
	return endpoints, prefix, useTLS, nil
}

// Etcd is the replicated Store on an etcd cluster: several control-plane
// replicas open it on the same cluster and prefix, and each sees every
// version and revocation any of them stored, through its Watch.
type Etcd struct {
	cli        *clientv3.Client
	prefix     string
	opTimeout  time.Duration
	chunkBytes int
	// orphanGrace: see EtcdConfig.OrphanGrace.
	orphanGrace time.Duration
	now         func() time.Time
	log         zerolog.Logger
	// auditRetain bounds the audit log (AppendAudit deletes beyond it).
	auditRetain int

	notifier

	stop     context.CancelFunc
	loopDone chan struct{}

	// Resyncs of the watch, by cause (for metrics and tests).
	compactions atomic.Uint64
	lost        atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*Etcd)(nil)

// OpenEtcd connects to etcd, checks (or writes) the format marker and starts
// following the cluster. It fails when no quorum answers within the op
// timeout; one member down of three does not stop it (the client balances
// over the members that answer).
func OpenEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("open etcd store: no endpoints")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultEtcdPrefix
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = DefaultEtcdOpTimeout
	}
	if cfg.OrphanGrace <= 0 {
		cfg.OrphanGrace = 3*cfg.OpTimeout + time.Minute
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = DefaultEtcdChunkBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AuditRetain == 0 {
		cfg.AuditRetain = DefaultAuditRetain
	}
	if cfg.AuditRetain < 0 {
		return nil, fmt.Errorf("open etcd store %v: audit retention must be positive, got %d", cfg.Endpoints, cfg.AuditRetain)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         cfg.TLS,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Logger:      zap.NewNop(),
		// Keepalives notice a dead member so the balancer moves on.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open etcd store %v: %w", cfg.Endpoints, err)
	}
	s := &Etcd{
		cli:         cli,
		prefix:      cfg.Prefix,
		opTimeout:   cfg.OpTimeout,
		chunkBytes:  cfg.ChunkBytes,
		orphanGrace: cfg.OrphanGrace,
		now:         cfg.Now,
		auditRetain: cfg.AuditRetain,
		log:         cfg.Logger.With().Str("component", "store").Str("store", "etcd").Logger(),
		loopDone:    make(chan struct{}),
	}
	octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	defer cancel()
	version, seq, rolloutGen, rev, err := s.init(octx)
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("open etcd store %v%s: %w", cfg.Endpoints, cfg.Prefix, err)
	}
	s.notifier = newNotifier(version, seq, rolloutGen)
	wctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.follow(wctx, rev)
	return s, nil
}

// init writes the format marker if missing and reads both heads; rev is the
// etcd revision they were read at (the watch starts after it).
func (s *Etcd) init(ctx context.Context) (version, seq, rolloutGen uint64, rev int64, err error) {
	kf := s.prefix + "meta/format"
	resp, err := retryTransient(ctx, func() (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(kf), "=", 0)).
			Then(clientv3.OpPut(kf, etcdFormat), clientv3.OpGet(s.keyHeadConfig()), clientv3.OpGet(s.keyHeadRevocations()), clientv3.OpGet(s.keyHeadRollout())).
			Else(clientv3.OpGet(kf), clientv3.OpGet(s.keyHeadConfig()), clientv3.OpGet(s.keyHeadRevocations()), clientv3.OpGet(s.keyHeadRollout())).
			Commit()
	})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	r := resp.Responses
	if !resp.Succeeded {
		if kvs := r[0].GetResponseRange().Kvs; len(kvs) == 1 && string(kvs[0].Value) != etcdFormat {
			return 0, 0, 0, 0, fmt.Errorf("unsupported format %q (this build reads %q)", kvs[0].Value, etcdFormat)
		}
	}
	return rangeUint64(r[1].GetResponseRange()), rangeUint64(r[2].GetResponseRange()), rangeModRevision(r[3].GetResponseRange()), resp.Header.Revision, nil
}

// follow watches head/ from etcd revision rev+1 and announces every new
// version and seq. A watch that is lost (the member died, lost its leader,
// or the connection dropped) or compacted past is replaced after a fresh
// read of both heads: the notifier drops values it already announced, so a
// resync that finds nothing new wakes nobody and no edge is reconfigured.
func (s *Etcd) follow(ctx context.Context, rev int64) {
	defer close(s.loopDone)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		ok := s.watchFrom(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		if ok {
			delay = 100 * time.Millisecond
		}
		// Resync: read both heads, announce them, watch after that read.
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, s.opTimeout)
			resp, err := s.cli.Txn(rctx).Then(clientv3.OpGet(s.keyHeadConfig()), clientv3.OpGet(s.keyHeadRevocations()), clientv3.OpGet(s.keyHeadRollout())).Commit()
			cancel()
			if err == nil {
				s.notify(&s.versions, rangeUint64(resp.Responses[0].GetResponseRange()))
				s.notify(&s.revSeqs, rangeUint64(resp.Responses[1].GetResponseRange()))
				s.notify(&s.rollouts, rangeModRevision(resp.Responses[2].GetResponseRange()))
				rev = resp.Header.Revision
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn().Err(err).Dur("retry_in", delay).Msg("etcd: resync read failed")
			if !pause.For(ctx, delay) {
				return
			}
			delay = min(2*delay, 5*time.Second)
		}
	}
}

// watchFrom runs one etcd watch until it ends; true when it delivered at
// least one response (the backoff then restarts from its base).
func (s *Etcd) watchFrom(ctx context.Context, rev int64) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := s.cli.Watch(wctx, s.prefix+"head/", clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	delivered := false
	for resp := range ch {
		if resp.CompactRevision != 0 {
			s.compactions.Add(1)
			s.log.Warn().Int64("compact_revision", resp.CompactRevision).Msg("etcd: watch fell behind a compaction; resyncing")
			return delivered
		}
		if err := resp.Err(); err != nil {
			s.lost.Add(1)
			s.log.Warn().Err(err).Msg("etcd: watch lost; resyncing")
			return delivered
		}
		delivered = true
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypePut && string(ev.Kv.Key) == s.keyHeadRollout() {
				s.notify(&s.rollouts, uint64(ev.Kv.ModRevision))
				continue
			}
			if ev.Type != clientv3.EventTypePut || len(ev.Kv.Value) != 8 {
				continue
			}
			v := binary.BigEndian.Uint64(ev.Kv.Value)
			switch string(ev.Kv.Key) {
			case s.keyHeadConfig():
				s.notify(&s.versions, v)
			case s.keyHeadRevocations():
				s.notify(&s.revSeqs, v)
			}
		}
	}
	if ctx.Err() == nil {
		s.lost.Add(1)
		s.log.Warn().Msg("etcd: watch closed; resyncing")
	}
	return delivered
}

// WatchResyncs returns how often the watch was rebuilt after a compaction
// and after it was lost (metrics and tests).
func (s *Etcd) WatchResyncs() (compacted, lost uint64) {
	return s.compactions.Load(), s.lost.Load()
}

// op returns a context bounded by the op timeout, or ErrClosed.
func (s *Etcd) op(ctx context.Context, name string) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if s.isClosed() {
		return nil, nil, fmt.Errorf("%s: %w", name, ErrClosed)
	}
	c, cancel := context.WithTimeout(ctx, s.opTimeout)
	return c, cancel, nil
}

// Latest implements Store.
func (s *Etcd) Latest(ctx context.Context) (*Revision, error) {
	c, cancel, err := s.op(ctx, "latest")
	if err != nil {
		return nil, err
	}
	defer cancel()
	resp, err := s.cli.Get(c, s.keyHeadConfig())
	if err != nil {
		return nil, fmt.Errorf("latest: %w", s.mapErr(err))
	}
	v := rangeUint64((*rangeResp)(resp))
	if v == 0 {
		return nil, fmt.Errorf("latest: %w", ErrNotFound)
	}
	rev, err := s.get(c, v)
	if err != nil {
		return nil, fmt.Errorf("latest: %w", err)
	}
	return rev, nil
}

// Get implements Store.
func (s *Etcd) Get(ctx context.Context, version uint64) (*Revision, error) {
	c, cancel, err := s.op(ctx, fmt.Sprintf("get version %d", version))
	if err != nil {
		return nil, err
	}
	defer cancel()
	rev, err := s.get(c, version)
	if err != nil {
		return nil, fmt.Errorf("get version %d: %w", version, err)
	}
	return rev, nil
}

// get reads a revision's meta and content in one transaction (one etcd
// revision), then its chunks, and checks the payload's sha256.
func (s *Etcd) get(ctx context.Context, version uint64) (*Revision, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.keyMeta(version)), clientv3.OpGet(s.keyContent(version))).Commit()
	if err != nil {
		return nil, s.mapErr(err)
	}
	meta, content := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	if len(meta) == 0 || len(content) == 0 {
		return nil, ErrNotFound
	}
	rev, err := decodeMeta(versionKey(version), meta[0].Value)
	if err != nil {
		return nil, err
	}
	body, err := s.readContent(ctx, content[0].Value)
	if err != nil {
		return nil, fmt.Errorf("decode version %d: %w", version, err)
	}
	if err := decodeContent(body, rev); err != nil {
		return nil, fmt.Errorf("decode version %d: %w", version, err)
	}
	if sum := sha256.Sum256(rev.Payload); hex.EncodeToString(sum[:]) != rev.SHA256 {
		return nil, fmt.Errorf("decode version %d: payload does not match its sha256 (store corrupt)", version)
	}
	return rev, nil
}

// readContent returns the content an inline value holds or a pointer names,
// decompressed.
func (s *Etcd) readContent(ctx context.Context, v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, errors.New("empty content record")
	}
	kind, rest := v[0], v[1:]
	var body []byte
	switch kind {
	case contentInline, contentInlineZstd:
		body = rest
	case contentChunked, contentChunkedZstd:
		var err error
		if body, err = s.readChunks(ctx, rest); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("content record kind %d unknown (written by a newer build?)", kind)
	}
	if kind == contentInlineZstd || kind == contentChunkedZstd {
		out, err := zstdDec.DecodeAll(body, nil)
		if err != nil {
			return nil, fmt.Errorf("decompress content (store corrupt): %w", err)
		}
		body = out
	}
	return body, nil
}

// readChunks reads the chunks a pointer names with one range request and
// checks them against the pointer's sha256 and length.
func (s *Etcd) readChunks(ctx context.Context, ptr []byte) ([]byte, error) {
	sum, count, size, err := decodePointer(ptr)
	if err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, s.keyBlobPrefix(sum), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, s.mapErr(err)
	}
	if len(resp.Kvs) != int(count) {
		return nil, fmt.Errorf("content %s has %d of its %d chunks (store corrupt)", sum, len(resp.Kvs), count)
	}
	if size > maxContentBytes {
		return nil, fmt.Errorf("content %s claims %d bytes (store corrupt)", sum, size)
	}
	body := make([]byte, 0, size)
	for _, kv := range resp.Kvs {
		body = append(body, kv.Value...)
	}
	if got := sha256.Sum256(body); hex.EncodeToString(got[:]) != sum || uint64(len(body)) != size {
		return nil, fmt.Errorf("content %s does not match its chunks (store corrupt)", sum)
	}
	return body, nil
}

// List implements Store.
func (s *Etcd) List(ctx context.Context, limit int) ([]*Revision, error) {
	c, cancel, err := s.op(ctx, "list")
	if err != nil {
		return nil, err
	}
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	resp, err := s.cli.Get(c, s.prefix+"config/meta/", opts...)
	if err != nil {
		return nil, fmt.Errorf("list: %w", s.mapErr(err))
	}
	out := make([]*Revision, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		v, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), s.prefix+"config/meta/"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("list: key %q is not a version (store corrupt)", kv.Key)
		}
		rev, err := decodeMeta(versionKey(v), kv.Value)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		out = append(out, rev)
	}
	return out, nil
}

// Commit implements Store: the version is head/config plus one, written in
// one transaction with the revision and guarded by a compare on the head.
func (s *Etcd) Commit(ctx context.Context, prevVersion uint64, rev *Revision) (*Revision, error) {
	c, cancel, err := s.op(ctx, "commit")
	if err != nil {
		return nil, err
	}
	defer cancel()
	out, err := newRevision(rev, s.now)
	if err != nil {
		return nil, err
	}
	out.Version = prevVersion + 1
	content, intent, err := s.writeContent(c, encodeContent(&out), out.SHA256)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", s.mapErr(err))
	}
	meta := out
	meta.Payload, meta.Source = nil, nil
	head := s.keyHeadConfig()
	cond := clientv3.Compare(clientv3.Value(head), "=", string(versionKey(prevVersion)))
	if prevVersion == 0 {
		cond = clientv3.Compare(clientv3.CreateRevision(head), "=", 0)
	}
	ops := []clientv3.Op{
		clientv3.OpPut(head, string(versionKey(out.Version))),
		clientv3.OpPut(s.keyMeta(out.Version), string(encodeRecord(&meta))),
		clientv3.OpPut(s.keyContent(out.Version), string(content)),
	}
	if rev.Rollout != nil {
		ops = append(ops, clientv3.OpPut(s.keyHeadRollout(), string(rev.Rollout)))
	}
	if intent != "" {
		ops = append(ops, clientv3.OpDelete(intent))
	}
	resp, err := retryTransient(c, func() (*clientv3.TxnResponse, error) {
		return s.cli.Txn(c).If(cond).Then(ops...).Else(clientv3.OpGet(head)).Commit()
	})
	if err != nil {
		return nil, fmt.Errorf("commit: %w", s.mapErr(err))
	}
	if !resp.Succeeded {
		latest := rangeUint64(resp.Responses[0].GetResponseRange())
		return nil, fmt.Errorf("commit: based on version %d but the latest is %d: %w", prevVersion, latest, ErrStale)
	}
	s.notify(&s.versions, out.Version)
	if rev.Rollout != nil {
		s.notify(&s.rollouts, uint64(resp.Header.Revision))
	}
	return &out, nil
}

// writeContent returns the content record for body, zstd-compressed when
// that makes it smaller: inline when it fits in one chunk, else a pointer to
// chunks it writes first (one request each).
//
// Before the chunks it writes an intent (blob-intent/<sum>: the revision's
// sha256 and the time); the commit transaction deletes it. An intent left
// behind names chunks whose commit lost or never happened:
// CollectOrphanChunks deletes them once no commit can still be using them.
// intent is the intent's key ("" for inline content).
func (s *Etcd) writeContent(ctx context.Context, body []byte, revSHA string) (content []byte, intent string, err error) {
	inline, chunked := byte(contentInline), byte(contentChunked)
	if z := zstdEnc.EncodeAll(body, nil); len(z) < len(body) {
		body, inline, chunked = z, contentInlineZstd, contentChunkedZstd
	}
	if len(body) <= s.chunkBytes {
		return append([]byte{inline}, body...), "", nil
	}
	digest := sha256.Sum256(body)
	sum := hex.EncodeToString(digest[:])
	intent = s.keyBlobIntent(sum)
	if _, err := s.cli.Put(ctx, intent, string(encodeIntent(revSHA, s.now().UnixMilli()))); err != nil {
		return nil, "", err
	}
	count := 0
	for off := 0; off < len(body); off += s.chunkBytes {
		chunk := body[off:min(off+s.chunkBytes, len(body))]
		if _, err := s.cli.Put(ctx, s.keyBlob(sum, count), string(chunk)); err != nil {
			return nil, "", err
		}
		count++
	}
	return append([]byte{chunked}, encodePointer(sum, uint64(count), uint64(len(body)))...), intent, nil
}

// Watch implements Store.
func (s *Etcd) Watch(ctx context.Context) (<-chan uint64, error) {
	return s.watch(ctx, "watch", &s.versions)
}

// Close implements Store: it stops the watch, closes every watch channel and
// the etcd client. It is idempotent.
func (s *Etcd) Close() error {
	s.closeOnce.Do(func() {
		s.closeWatchers()
		s.stop()
		<-s.loopDone
		if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return s.closeErr
}

// mapErr turns the client's "closed" into ErrClosed.
func (s *Etcd) mapErr(err error) error {
	if s.isClosed() && (errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "client connection is closing")) {
		return ErrClosed
	}
	return err
}

// AppendRevocation implements RevocationLog: the seq is head/revocations
// plus one, bumped in the transaction that writes the entry and its expiry
// index, guarded by a compare on the head's mod revision (retried on a lost
// race, bounded by the op timeout).
func (s *Etcd) AppendRevocation(ctx context.Context, r *Revocation) (*Revocation, error) {
	out, err := newRevocation(r, s.now)
	if err != nil {
		return nil, err
	}
	c, cancel, err := s.op(ctx, "append revocation")
	if err != nil {
		return nil, err
	}
	defer cancel()
	head := s.keyHeadRevocations()
	for {
		resp, err := s.cli.Get(c, head)
		if err != nil {
			return nil, fmt.Errorf("append revocation: %w", s.mapErr(err))
		}
		var mod int64
		if len(resp.Kvs) == 1 {
			mod = resp.Kvs[0].ModRevision
		}
		out.Seq = rangeUint64((*rangeResp)(resp)) + 1
		tr, err := retryTransient(c, func() (*clientv3.TxnResponse, error) {
			return s.cli.Txn(c).If(clientv3.Compare(clientv3.ModRevision(head), "=", mod)).Then(
				clientv3.OpPut(head, string(versionKey(out.Seq))),
				clientv3.OpPut(s.keyRevLog(out.Seq), string(encodeRevocation(&out))),
				clientv3.OpPut(s.keyRevExpiry(out.ExpiresUnixMs, out.Seq), ""),
			).Commit()
		})
		if err != nil {
			return nil, fmt.Errorf("append revocation: %w", s.mapErr(err))
		}
		if tr.Succeeded {
			break
		}
		// Another replica appended first: take the next seq.
	}
	s.notify(&s.revSeqs, out.Seq)
	return &out, nil
}

// RevocationsSince implements RevocationLog. The compaction point and the
// entries are read in one transaction.
func (s *Etcd) RevocationsSince(ctx context.Context, seq uint64) ([]*Revocation, error) {
	name := fmt.Sprintf("revocations since %d", seq)
	c, cancel, err := s.op(ctx, name)
	if err != nil {
		return nil, err
	}
	defer cancel()
	ops := []clientv3.Op{clientv3.OpGet(s.prefix + "revocations/compacted")}
	if seq != math.MaxUint64 {
		ops = append(ops, clientv3.OpGet(s.keyRevLog(seq+1), clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.prefix+"revocations/log/"))))
	}
	resp, err := s.cli.Txn(c).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, s.mapErr(err))
	}
	if cp := rangeUint64(resp.Responses[0].GetResponseRange()); seq < cp {
		return nil, fmt.Errorf("%s: entries up to %d were compacted: %w", name, cp, ErrCompacted)
	}
	if len(resp.Responses) < 2 {
		return nil, nil
	}
	out, err := s.decodeEntries(resp.Responses[1].GetResponseRange())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// LiveRevocations implements RevocationLog.
func (s *Etcd) LiveRevocations(ctx context.Context, now time.Time) ([]*Revocation, uint64, error) {
	c, cancel, err := s.op(ctx, "live revocations")
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	resp, err := s.cli.Txn(c).Then(
		clientv3.OpGet(s.keyHeadRevocations()),
		clientv3.OpGet(s.prefix+"revocations/log/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("live revocations: %w", s.mapErr(err))
	}
	all, err := s.decodeEntries(resp.Responses[1].GetResponseRange())
	if err != nil {
		return nil, 0, fmt.Errorf("live revocations: %w", err)
	}
	nowMs := now.UnixMilli()
	var out []*Revocation
	for _, r := range all {
		if r.ExpiresUnixMs > nowMs {
			out = append(out, r)
		}
	}
	return out, rangeUint64(resp.Responses[0].GetResponseRange()), nil
}

// RevocationSeq implements RevocationLog.
func (s *Etcd) RevocationSeq(ctx context.Context) (uint64, error) {
	c, cancel, err := s.op(ctx, "revocation seq")
	if err != nil {
		return 0, err
	}
	defer cancel()
	resp, err := s.cli.Get(c, s.keyHeadRevocations())
	if err != nil {
		return 0, fmt.Errorf("revocation seq: %w", s.mapErr(err))
	}
	return rangeUint64((*rangeResp)(resp)), nil
}

// WatchRevocations implements RevocationLog.
func (s *Etcd) WatchRevocations(ctx context.Context) (<-chan uint64, error) {
	return s.watch(ctx, "watch revocations", &s.revSeqs)
}

// CompactRevocations implements RevocationLog. Each batch is one
// transaction guarded by the compaction point's mod revision, so replicas
// compacting at the same time never lower the point or double-count.
func (s *Etcd) CompactRevocations(ctx context.Context, expiredBefore time.Time) (RevocationCompaction, error) {
	var res RevocationCompaction
	cut := s.keyRevExpiry(expiredBefore.UnixMilli(), 0)
	idxPrefix := s.prefix + "revocations/expiry/"
	kc := s.prefix + "revocations/compacted"
	for {
		c, cancel, err := s.op(ctx, "compact revocations")
		if err != nil {
			return res, err
		}
		resp, err := s.cli.Txn(c).Then(
			clientv3.OpGet(kc),
			clientv3.OpGet(idxPrefix, clientv3.WithRange(cut), clientv3.WithLimit(etcdCompactBatch), clientv3.WithKeysOnly()),
		).Commit()
		if err != nil {
			cancel()
			return res, fmt.Errorf("compact revocations: %w", s.mapErr(err))
		}
		pr := resp.Responses[0].GetResponseRange()
		marker := rangeUint64(pr)
		var mod int64
		if len(pr.Kvs) == 1 {
			mod = pr.Kvs[0].ModRevision
		}
		idx := resp.Responses[1].GetResponseRange().Kvs
		res.CompactedSeq = marker
		if len(idx) == 0 {
			cancel()
			return res, nil
		}
		ops := make([]clientv3.Op, 0, 2*len(idx)+1)
		for _, kv := range idx {
			suffix := strings.TrimPrefix(string(kv.Key), idxPrefix)
			seq, err := strconv.ParseUint(suffix[min(16, len(suffix)):], 16, 64)
			if len(suffix) != 32 || err != nil {
				cancel()
				return res, fmt.Errorf("compact revocations: expiry index key %q is malformed (store corrupt)", kv.Key)
			}
			ops = append(ops, clientv3.OpDelete(string(kv.Key)), clientv3.OpDelete(s.keyRevLog(seq)))
			marker = max(marker, seq)
		}
		ops = append(ops, clientv3.OpPut(kc, string(versionKey(marker))))
		tr, err := retryTransient(c, func() (*clientv3.TxnResponse, error) {
			return s.cli.Txn(c).If(clientv3.Compare(clientv3.ModRevision(kc), "=", mod)).Then(ops...).Commit()
		})
		cancel()
		if err != nil {
			return res, fmt.Errorf("compact revocations: %w", s.mapErr(err))
		}
		if !tr.Succeeded {
			continue // another replica compacted meanwhile: read again
		}
		res.Removed += len(idx)
		res.CompactedSeq = marker
		if len(idx) < etcdCompactBatch {
			return res, nil
		}
	}
}

func (s *Etcd) decodeEntries(r *rangeResp) ([]*Revocation, error) {
	var out []*Revocation
	for _, kv := range r.Kvs {
		seq, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), s.prefix+"revocations/log/"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("revocation key %q is not a seq (store corrupt)", kv.Key)
		}
		e, err := decodeRevocation(versionKey(seq), kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *Etcd) keyHeadConfig() string      { return s.prefix + "head/config" }
func (s *Etcd) keyHeadRevocations() string { return s.prefix + "head/revocations" }
func (s *Etcd) keyMeta(v uint64) string    { return s.prefix + "config/meta/" + hex16(v) }
func (s *Etcd) keyContent(v uint64) string { return s.prefix + "config/content/" + hex16(v) }
func (s *Etcd) keyRevLog(seq uint64) string {
	return s.prefix + "revocations/log/" + hex16(seq)
}
func (s *Etcd) keyRevExpiry(exp int64, seq uint64) string {
	return s.prefix + "revocations/expiry/" + hex16(uint64(max(exp, 0))) + hex16(seq)
}
func (s *Etcd) keyBlobPrefix(sum string) string { return s.prefix + "blob/" + sum + "/" }
func (s *Etcd) keyBlob(sum string, i int) string {
	return s.keyBlobPrefix(sum) + hex16(uint64(i))
}

func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }

// rangeResp is the range response the etcd client returns from Get and in
// a transaction (GetResponse is a conversion of it).
type rangeResp = etcdserverpb.RangeResponse

// rangeUint64 reads a be64 counter from a single-key range; missing is zero.
// rangeModRevision is the mod revision of the one key a range read (zero
// when absent).
func rangeModRevision(r *rangeResp) uint64 {
	if r == nil || len(r.Kvs) != 1 {
		return 0
	}
	return uint64(r.Kvs[0].ModRevision)
}

func rangeUint64(r *rangeResp) uint64 {
	if r == nil || len(r.Kvs) != 1 || len(r.Kvs[0].Value) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(r.Kvs[0].Value)
}

// retryTransient runs a guarded transaction again while etcd answers
// Unavailable (no leader, leader changed, request timed out: an election
// after a member died), until ctx ends. Retrying is safe because every
// write transaction is guarded by a compare: when the first attempt was
// applied after all, the retry's compare fails and the caller sees what a
// lost race looks like (Commit: ErrStale, which the admin service resolves
// by finding its own content as the latest; an append: the next seq, so at
// worst one revocation is stored twice, which changes nothing an edge
// enforces).
func retryTransient(ctx context.Context, txn func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
	delay := 50 * time.Millisecond
	for {
		resp, err := txn()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return resp, err
		}
		if !pause.For(ctx, delay) {
			return nil, err
		}
		delay = min(2*delay, time.Second)
	}
}

func transient(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

// The content of a revision, stored apart from its meta so List never reads
// megabytes: field 1 payload, field 2 source.
func encodeContent(r *Revision) []byte {
	b := make([]byte, 0, len(r.Payload)+len(r.Source)+16)
	b = appendBytes(b, 1, r.Payload)
	return appendBytes(b, 2, r.Source)
}

func decodeContent(b []byte, r *Revision) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if num == 1 {
				r.Payload = bytes.Clone(v)
			} else {
				r.Source = bytes.Clone(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

// A chunk pointer: field 1 sha256 (hex) of the content, 2 chunk count, 3
// content length.
func encodePointer(sum string, count, size uint64) []byte {
	b := appendString(nil, 1, sum)
	b = appendVarint(b, 2, count)
	return appendVarint(b, 3, size)
}

func decodePointer(b []byte) (sum string, count, size uint64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", 0, 0, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", 0, 0, protowire.ParseError(n)
			}
			sum, b = string(v), b[n:]
		case (num == 2 || num == 3) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return "", 0, 0, protowire.ParseError(n)
			}
			if num == 2 {
				count = v
			} else {
				size = v
			}
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", 0, 0, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if len(sum) != 64 || count == 0 {
		return "", 0, 0, errors.New("malformed chunk pointer")
	}
	return sum, count, size, nil
}
