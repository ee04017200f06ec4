package tracing

import "testing"

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
