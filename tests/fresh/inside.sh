#!/bin/sh
# inside.sh - the part of tests/fresh/fresh.sh that runs inside the chroot,
# as root, in a clean clone at /root/pincer: make clean (must install
# nothing), make test (CI=true, as .ci/run),
# make deps again (must install nothing), make run and GET /healthz.
# Prints one "ok: …" or "FAILED: …" line per check and "done" at the end;
# full output goes to /root/make-*.log.
set -u
cd /root/pincer || { echo "FAILED: no clone at /root/pincer"; exit 1; }
export CI=true
T0=$(date +%s)
el() { echo "$(($(date +%s) - T0)) s"; }
# running and not a zombie (kill -0 succeeds on an unreaped child)
alive() { [ -r /proc/$1/stat ] && [ "$(sed 's/.*) //' /proc/$1/stat | cut -c1)" != Z ]; }

# make clean compiles nothing, so it must install nothing either
make clean >/root/make-clean.log 2>&1
rc=$?
if [ $rc -eq 0 ] && ! command -v pkg-config >/dev/null 2>&1; then
	echo "ok: make clean on a fresh clone installs nothing"
else
	echo "FAILED: make clean on a fresh clone (exit $rc, or it installed pkg-config)"
fi

make test >/root/make-test.log 2>&1
rc=$?
last=$(tail -n 1 /root/make-test.log)
if [ $rc -eq 0 ] && printf '%s\n' "$last" | grep -q '^[0-9][0-9]* passed, 0 failed$'; then
	echo "ok: make test on the first run ($last, $(el))"
else
	echo "FAILED: make test on the first run (exit $rc, last line: $last, $(el))"
	grep -m 3 'undefined reference\|error:' /root/make-test.log | sed 's/^/note: /'
fi

make deps >/root/make-deps.log 2>&1
rc=$?
if [ $rc -eq 0 ] && ! grep -q 'install' /root/make-deps.log; then
	echo "ok: a second make deps installs nothing"
else
	echo "FAILED: a second make deps (exit $rc): $(head -n 1 /root/make-deps.log)"
fi

# make run on the README's port; on another one when the host (the chroot
# shares its network) already has something there.
port=18789
if curl -fsS -m 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
	port=18779
	echo "note: port 18789 is busy on the host; make run on $port (OPENCLAW_GATEWAY_PORT)"
fi
OPENCLAW_GATEWAY_PORT=$port setsid make run >/root/make-run.log 2>&1 &
pid=$!
body=""
i=0
while [ $i -lt 600 ]; do # up to 10 min: make run may have to build first
	alive $pid || break
	if grep -q "connect: ws://127.0.0.1:$port" /root/make-run.log 2>/dev/null; then
		body=$(curl -fsS -m 5 "http://127.0.0.1:$port/healthz" 2>/dev/null) && break
	fi
	sleep 1
	i=$((i + 1))
done
if printf '%s' "$body" | grep -q '"ok":true'; then
	echo "ok: make run serves /healthz on 127.0.0.1:$port: $body"
else
	echo "FAILED: make run did not serve /healthz on 127.0.0.1:$port (see make-run.log)"
fi
# setsid made make the leader of its own process group: stop make and
# pincerd (dash's kill takes "-PGID", not "-- -PGID")
kill -TERM -$pid 2>/dev/null
i=0
while alive $pid && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if alive $pid; then
	echo "FAILED: make run did not stop within 10 s of SIGTERM"
	kill -KILL -$pid 2>/dev/null
fi
wait $pid 2>/dev/null
echo "done"
