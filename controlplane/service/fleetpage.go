package service

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// FleetPageMethod is the name the fleet page's calls carry in the audit
// log and in the role table (any role may read it).
const FleetPageMethod = "/gateway.v1.FleetPage/Get"

// Fleet page sizes.
const (
	fleetPageVersions    = 10
	fleetPageRevocations = 20
	fleetPageAuditScan   = 2000 // records scanned for the history's diffs
	fleetPageMaxEdges    = 1000 // edge rows; the region counts cover all
	fleetPageMaxWarnings = 50
)

//go:embed fleetpage/page.html
var fleetPageFS embed.FS

var fleetPageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"ms":    fmtMs,
	"short": func(s string) string { return s[:min(12, len(s))] },
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"secs":  fmtLag,
}).ParseFS(fleetPageFS, "fleetpage/page.html"))

// FleetPageHandler serves the read-only fleet page: edges by region and
// state, the convergence of recent versions, the history with diff
// summaries, recent revocations and warnings. Every request needs one of
// a's tokens (any role), as "Authorization: Bearer <token>" or as the
// password of HTTP basic authentication (what a browser prompts for; the
// user name is ignored). Refusals are audited like the admin API's.
func (s *Service) FleetPageHandler(a *TokenAuth) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ctx := httpPeerContext(r)
		p, err := a.checkHTTP(ctx, r)
		if err != nil {
			_ = a.refuse(ctx, FleetPageMethod, p, err)
			if status.Code(err) == codes.PermissionDenied {
				http.Error(w, status.Convert(err).Message(), http.StatusForbidden)
				return
			}
			h.Set("WWW-Authenticate", `Basic realm="gw-controlplane fleet", charset="UTF-8"`)
			http.Error(w, "the fleet page needs an admin token (any role) as the basic-auth password or a bearer token", http.StatusUnauthorized)
			return
		}
		data, err := s.fleetPageData(ctx, time.Now())
		if err != nil {
			s.log.Error().Err(err).Msg("fleet page")
			http.Error(w, "the fleet page could not be built (details are in the control plane log)", http.StatusInternalServerError)
			return
		}
		var buf bytes.Buffer
		if err := fleetPageTmpl.Execute(&buf, data); err != nil {
			s.log.Error().Err(err).Msg("fleet page template")
			http.Error(w, "the fleet page could not be rendered (details are in the control plane log)", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
}

// httpPeerContext gives an HTTP request the gRPC peer the admin checks and
// the audit read: the client's address and its verified certificate.
func httpPeerContext(r *http.Request) context.Context {
	pr := &peer.Peer{}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		pr.Addr = net.TCPAddrFromAddrPort(ap)
	}
	if r.TLS != nil {
		pr.AuthInfo = credentials.TLSInfo{State: *r.TLS}
	}
	return peer.NewContext(r.Context(), pr)
}

// checkHTTP is check for an HTTP request: a bearer token, or basic auth's
// password.
func (a *TokenAuth) checkHTTP(ctx context.Context, r *http.Request) (*Principal, error) {
	if _, pass, ok := r.BasicAuth(); ok {
		return a.checkSecret(ctx, FleetPageMethod, pass)
	}
	v := r.Header.Values("Authorization")
	switch {
	case len(v) == 0:
		return nil, errMissingToken
	case len(v) > 1:
		return nil, errInvalidToken
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(v[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, errInvalidToken
	}
	return a.checkSecret(ctx, FleetPageMethod, token)
}

// The template's data.
type (
	fleetPage struct {
		Now           time.Time
		Current       *gatewayv1.VersionInfo
		RevocationSeq uint64
		Total         int
		States        []stateCount
		Regions       []*regionView
		Convergence   []convergenceView
		History       []historyRow
		Revocations   []*gatewayv1.RevocationEntry
		Warnings      []string
		EdgesCut      int // edges not listed (over fleetPageMaxEdges)
		// Replicas are the control-plane replicas on a shared store (this
		// one first); empty with one control plane.
		Replicas []*gatewayv1.ReplicaStatus
	}
	stateCount struct {
		State string
		N     int
	}
	regionView struct {
		Name   string
		States []stateCount
		Edges  []*gatewayv1.EdgeStatus
	}
	convergenceView struct {
		Version  uint64
		Created  time.Time
		Acked    int
		Fleet    int // edges now
		P50, Max time.Duration
		Chart    template.HTML // an inline SVG, built from numbers only
	}
	historyRow struct {
		V    *gatewayv1.VersionInfo
		Diff *gatewayv1.AuditDiff
	}
)

// fleetPageData gathers the page from the fleet registry, the store and
// the convergence log.
func (s *Service) fleetPageData(ctx context.Context, now time.Time) (*fleetPage, error) {
	d := &fleetPage{Now: now}
	latest, err := latestMeta(ctx, s.store)
	if err != nil {
		return nil, err
	}
	if latest != nil {
		d.Current = versionInfo(latest)
	}
	edges := s.fleetList()
	d.Replicas = s.statusReplicas(now)
	d.Total = len(edges)
	total := map[string]int{}
	var cur *regionView
	for i, e := range edges {
		total[e.GetState()]++
		if cur == nil || cur.Name != e.GetRegion() {
			cur = &regionView{Name: e.GetRegion()}
			d.Regions = append(d.Regions, cur)
		}
		if i < fleetPageMaxEdges {
			cur.Edges = append(cur.Edges, e)
		} else {
			d.EdgesCut++
		}
	}
	for _, st := range edgeStates {
		d.States = append(d.States, stateCount{st, total[st]})
	}
	for _, r := range d.Regions {
		n := map[string]int{}
		for _, e := range edges {
			if e.GetRegion() == r.Name {
				n[e.GetState()]++
			}
		}
		for _, st := range edgeStates {
			r.States = append(r.States, stateCount{st, n[st]})
		}
	}

	for _, c := range s.converge.snapshot() {
		v := convergenceView{Version: c.Version, Created: c.Created, Acked: len(c.Lags), Fleet: len(edges)}
		if len(c.Lags) > 0 {
			v.P50, v.Max = c.Lags[len(c.Lags)/2], c.Lags[len(c.Lags)-1]
		}
		v.Chart = convergenceSVG(c.Lags, max(len(edges), len(c.Lags)))
		d.Convergence = append(d.Convergence, v)
	}

	revs, err := s.store.List(ctx, fleetPageVersions)
	if err != nil {
		return nil, err
	}
	diffs := map[uint64]*gatewayv1.AuditDiff{}
	scanned := 0
	if err := s.store.ScanAudit(ctx, 0, func(_ uint64, b []byte) bool {
		scanned++
		e := &gatewayv1.AuditEntry{}
		if proto.Unmarshal(b, e) == nil && e.GetOutcome() == outcomeCreated && e.GetVersion() != 0 && e.GetDiff() != nil {
			diffs[e.GetVersion()] = e.GetDiff()
		}
		return scanned < fleetPageAuditScan && len(diffs) < len(revs)
	}); err != nil {
		return nil, err
	}
	for _, r := range revs {
		d.History = append(d.History, historyRow{V: versionInfo(r), Diff: diffs[r.Version]})
	}

	live, seq, err := s.store.LiveRevocations(ctx, now)
	if err != nil {
		return nil, err
	}
	d.RevocationSeq = seq
	for _, r := range slices.Backward(live) {
		if len(d.Revocations) == fleetPageRevocations {
			break
		}
		d.Revocations = append(d.Revocations, toEntry(r))
	}
	d.Warnings = s.fleetWarnings(d.Current, edges, now)
	return d, nil
}

// fleetWarnings lists what an operator should look at, most urgent first.
func (s *Service) fleetWarnings(cur *gatewayv1.VersionInfo, edges []*gatewayv1.EdgeStatus, now time.Time) []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < fleetPageMaxWarnings {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	if na := s.syncCertNotAfter.Load(); na != 0 {
		if left := time.UnixMilli(na).Sub(now); left < s.cfg.CertWarnBefore {
			add("the sync listener's certificate expires %s (in %s)", fmtMs(na), left.Round(time.Minute))
		}
	}
	for _, e := range edges {
		switch e.GetState() {
		case stateRejected:
			add("%s (%s) rejected version %d: %s", e.GetNodeId(), e.GetRegion(), e.GetRejectedVersion(), e.GetLastError())
		case stateStale:
			add("%s (%s) serves version %d, not the current one", e.GetNodeId(), e.GetRegion(), e.GetAppliedVersion())
		case stateDisconnected:
			add("%s (%s) is disconnected since %s%s", e.GetNodeId(), e.GetRegion(), fmtMs(e.GetLastSeenUnixMs()), prefixed(": ", e.GetLastError()))
		}
		if na := e.GetCertNotAfterUnixMs(); na != 0 && time.UnixMilli(na).Sub(now) < s.cfg.CertWarnBefore {
			add("%s's client certificate expires %s", e.GetNodeId(), fmtMs(na))
		}
	}
	if n := len(cur.GetWarnings()); n > 0 {
		add("version %d compiled with %d warning%s (gwctl history)", cur.GetVersion(), n, map[bool]string{true: "", false: "s"}[n == 1])
	}
	return out
}

// fmtLag prints a convergence lag: milliseconds below a second.
func fmtLag(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func fmtMs(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
}

// convergenceSVG draws the share of the fleet on a version against the
// time since its push: a step line over fleet edges. Built from numbers
// only, so it is safe to mark as HTML.
func convergenceSVG(lags []time.Duration, fleet int) template.HTML {
	const w, h, pad = 320.0, 90.0, 4.0
	if fleet == 0 {
		fleet = 1
	}
	span := 1.0
	if len(lags) > 0 {
		span = max(lags[len(lags)-1].Seconds()*1.1, 0.001)
	}
	x := func(s float64) float64 { return pad + s/span*(w-2*pad) }
	y := func(n int) float64 { return h - pad - float64(n)/float64(fleet)*(h-2*pad) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="conv" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="edges on the version over time">`, w, h, w, h)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="axis"/>`, pad, y(fleet), w-pad, y(fleet))
	fmt.Fprintf(&b, `<polyline class="step" points="%.1f,%.1f`, x(0), y(0))
	for i, l := range lags {
		fmt.Fprintf(&b, ` %.1f,%.1f %.1f,%.1f`, x(l.Seconds()), y(i), x(l.Seconds()), y(i+1))
	}
	fmt.Fprintf(&b, ` %.1f,%.1f"/>`, w-pad, y(len(lags)))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="lbl">%s</text></svg>`, w-pad-40, h-pad-2, fmtLag(time.Duration(span*float64(time.Second))))
	// Numbers and fixed markup only: nothing here comes from a client.
	return template.HTML(b.String())
}
