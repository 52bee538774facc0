#!/bin/sh
# channel-log.sh - an `exec` channel for pincer (docs/agent-exec.md): every
# `send` delivery is appended as one JSON line to the file named by its
# first argument, and acknowledged with a final line whose data carries a
# messageId. Replace the append with a call to a real messenger's CLI.
#
# Needs: a POSIX sh and jq (Debian package `jq`).
# Try it by hand:
#   echo '{"type":"channel.send","runId":"r1","to":"alice","message":"hi","channel":"log"}' \
#     | examples/channel-log.sh /tmp/pincer-sends.jsonl
set -u

emit_error() {
	jq -cn --arg m "$1" '{type: "error", message: $m}'
	exit 0
}

command -v jq >/dev/null 2>&1 || {
	echo '{"type":"error","message":"channel-log.sh needs jq"}'
	exit 0
}
[ $# -ge 1 ] || emit_error "usage: channel-log.sh LOGFILE"
log=$1

req=$(head -n 1)
[ "$(printf '%s\n' "$req" | jq -r '.type')" = "channel.send" ] ||
	emit_error "channel-log.sh only handles channel.send requests"

# The id is made here; a real channel would return its messenger's id.
id="log-$(date +%s)-$$"
printf '%s\n' "$req" | jq -c --arg id "$id" '{id: $id, at: (now | floor), to, message, channel}' >>"$log" ||
	emit_error "cannot append to $log"
echo "delivered $id to $(printf '%s\n' "$req" | jq -r '.to')" >&2
jq -cn --arg id "$id" '{type: "final", text: "", data: {messageId: $id}}'
