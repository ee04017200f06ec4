package tracing

import (
	"context"
	"testing"

	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestLuraNames: telemetry/opencensus names spans after lura's forms of the
// endpoint (/a/:id) and the url_pattern ({{.Id}}), as KrakenD CE's spans
// showed them for the same config.
func TestLuraNames(t *testing.T) {
	for in, want := range map[string]string{
		"/agg/{id}":          "/agg/:id",
		"/a/{id}/b/{name}":   "/a/:id/b/:name",
		"/plain":             "/plain",
		"/*":                 "/*",
		"/broken/{id":        "/broken/{id",
		"/x/{id}.json?q=1":   "/x/:id.json?q=1",
		"/users/{user_id}/x": "/users/:user_id/x",
	} {
		if got := luraEndpoint(in); got != want {
			t.Errorf("luraEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"/b.json?x={id}":     "/b.json?x={{.Id}}",
		"/a/{id}/{name}":     "/a/{{.Id}}/{{.Name}}",
		"/plain":             "/plain",
		"/u/{JWT.sub}":       "/u/{{.JWT.sub}}",
		"/broken/{":          "/broken/{",
		"/resp/{resp0_id}/x": "/resp/{{.Resp0_id}}/x",
	} {
		if got := luraURLPattern(in); got != want {
			t.Errorf("luraURLPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOCPathLabels: the http_path and http_client_path labels of
// telemetry/opencensus' Prometheus views, as krakend-opencensus makes them
// from lura's forms of the patterns (KrakenD CE 2.12.1 showed /users/{id},
// /l/{id} and /o/9 for the patterns and requests of
// TestOpenCensusPrometheus).
func TestOCPathLabels(t *testing.T) {
	tests := []struct {
		name, mode, pattern, path string
		server                    bool
		want                      string
	}{
		{"pattern", "pattern", "/Users/{Id}", "/Users/42", true, "/users/{id}"},
		{"pattern with a suffix", "pattern", "/x/{id}.json", "/x/1.json", true, "/x/{id.json}"},
		{"client pattern", "pattern", "/U/{Id}?q={x}", "/U/42", false, "/u/{id}?q={x}"},
		{"lastparam", "lastparam", "/a/{x}/{Id}", "/a/Seven/9", true, "/a/seven/{id}"},
		{"lastparam lura's colon in the path", "lastparam", "/a/{id}", "/v:1/9", true, "/v{1}/{id}"},
		{"client lastparam", "lastparam", "/b/{x}/{Id}", "/b/One/2", false, "/b/one/{id}"},
		{"off", "off", "/a/{id}", "/A/9", true, "/A/9"},
		{"default", "", "/a/{id}", "/a/9", true, "/a/{id}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newOCPath(&gatewayv1.TraceLayer{OcPathMode: tc.mode, OcPath: tc.pattern}, tc.server)
			buf := make([]byte, 0, 8)
			if got := p.label([]byte(tc.path), &buf, tc.server); got != tc.want {
				t.Errorf("label of %s (%s %s) = %q, want %q", tc.path, tc.mode, tc.pattern, got, tc.want)
			}
		})
	}
}

// TestOpenCensusUnsampledB3: an unsampled request under telemetry/opencensus
// sends its backends B3 multi headers (the client's trace, or a new one)
// with X-B3-Sampled 0, written without the propagator.
func TestOpenCensusUnsampledB3(t *testing.T) {
	tr, err := New(&gatewayv1.OpenTelemetry{ServiceName: "t", Opencensus: true, Global: &gatewayv1.TraceLayer{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	for _, client := range []string{"", "463ac35c9f6413ad48485a3953bb6124"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/a")
		if client != "" {
			ctx.Request.Header.Set("X-B3-TraceId", client)
			ctx.Request.Header.Set("X-B3-SpanId", "a2fb4a1d1a96d312")
			ctx.Request.Header.Set("X-B3-Sampled", "0")
		}
		var r Request
		tr.Start(&r, &ctx)
		if r.Sampled() {
			t.Fatal("sampled at sample_rate 0")
		}
		var req fasthttp.Request
		r.StartCall(nil, "b", &req).End(200, "", nil)
		tid, sid := string(req.Header.Peek("X-B3-TraceId")), string(req.Header.Peek("X-B3-SpanId"))
		if len(tid) != 32 || len(sid) != 16 || string(req.Header.Peek("X-B3-Sampled")) != "0" {
			t.Errorf("client %q: backend got X-B3-TraceId %q X-B3-SpanId %q X-B3-Sampled %q", client, tid, sid, req.Header.Peek("X-B3-Sampled"))
		}
		if client != "" && (tid != client || sid != "a2fb4a1d1a96d312") {
			t.Errorf("client trace %s not followed: %s %s", client, tid, sid)
		}
		if string(r.TraceID()) != tid {
			t.Errorf("trace id %s, backend got %s", r.TraceID(), tid)
		}
	}
}
