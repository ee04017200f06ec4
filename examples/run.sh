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

CP_DIR=$STATE/controlplane
# The sync stream is mTLS with certificates from the built-in CA, and every
# snapshot is signed: the same setup as in production, on loopback. The CA
# and the signing key are made once and kept with the control plane's state.
if [ ! -e "$CP_DIR/pki/ca.key" ]; then
	echo "creating the control plane's CA and signing key in $CP_DIR"
	$BIN/gw-controlplane ca init --data-dir "$CP_DIR" >"$LOGS/ca-init.log"
fi

echo "starting gw-controlplane (state in $CP_DIR)"
$BIN/gw-controlplane --data-dir "$CP_DIR" --log-format json >"$LOGS/controlplane.log" 2>&1 &
pids+=($!)
wait_for "gw-controlplane" test -s "$CP_DIR/admin.token"
wait_for "gw-controlplane" $BIN/gwctl status

# The edge's key is made here by gwctl; the control plane signs its
# certificate for node edge-1, region local (a fresh one at every start).
TLS_DIR=$STATE/edge-1-tls
$BIN/gwctl certs issue --node-id edge-1 --region local --out "$TLS_DIR" >"$LOGS/certs-issue.log"

echo "starting gw-edge on $EDGE_LISTEN (mTLS to the control plane, snapshots signed)"
$BIN/gw-edge --controlplane 127.0.0.1:9001 --node-id edge-1 --region local \
	--controlplane-ca "$TLS_DIR/ca.crt" --tls-cert "$TLS_DIR/edge-1.crt" --tls-key "$TLS_DIR/edge-1.key" \
	--snapshot-public-key "$CP_DIR/signing.pub" \
	--listen "$EDGE_LISTEN" --data-dir "$STATE/edge-1" --log-format json >"$LOGS/edge.log" 2>&1 &
pids+=($!)
wait_for "gw-edge" sh -c "$BIN/gwctl status | grep -q edge-1"

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
