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
line=$(head -c 1024) # the start is enough (runId and message come first); a huge message is not read
rest=${line#*\"runId\":\"}
rid=${rest%%\"*}
rest=${line#*\"message\":\"}
msg=${rest%%\"*}
ms=${msg##* }
[ -n "$rid" ] && [ "$rid" != "$line" ] || rid=- # no request (the daemon died first)
printf 'agent %s %s\n' "$rid" "$$" >>"$1"
case $ms in '' | *[!0-9]*) ms=0 ;; esac
[ "$ms" -gt 999 ] && ms=999
[ "$ms" -gt 0 ] && sleep "$(printf '0.%03d' "$ms")"
printf '{"type":"delta","text":"reply to %s "}\n' "$rid"
printf '{"type":"final","text":"reply to %s by %s"}\n' "$rid" "$$"
