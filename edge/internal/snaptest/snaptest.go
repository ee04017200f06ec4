// Package snaptest builds the compiled service block that edge tests put in
// their hand-made snapshots: every default resolved as controlplane/config
// resolves it, so a test snapshot looks like a pushed one. Tests only; it
// imports nothing but the generated proto.
package snaptest

import gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"

// Service returns a new service named name with the control plane's
// defaults (port 8080, /__health, 250 idle connections per host, 4 MiB
// bodies). Each call returns a fresh message the caller may modify.
func Service(name string) *gatewayv1.Service {
	return &gatewayv1.Service{
		Name:         name,
		Port:         8080,
		Router:       &gatewayv1.Router{HealthPath: "/__health"},
		Logging:      &gatewayv1.Logging{},
		HttpServer:   &gatewayv1.HTTPServer{},
		HttpClient:   &gatewayv1.HTTPClient{MaxIdleConnectionsPerHost: 250},
		MaxBodyBytes: 4 << 20,
	}
}
