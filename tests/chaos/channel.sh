#!/bin/sh
# channel.sh LOG - the chaos test's exec channel (docs/agent-exec.md): logs
# "send <runId> <pid>" to LOG when invoked (runId = the send's
# idempotencyKey), sleeps the milliseconds named by the last word of the
# message, and answers with a messageId that names its pid.
set -u
KIND=send
. "${0%/*}/exec_req.sh" # logs "send <runId> <pid>" to $1, sleeps; sets rid
printf '{"type":"final","text":"","data":{"messageId":"m-%s-%s"}}\n' "$rid" "$$"
