#!/bin/sh
# tally.sh - adds up the closing "N passed, N failed" lines of the runners
# one `make test` runs, so that it ends with a single total.
#
# Usage:
#   tests/tally.sh FILE LABEL CMD [ARG...]
#       Runs CMD with its output shown as it comes (stdout and stderr), then
#       records "LABEL PASSED FAILED STATUS" in FILE from
#       CMD's last line "N passed, N failed". A CMD that exits non-zero with
#       no failure counted, or without that line, counts one failure. Exits
#       with CMD's status (1 when the line was missing).
#   tests/tally.sh --total FILE [STATUS]
#       Prints one line per recorded runner, then the sum as the last line
#       "N passed, N failed". STATUS is the exit status of the make that ran
#       the runners: non-zero with no failure recorded (a build step failed)
#       counts one failure. Exits 1 on any failure.
# Only the closing line is read: nothing is run twice. The output is read
# from a file (tail --pid), not a pipe, so a stray grandchild that keeps the
# output open cannot hold make test up.
set -u

total() {
	file=$1
	status=${2:-0}
	[ -f "$file" ] || : >"$file"
	awk -v status="$status" '
		{ printf "  %-34s %6d passed, %d failed%s\n", $1, $2, $3, ($4 != 0 ? " (exit status " $4 ")" : "");
		  p += $2; f += $3 }
		END {
			if (status != 0 && f == 0) {
				printf "  %-34s %6d passed, %d failed (a step without a count failed: exit status %d)\n", "make", 0, 1, status
				f = 1
			}
			printf "%d passed, %d failed\n", p, f
			exit f != 0
		}' "$file"
}

if [ "${1:-}" = "--total" ]; then
	[ $# -ge 2 ] || { echo "usage: tests/tally.sh --total FILE [STATUS]" >&2; exit 2; }
	echo "== make test: every runner's closing line"
	total "$2" "${3:-0}"
	exit $?
fi
[ $# -ge 3 ] || { echo "usage: tests/tally.sh FILE LABEL CMD [ARG...]" >&2; exit 2; }
file=$1
label=$2
shift 2
mkdir -p "$(dirname "$file")" || exit 2
out=$(mktemp "${TMPDIR:-/tmp}/tally.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; exit 130' INT TERM

echo "== $label"
# (no stdbuf: its LD_PRELOAD makes the ASan runtime refuse to start)
"$@" >"$out" 2>&1 &
pid=$!
tail -s 0.2 -n +1 -f --pid=$pid "$out"
wait $pid
rc=$?
counts=$(tail -n 1 "$out" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p')
if [ -z "$counts" ]; then
	echo "tally: $label did not end with 'N passed, N failed' (exit status $rc)"
	counts="0 1"
	[ $rc -eq 0 ] && rc=1
elif [ $rc -ne 0 ] && [ "${counts#* }" = 0 ]; then
	counts="${counts% *} 1"
fi
echo "$label $counts $rc" >>"$file"
echo "== $label: ${counts% *} passed, ${counts#* } failed"
exit $rc
