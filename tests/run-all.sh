#!/bin/sh
# run-all.sh - runs test programs and adds up their results.
#
# Usage: tests/run-all.sh BINARY...
#
# Each program's output is shown as it is. Every test program ends with the
# line "N passed, N failed"; this script sums those lines and ends with the
# same line for the total. It exits non-zero when any program reported a
# failure, exited non-zero, or did not end with that line (which then counts
# as one failed test).
set -u

passed=0
failed=0
status=0
out=$(mktemp "${TMPDIR:-/tmp}/run-all.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT INT TERM

for bin in "$@"; do
	echo "== $bin"
	"$bin" >"$out" 2>&1
	rc=$?
	cat "$out"
	last=$(tail -n 1 "$out")
	counts=$(printf '%s\n' "$last" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p')
	if [ -z "$counts" ]; then
		echo "run-all: $bin did not end with 'N passed, N failed' (exit status $rc)"
		failed=$((failed + 1))
		status=1
		continue
	fi
	p=${counts% *}
	f=${counts#* }
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
		[ "$rc" -ne 0 ] && echo "run-all: $bin exited with status $rc"
		status=1
	fi
done

echo "$passed passed, $failed failed"
exit $status
