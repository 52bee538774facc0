#!/bin/sh
# agent.sh LOG - the chaos test's exec agent backend (docs/agent-exec.md).
#
# Appends "agent <runId> <pid>" to LOG (O_APPEND, one short write) the
# moment it is invoked, so the harness can count runs per idempotency key
# (runId = idempotencyKey), then sleeps the milliseconds named by the last
# word of the message ("chaos <key> <ms>") so kills land mid-run, and answers
# with a final whose text names its pid: a second run of the same key can
# never produce the same final. No jq, two forks (head, sleep): it must be cheap.
set -u
KIND=agent
. "${0%/*}/exec_req.sh" # logs "agent <runId> <pid>" to $1, sleeps; sets rid
printf '{"type":"delta","text":"reply to %s "}\n' "$rid"
printf '{"type":"final","text":"reply to %s by %s"}\n' "$rid" "$$"
