#!/bin/sh
# channel.sh LOG - the chaos test's exec channel (docs/agent-exec.md): logs
# "send <runId> <pid>" to LOG when invoked (runId = the send's
# idempotencyKey), sleeps the milliseconds named by the last word of the
# message, and answers with a messageId that names its pid.
set -u
line=$(head -c 1024) # the start is enough (runId and message come first); a huge message is not read
rest=${line#*\"runId\":\"}
rid=${rest%%\"*}
rest=${line#*\"message\":\"}
msg=${rest%%\"*}
ms=${msg##* }
[ -n "$rid" ] && [ "$rid" != "$line" ] || rid=- # no request (the daemon died first)
printf 'send %s %s\n' "$rid" "$$" >>"$1"
case $ms in '' | *[!0-9]*) ms=0 ;; esac
[ "$ms" -gt 999 ] && ms=999
[ "$ms" -gt 0 ] && sleep "$(printf '0.%03d' "$ms")"
printf '{"type":"final","text":"","data":{"messageId":"m-%s-%s"}}\n' "$rid" "$$"
