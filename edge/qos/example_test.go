package qos_test

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/apigw/gateway/edge/qos"
	"github.com/apigw/gateway/edge/qos/httpcache"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Example shows the wiring: one Registry per edge process, one Lease per
// plan build, and the per-request calls.
func Example() {
	// At edge start (plan.Deps): one registry for the process lifetime.
	reg, err := qos.New(qos.Config{Grace: 30 * time.Second})
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	// In plan.Build: a lease, and components by endpoint/backend name.
	// Keep the lease in the Plan; Plan.Release (or a failed build) calls
	// lease.Release().
	lease := reg.NewLease()
	defer lease.Release()
	ep := &gatewayv1.Endpoint{Name: "GET /users/{id}"}
	rl := &gatewayv1.RouterRateLimit{ClientMaxRate: 2, Strategy: "header", Key: "X-Api-Key", EveryMs: 60_000}
	limiter, err := lease.RouterLimiter(ep.GetName(), rl, nil /* svc.GetClusterRateLimit() */)
	if err != nil {
		panic(err) // plan.Build: turn into a *BuildError violation
	}
	backend := ep.GetName() + " backend[0]"
	br, _ := lease.Breaker(backend, &gatewayv1.CircuitBreaker{MaxErrors: 1, TimeoutMs: 5_000, LogStatusChange: true}, 2*time.Second)
	bucket, _ := lease.BackendLimiter(backend, &gatewayv1.BackendRateLimit{MaxRate: 100})
	cache, _ := lease.Cache(backend, &gatewayv1.HTTPCache{MaxSize: 16 << 20})

	// Per request (edge/plan handler): client key per limiter.Strategy()
	// and limiter.Key(); nil components allow everything.
	for range 3 {
		d := limiter.Allow(context.Background(), []byte("key-123"))
		if !d.Allowed {
			// 429 (client) or 503 (global) with the fixed body, plus headers:
			fmt.Println(d.Status(),
				ratelimit.HeaderRetryAfter+": "+strconv.FormatInt(d.RetryAfterSeconds(), 10),
				ratelimit.HeaderLimit+": "+strconv.FormatUint(d.Limit, 10),
				ratelimit.HeaderRemaining+": "+strconv.FormatUint(d.Remaining, 10),
				ratelimit.HeaderReset+": "+strconv.FormatInt(d.ResetSeconds(), 10))
			continue
		}
		// Per backend call (edge/proxy): cache, breaker, backend limiter.
		url := []byte("http://10.0.0.1:8080/users/1")
		if e, age := cache.Get([]byte("GET"), url, nil /* &req.Header */); e != nil {
			fmt.Println("cache hit", e.Status, string(e.Body), "Age:", int64(age/time.Second))
			continue
		}
		tk, ok := br.Allow()
		if !ok {
			fmt.Println("503 breaker open, Retry-After:", br.RetryAfter())
			continue
		}
		if !bucket.Allow().Allowed {
			br.Release(tk) // never a breaker failure (KrakenD quirk fixed)
			fmt.Println("backend rate limited:", ratelimit.ErrLimited)
			continue
		}
		// ... call the backend; report the real outcome only:
		br.Done(tk, true) // success: the backend answered 200/201
		cache.Put([]byte("GET"), url, nil, httpcache.Response{
			Status: 200,
			Header: []httpcache.Header{{Key: []byte("Cache-Control"), Value: []byte("max-age=60")}},
			Body:   []byte(`{"id":1}`),
		})
		fmt.Println("backend called")
	}
	// Output:
	// backend called
	// cache hit 200 {"id":1} Age: 0
	// 429 Retry-After: 30 X-RateLimit-Limit: 2 X-RateLimit-Remaining: 0 X-RateLimit-Reset: 60
}
