#!/usr/bin/env bash
# `make bench`: Go micro-benchmarks (allocations reported) and the load
# benchmarks with real processes. Writes bench/<commit>.txt for benchstat and
# prints a summary table.
set -euo pipefail
cd "$(dirname "$0")/../.."

commit=$(git rev-parse --short HEAD 2>/dev/null || echo dev)
mkdir -p bench
out=bench/$commit.txt
BENCHTIME=${BENCHTIME:-1s}
COUNT=${COUNT:-3}

if ! command -v wrk >/dev/null; then
	echo "installing wrk (Debian package) for the load benchmarks"
	apt-get install -y -qq wrk >/dev/null 2>&1 || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
fi

echo "== Go benchmarks (benchtime $BENCHTIME, count $COUNT) -> $out"
go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -count "$COUNT" ./edge/... ./controlplane/... | tee "$out.go"

echo
echo "== Go benchmark medians"
go run ./test/bench/summary < "$out.go"

echo
echo "== Validate time (gwctl validate's compile; targets: 10,000 endpoints < 1 s, 50,000 < 5 s, any formatting)"
grep '^BenchmarkCompileLarge/' "$out.go" | sort -k1,1 -k3,3n |
	awk '{ n[$1]++; v[$1, n[$1]] = $3 }
	     END { for (k in n) { split(k, a, "/"); sub(/-[0-9]+$/, "", a[3]);
	           printf "  %-16s %-9s %6.3f s (median of %d)\n", a[2], a[3], v[k, int((n[k] + 1) / 2)] / 1e9, n[k] } }' | sort

echo
echo "== Revocation propagation: 3 real edges, Revoke reply -> last edge answering 401"
go test -run '^$' -bench RevocationPropagation -benchtime "${PROPAGATION_N:-100}x" ./test/bench/propagation/ | tee "$out.prop"

echo
echo "== One edge, 10,000 endpoints: apply, resident memory, revocations and traffic during the apply (targets: < 1 s, < 150 MB, revocation p99 < 100 ms)"
go test -run '^$' -bench LargeSnapshot -benchtime 2x ./test/bench/propagation/ | tee -a "$out.prop"

echo
echo "== Fleet: ${FLEET_EDGES:-10000} simulated edges (own process) on a real gw-controlplane (targets: push p99 < 1 s, revocation p99 < 200 ms, <= 32 KiB per idle stream, storm absorbed)"
go build -o bin/bench-fleet ./test/bench/fleet
./bin/bench-fleet -controlplane bin/gw-controlplane -edges "${FLEET_EDGES:-10000}" | tee -a "$out.prop"

echo
echo "== Load benchmarks (real gw-edge, real backend, wrk)"
go build -o bin/bench-backend ./test/bench/backend
go build -o bin/bench-load ./test/bench/load
./bin/bench-load -edge bin/gw-edge -backend bin/bench-backend | tee "$out.load"

cat "$out.go" "$out.prop" "$out.load" > "$out"
rm -f "$out.go" "$out.prop" "$out.load"
echo
echo "written: $out"
