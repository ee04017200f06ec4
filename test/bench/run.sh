#!/usr/bin/env bash
# `make bench`: Go micro-benchmarks (allocations reported) and the load
# benchmarks with real processes. Writes bench/<commit>.txt for benchstat and
# prints a summary table.
#
# Variables: BENCHTIME, COUNT (Go benchmarks); GO_BENCH=0 skips them and the
# propagation benchmark (load only); KRAKEND=path of a KrakenD CE binary
# (default /work/ref/krakend when it is there; none: the KrakenD rows are
# skipped); LOAD_RUNS, LOAD_DURATION (wrk rounds and length);
# OPENLOOP_RATE, OPENLOOP_DURATION (the fixed-rate run, per scenario;
# OPENLOOP_DURATION=0 skips it); FLEET_EDGES (simulated edges of the fleet
# runs), FLEET_ETCD=0 skips the fleet run on etcd.
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

if [ "${GO_BENCH:-1}" != 0 ]; then
	echo "== Go benchmarks (benchtime $BENCHTIME, count $COUNT) -> $out"
	go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -count "$COUNT" ./edge/... ./controlplane/... | tee "$out.gobench"

	echo
	echo "== Go benchmark medians"
	go run ./test/bench/summary < "$out.gobench"

	echo
	echo "== Validate time (gwctl validate's compile; targets: 10,000 endpoints < 1 s, 50,000 < 5 s, any formatting)"
	grep '^BenchmarkCompileLarge/' "$out.gobench" | sort -k1,1 -k3,3n |
		awk '{ n[$1]++; v[$1, n[$1]] = $3 }
		     END { for (k in n) { split(k, a, "/"); sub(/-[0-9]+$/, "", a[3]);
		           printf "  %-16s %-9s %6.3f s (median of %d)\n", a[2], a[3], v[k, int((n[k] + 1) / 2)] / 1e9, n[k] } }' | sort

	echo
	echo "== Revocation propagation: 3 real edges, Revoke reply -> last edge answering 401"
	go test -run '^$' -bench RevocationPropagation -benchtime "${PROPAGATION_N:-100}x" ./test/bench/propagation/ | tee "$out.prop"

	echo
	echo "== One edge, 10,000 endpoints: apply, resident memory, revocations and traffic during the apply (targets: < 1 s, < 150 MB, revocation p99 < 100 ms)"
	go test -run '^$' -bench LargeSnapshot -benchtime 5x ./test/bench/propagation/ | tee -a "$out.prop"

	echo
	echo "== Fleet: ${FLEET_EDGES:-10000} simulated edges (own process) on a real gw-controlplane (targets: push p99 < 1 s, revocation p99 < 200 ms, <= 32 KiB per idle stream, storm absorbed)"
	go build -o bin/bench-fleet ./test/bench/fleet
	./bin/bench-fleet -controlplane bin/gw-controlplane -edges "${FLEET_EDGES:-10000}" | tee -a "$out.prop"

	echo
	echo "== Fleet on etcd: the same ${FLEET_EDGES:-10000} edges on a 1-member etcd, fleet-board writes per phase (at most 1,024 entries a second by design)"
	if [ "${FLEET_ETCD:-1}" = 0 ]; then
		echo "   skipped (FLEET_ETCD=0)"
	elif [ -n "${GW_ETCD_BIN:-}" ] || command -v etcd >/dev/null; then
		./bin/bench-fleet -controlplane bin/gw-controlplane -edges "${FLEET_EDGES:-10000}" -etcd -pushes 5 -revokes 10 -storm=false | tee -a "$out.prop"
	else
		echo "   skipped: no etcd (apt-get install etcd-server, or GW_ETCD_BIN=path)"
	fi

	echo
else
	: >"$out.gobench"
	: >"$out.prop"
fi

echo "== Load benchmarks (real gw-edge, real backend, wrk)"
go build -o bin/bench-backend ./test/bench/backend
go build -o bin/bench-load ./test/bench/load
krakend=${KRAKEND:-}
if [ -z "$krakend" ] && [ -x /work/ref/krakend ]; then krakend=/work/ref/krakend; fi
load=(./bin/bench-load -edge bin/gw-edge -backend bin/bench-backend
	-runs "${LOAD_RUNS:-3}" -duration "${LOAD_DURATION:-5s}")
if [ -n "$krakend" ]; then
	echo "   KrakenD CE rows against $krakend"
	load+=(-krakend "$krakend")
else
	echo "   no KrakenD binary (KRAKEND=path adds the ours-vs-KrakenD rows)"
fi
# Two CPUs or more: the gateways get CPU 1 to themselves, wrk, the backend
# and the load generator stay on CPU 0, so a gateway's CPU per request is
# its own and the two sides do not steal each other's time slices.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	load=(taskset -c 0 "${load[@]}" -gateway-cpu 1)
fi
"${load[@]}" | tee "$out.load"

# Fixed-rate (open-loop) run: latency from each request's intended send time,
# so stalls and tail outliers show (wrk above is closed-loop and hides them).
: >"$out.open"
if [ "${OPENLOOP_DURATION:-60s}" != 0 ]; then
	echo
	echo "== Fixed-rate load (open loop, ${OPENLOOP_RATE:-5000} req/s, ${OPENLOOP_DURATION:-60s} per scenario)"
	"${load[@]}" -closed=false -open-rate "${OPENLOOP_RATE:-5000}" -open-duration "${OPENLOOP_DURATION:-60s}" | tee "$out.open"
fi

echo
echo "== Summary (Go benchmarks, ours/KrakenD ratios and fixed-rate load)"
cat "$out.gobench" "$out.load" "$out.open" | go run ./test/bench/summary

cat "$out.gobench" "$out.prop" "$out.load" "$out.open" > "$out"
rm -f "$out.gobench" "$out.prop" "$out.load" "$out.open"
echo
echo "written: $out"
