# exec_req.sh - the request half of agent.sh and channel.sh, sourced by
# them after they set KIND (agent, send): reads the start
# of the request on stdin (runId and message come first; a huge message is
# not read), appends "KIND <runId> <pid>" to LOG ($1; O_APPEND, one short
# write), and sleeps the milliseconds named by the last word of the message
# (at most 999) so kills land mid-run. Sets rid ("-" when there was no
# request: the daemon died first). No forks but head and sleep.
line=$(head -c 1024)
rest=${line#*\"runId\":\"}
rid=${rest%%\"*}
rest=${line#*\"message\":\"}
msg=${rest%%\"*}
ms=${msg##* }
[ -n "$rid" ] && [ "$rid" != "$line" ] || rid=- # no request (the daemon died first)
printf '%s %s %s\n' "$KIND" "$rid" "$$" >>"$1"
case $ms in '' | *[!0-9]*) ms=0 ;; esac
[ "$ms" -gt 999 ] && ms=999
[ "$ms" -gt 0 ] && sleep "$(printf '0.%03d' "$ms")"
