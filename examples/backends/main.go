// Command example-backends serves small JSON APIs for `make run` and the
// walk-through in the README: users, their posts, a product catalogue, a
// slow endpoint and an endpoint that answers any status code. It is example
// code, not part of the gateway, and imports nothing from it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: example-backends [--listen ADDR]\n\nServes example JSON APIs for the gateway walk-through.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 1 || id > 100 {
			writeJSON(w, http.StatusNotFound, map[string]any{"message": "no such user"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "name": fmt.Sprintf("User %d", id), "email": fmt.Sprintf("user%d@example.com", id),
			"password_hash": "never-leave-the-backend",
			"address":       map[string]any{"city": "Barcelona", "zip": "08001", "geo": map[string]any{"lat": 41.38, "lng": 2.17}},
		})
	})
	mux.HandleFunc("GET /users/{id}/posts", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		posts := make([]map[string]any, 0, 3)
		for i := 1; i <= 3; i++ {
			posts = append(posts, map[string]any{"id": i, "user_id": id, "title": fmt.Sprintf("Post %d of user %s", i, id), "body": strings.Repeat("lorem ipsum ", 8)})
		}
		writeJSON(w, http.StatusOK, posts)
	})
	mux.HandleFunc("GET /catalog", func(w http.ResponseWriter, r *http.Request) {
		items := make([]map[string]any, 0, 20)
		for i := 1; i <= 20; i++ {
			items = append(items, map[string]any{"sku": fmt.Sprintf("SKU-%04d", i), "price": float64(i) * 9.95, "stock": i * 3, "internal_cost": float64(i) * 4.1})
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": items, "currency": "EUR"})
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(min(ms, 10000)) * time.Millisecond)
		writeJSON(w, http.StatusOK, map[string]any{"slept_ms": ms})
	})
	mux.HandleFunc("GET /status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			code = http.StatusBadRequest
		}
		writeJSON(w, code, map[string]any{"status": code})
	})
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "headers": r.Header})
	})

	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("example backends listening on %s", *listen)
	log.Fatal(srv.ListenAndServe())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
