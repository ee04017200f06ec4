#!/usr/bin/env bash
# Starts the whole product on this machine for a first look (`make run`):
# example backends, a control plane on its embedded store, one edge, and the
# example config pushed. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=./bin
STATE=${XDG_STATE_HOME:-$HOME/.local/state}/apigw
EDGE_LISTEN=${EDGE_LISTEN:-127.0.0.1:8080}
BACKENDS_LISTEN=${BACKENDS_LISTEN:-127.0.0.1:8081}
mkdir -p "$STATE"
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/apigw-run.XXXXXX")

pids=()
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "stopping..."
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "logs kept in $LOGS"
}
trap cleanup INT TERM EXIT

wait_for() { # wait_for NAME COMMAND...: poll up to 15 s
	local name=$1; shift
	for _ in $(seq 1 150); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "$name did not come up; see $LOGS" >&2
	exit 1
}

echo "starting example backends on $BACKENDS_LISTEN"
$BIN/example-backends --listen "$BACKENDS_LISTEN" >"$LOGS/backends.log" 2>&1 &
pids+=($!)

echo "starting gw-controlplane (state in $STATE/controlplane)"
$BIN/gw-controlplane --log-format json >"$LOGS/controlplane.log" 2>&1 &
pids+=($!)
wait_for "gw-controlplane" test -s "$STATE/controlplane/admin.token"
wait_for "gw-controlplane" $BIN/gwctl status

echo "starting gw-edge on $EDGE_LISTEN"
$BIN/gw-edge --controlplane 127.0.0.1:9001 --node-id edge-1 --region local \
	--listen "$EDGE_LISTEN" --data-dir "$STATE/edge-1" --log-format json >"$LOGS/edge.log" 2>&1 &
pids+=($!)

echo "pushing examples/krakend.yaml"
$BIN/gwctl push examples/krakend.yaml --wait --timeout 15s

cat <<MSG

Everything is up. Try:

  curl -s http://$EDGE_LISTEN/users/7/profile     # 3 backends aggregated
  curl -s http://$EDGE_LISTEN/users/7             # proxy with a deny filter
  curl -si http://$EDGE_LISTEN/catalog            # no-op pass-through
  curl -si 'http://$EDGE_LISTEN/slow?ms=1500'     # past the 1s timeout
  curl -s http://$EDGE_LISTEN/__health
  $BIN/gwctl status
  $BIN/gwctl history
  $BIN/gwctl diff examples/krakend.yaml

Logs: $LOGS. Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "a component exited; see $LOGS" >&2
