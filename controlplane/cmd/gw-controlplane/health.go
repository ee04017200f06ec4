package main

import (
	"context"
	"net/http"
	"time"

	"github.com/apigw/gateway/controlplane/store"
)

// readyTimeout bounds the store read of one readiness check.
const readyTimeout = 2 * time.Second

// registerHealth adds the probes to the metrics listener's mux:
//
//   - GET /healthz: 200 while the process serves HTTP (liveness).
//   - GET /readyz: 200 when the store answers a read within readyTimeout
//     and the process is not shutting down (ctx done); else 503 with the
//     reason. A replica whose etcd is gone cannot take a new edge stream
//     (its Hello reads the store), so it should leave the Service; its open
//     streams carry on.
func registerHealth(ctx context.Context, mux *http.ServeMux, st store.Store) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ctx.Err() != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		rctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		// List without content: a few bytes from etcd, not a snapshot.
		if _, err := st.List(rctx, 1); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("store: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}
