#!/bin/sh
# agent-echo.sh - an `exec` agent backend for pincer (docs/agent-exec.md).
#
# It answers every turn with "You said: <message>", streamed line by line as
# delta lines, then one final line. To put a real model behind it, replace
# the body of model() below: it gets the message as $1, the conversation so
# far as "role: text" lines in the file $2, and prints the reply on stdout.
# Anything it prints on stderr ends up in the gateway log.
#
# Needs: a POSIX sh and jq (Debian package `jq`).
# Try it by hand:
#   echo '{"type":"agent.turn","runId":"r1","sessionKey":"main","agentId":"default","message":"hi","history":[],"deadlineMs":60000}' \
#     | examples/agent-echo.sh
set -u

emit_error() {
	jq -cn --arg m "$1" '{type: "error", message: $m}'
	exit 0
}

command -v jq >/dev/null 2>&1 || {
	# no jq to build JSON with: a fixed line will do
	echo '{"type":"error","message":"agent-echo.sh needs jq"}'
	exit 0
}

# The request: one line on stdin, then end of file.
req=$(head -n 1)
field() { printf '%s\n' "$req" | jq -r "$1"; }
[ "$(field '.type')" = "agent.turn" ] || emit_error "agent-echo.sh only answers agent.turn requests"
message=$(field '.message')
run_id=$(field '.runId')
deadline_ms=$(field '.deadlineMs // 0')

tmp=$(mktemp -d) || emit_error "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
field '.history[]? | "\(.role): \(.text)"' >"$tmp/history"

echo "turn $run_id: $(wc -l <"$tmp/history") earlier messages, deadline ${deadline_ms} ms" >&2

# ---- replace this with your model CLI ---------------------------------------
# e.g.  ollama run llama3 "$1"
#       llm -m some-model "$1"
#       timeout $((deadline_ms / 1000)) my-model-cli --prompt "$1" --history "$2"
model() {
	printf 'You said: %s\n' "$1"
}
# -----------------------------------------------------------------------------

# Stream the reply as it comes (one delta per output line) and keep a copy
# for the final line. dash has no pipefail: the exit status goes via a file.
{
	model "$message" "$tmp/history"
	echo $? >"$tmp/status"
} | tee "$tmp/reply" | while IFS= read -r line || [ -n "$line" ]; do
	jq -cn --arg t "$line" '{type: "delta", text: ($t + "\n")}'
done

status=$(cat "$tmp/status")
[ "$status" = 0 ] || emit_error "the model command exited with status $status"
jq -cn --rawfile t "$tmp/reply" '{type: "final", text: ($t | rtrimstr("\n"))}'
