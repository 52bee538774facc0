#!/bin/sh
# tally_test.sh - tests tests/tally.sh, which sums the closing lines of the
# runners of make test: counts recorded, a missing closing line and a
# non-zero exit counted as failures, the total line and its exit status, and
# no hang when a runner leaves a child holding its output open.
# Usage: tests/tally_test.sh   (from the checkout). Ends with "N passed, N failed".
set -u
T=tests/tally.sh
dir=$(mktemp -d "${TMPDIR:-/tmp}/tally-test.XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
passed=0
failed=0
check() { # NAME CONDITION...
	name=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name"
	fi
}
f=$dir/tally.txt

$T "$f" good sh -c 'echo "some output"; echo "3 passed, 0 failed"' >"$dir/out" 2>&1
check "a passing runner: exit 0, counts recorded" [ $? -eq 0 -a "$(cat "$f")" = "good 3 0 0" ]
check "a runner's output is shown" grep -q '^some output$' "$dir/out"

$T "$f" bad sh -c 'echo "2 passed, 1 failed"; exit 1' >/dev/null 2>&1
check "a failing runner: its status, its counts" [ $? -eq 1 -a "$(tail -n 1 "$f")" = "bad 2 1 1" ]

$T "$f" noline sh -c 'echo "crashed"; exit 0' >"$dir/out" 2>&1
check "no closing line: one failure, exit 1" [ $? -eq 1 -a "$(tail -n 1 "$f")" = "noline 0 1 1" ]
check "no closing line: said so" grep -q "did not end with" "$dir/out"

$T "$f" exit3 sh -c 'echo "5 passed, 0 failed"; exit 3' >/dev/null 2>&1
check "non-zero exit with 0 failed: one failure" [ $? -eq 3 -a "$(tail -n 1 "$f")" = "exit3 5 1 3" ]

$T --total "$f" 0 >"$dir/out" 2>&1
check "total: sum on the last line, exit 1" [ $? -eq 1 -a "$(tail -n 1 "$dir/out")" = "10 passed, 3 failed" ]

g=$dir/ok.txt
$T "$g" a sh -c 'echo "1 passed, 0 failed"' >/dev/null 2>&1
$T "$g" b sh -c 'echo "4 passed, 0 failed"' >/dev/null 2>&1
$T --total "$g" 0 >"$dir/out" 2>&1
check "total of passing runners: exit 0" [ $? -eq 0 -a "$(tail -n 1 "$dir/out")" = "5 passed, 0 failed" ]
$T --total "$g" 2 >"$dir/out" 2>&1
check "a failed build step (make status 2) counts one failure" [ $? -eq 1 -a "$(tail -n 1 "$dir/out")" = "5 passed, 1 failed" ]
$T --total "$dir/none.txt" 0 >"$dir/out" 2>&1
check "nothing recorded: 0 passed, 0 failed" [ "$(tail -n 1 "$dir/out")" = "0 passed, 0 failed" ]

# a runner that leaves a child writing to its output must not hold tally up
start=$(date +%s)
$T "$dir/orphan.txt" orphan sh -c 'sleep 30 & echo $! >"$0"; echo "1 passed, 0 failed"' "$dir/orphan.pid" >/dev/null 2>&1
check "a stray child holding the output open does not hold tally up" [ $(($(date +%s) - start)) -lt 20 ]
kill "$(cat "$dir/orphan.pid")" 2>/dev/null

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
