#!/bin/sh
# fresh.sh - the README's two commands on a brand-new Debian 12: builds a
# debootstrap chroot of bookworm (minbase + build-essential, git, python3,
# curl, ca-certificates), clones the checkout's HEAD into it, runs
# `make test` there as root under CI=true (as .ci/run does), checks that a
# second `make deps` installs nothing, then `make run` and curl /healthz
# (and first, that `make clean` on the fresh clone installs nothing).
#
# Usage: tests/fresh/fresh.sh [--repo DIR] [--rev REV]   (as root; make test-fresh)
#   --repo DIR  the git repository to clone (default: this checkout)
#   --rev REV   the commit to test (default: HEAD of DIR)
# Env:
#   PINCER_FRESH_CACHE   base tarball cache (default /var/cache/pincer); the
#                        tarball is keyed by suite, variant, package list, arch
#   PINCER_FRESH_MIRROR  Debian mirror (default: the host's apt sources)
#   PINCER_FRESH_KEEP=1  keep the chroot (its path is printed)
#   PINCER_FRESH_LOG     where the logs go (default build/fresh)
#
# The chroot has no ../shared, as a user's clone has none: the newer JSON
# Schema Test Suite is skipped there. Everything mounted is unmounted on any
# exit (trap) before the scratch directory is removed. Ends with
# "N passed, N failed" and exits non-zero on any failure.
set -u
# The whole script is one compound command, parsed before it runs, so that
# editing this file while a run is going on cannot change that run.
{
SUITE=bookworm
VARIANT=minbase
INCLUDE=build-essential,git,python3,curl,ca-certificates
CACHE=${PINCER_FRESH_CACHE:-/var/cache/pincer}
REPO=$(pwd)
REV=HEAD
while [ $# -gt 0 ]; do
	case $1 in
	--repo) REPO=$2; shift 2 ;;
	--rev) REV=$2; shift 2 ;;
	*) echo "usage: tests/fresh/fresh.sh [--repo DIR] [--rev REV]" >&2; exit 2 ;;
	esac
done
LOG=${PINCER_FRESH_LOG:-$(pwd)/build/fresh}
HERE=$(cd "$(dirname "$0")" && pwd)

passed=0
failed=0
T0=$(date +%s)
say() { echo "fresh [$(($(date +%s) - T0))s]: $*"; }
ok() { say "ok: $*"; passed=$((passed + 1)); }
bad() { say "FAILED: $*"; failed=$((failed + 1)); }
finish() {
	say "total $(($(date +%s) - T0)) s"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}
die() { bad "$*"; finish; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
SHA=$(git -C "$REPO" rev-parse --verify "$REV^{commit}" 2>/dev/null) || die "$REPO: no commit $REV"
REPO=$(cd "$REPO" && pwd)
mkdir -p "$LOG" "$CACHE" || die "cannot create $LOG or $CACHE"

if ! command -v debootstrap >/dev/null 2>&1; then
	say "installing debootstrap (apt-get: waiting on the network)"
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		debootstrap; } >"$LOG/debootstrap-install.log" 2>&1 || die "apt-get install debootstrap (see $LOG/debootstrap-install.log)"
fi

# The mirror: the first deb source for $SUITE in the host's apt sources
# (deb822 .sources files, then sources.list).
mirror=${PINCER_FRESH_MIRROR:-}
if [ -z "$mirror" ]; then
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		mirror=$(awk -v s="$SUITE" '
			function flush() { if (deb && suite && uri != "" && !found) { print uri; found = 1 } deb = suite = 0; uri = "" }
			/^[ \t]*$/ { flush(); next }
			/^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) suite = 1 }
			END { flush() }' "$f")
		[ -n "$mirror" ] && break
	done
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
	mirror=$(sed -n "s/^deb[ \t]\{1,\}\(\[[^]]*\][ \t]\{1,\}\)\{0,1\}\([^ \t]\{1,\}\)[ \t]\{1,\}${SUITE}[ \t].*/\2/p" \
		/etc/apt/sources.list | head -n 1)
fi
[ -n "$mirror" ] || die "no deb source for $SUITE in the host's apt sources: set PINCER_FRESH_MIRROR"

arch=$(dpkg --print-architecture)
key=$(printf '%s %s %s %s\n' "$SUITE" "$VARIANT" "$INCLUDE" "$arch" | sha256sum | cut -c1-12)
tarball=$CACHE/debootstrap-$SUITE-$VARIANT-$arch-$key.tgz

ROOT=$(mktemp -d /var/tmp/pincer-fresh.XXXXXX) || die "mktemp"
# Unmounts everything under $ROOT (deepest first), then removes it; never
# removes anything while a mount is left (rm stays on one file system too).
cleanup() {
	[ -n "${ROOT:-}" ] || return 0
	rm -rf --one-file-system "$ROOT.mk" "$tarball.tmp.$$" # an interrupted --make-tarball
	[ -d "$ROOT" ] || return 0
	for m in $(awk -v r="$ROOT/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	if awk -v r="$ROOT/" 'index($5, r) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		echo "fresh: mounts left under $ROOT; not removing it" >&2
	elif [ "${PINCER_FRESH_KEEP:-}" = 1 ]; then
		echo "fresh: chroot kept in $ROOT"
	else
		rm -rf --one-file-system "$ROOT"
	fi
}
trap cleanup EXIT
cpid=""
trap '[ -n "$cpid" ] && kill -TERM -$cpid 2>/dev/null; exit 130' INT TERM HUP

if [ ! -s "$tarball" ]; then
	say "no cached base tarball: debootstrap --make-tarball (downloads ~100 MB: waiting on the network)"
	rm -f "$tarball.tmp.$$"
	debootstrap --variant=$VARIANT --include=$INCLUDE --make-tarball="$tarball.tmp.$$" \
		$SUITE "$ROOT.mk" "$mirror" >"$LOG/debootstrap-tarball.log" 2>&1 &&
		mv "$tarball.tmp.$$" "$tarball"
	rc=$?
	rm -rf --one-file-system "$ROOT.mk" "$tarball.tmp.$$"
	[ $rc -eq 0 ] || die "debootstrap --make-tarball (see $LOG/debootstrap-tarball.log)"
fi
say "debootstrap $SUITE from $tarball into $ROOT"
debootstrap --variant=$VARIANT --include=$INCLUDE --unpack-tarball="$tarball" \
	$SUITE "$ROOT" "$mirror" >"$LOG/debootstrap.log" 2>&1 || die "debootstrap (see $LOG/debootstrap.log)"
ok "debootstrap $SUITE $VARIANT + $INCLUDE"

# debootstrap may leave its own mounts; ours go on top, unmounted by cleanup
for d in proc sys dev; do
	mountpoint -q "$ROOT/$d" && continue
	case $d in
	proc) mount -t proc proc "$ROOT/proc" ;;
	sys) mount -t sysfs sysfs "$ROOT/sys" 2>/dev/null || mount --rbind /sys "$ROOT/sys" ;;
	dev) mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" ;;
	esac || die "mount /$d in the chroot"
done
# The host's resolver, apt sources (the same mirror and security updates as
# the host) and npm configuration, when there are any.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] && cp "$f" "$ROOT$f"
done
[ -f /etc/npmrc ] && cp /etc/npmrc "$ROOT/etc/npmrc"
[ -f "$HOME/.npmrc" ] && cp "$HOME/.npmrc" "$ROOT/root/.npmrc"
# and the CA certificates the host added locally (a TLS-inspecting proxy's,
# which npm needs to reach its registry from here)
if [ -n "$(ls -A /usr/local/share/ca-certificates 2>/dev/null)" ]; then
	cp -r /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/" &&
		chroot "$ROOT" update-ca-certificates >"$LOG/ca-certificates.log" 2>&1 ||
		die "update-ca-certificates in the chroot (see $LOG/ca-certificates.log)"
fi

# A clean clone of the commit (file://, so nothing is hard-linked or shared).
git clone -q --no-checkout "file://$REPO" "$ROOT/root/pincer" >"$LOG/clone.log" 2>&1 &&
	git -C "$ROOT/root/pincer" fetch -q origin "$SHA" >>"$LOG/clone.log" 2>&1 &&
	git -C "$ROOT/root/pincer" -c advice.detachedHead=false checkout -q --detach "$SHA" >>"$LOG/clone.log" 2>&1 ||
	die "git clone of $SHA (see $LOG/clone.log)"
say "cloned $SHA; ../shared is absent in the chroot"
cp "$HERE/inside.sh" "$ROOT/root/fresh-inside.sh"

# Inside: make test, make deps again, make run + /healthz. Its results come
# back as "ok:" / "FAILED:" lines; its logs are copied out.
say "chroot: make test under CI=true (installs the Debian packages, then npm ci: waiting on the network); log $LOG/make-test.log"
# (its own process group, so that an interrupt can stop all of it)
setsid chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 /bin/sh /root/fresh-inside.sh >"$LOG/inside.out" 2>&1 &
cpid=$!
# progress while it runs: each runner's name and closing line, the network waits
(
	while [ ! -f "$ROOT/root/make-test.log" ] && kill -0 $cpid 2>/dev/null; do sleep 1; done
	tail -s 1 -n +1 -f --pid=$cpid "$ROOT/root/make-test.log" 2>/dev/null |
		grep --line-buffered -E '^== [a-z-]+: |waiting on the network' |
		while IFS= read -r line; do say "  $line"; done
) &
ppid_=$!
wait $cpid
wait $ppid_
for f in make-clean.log make-test.log make-deps.log make-run.log; do
	[ -f "$ROOT/root/$f" ] && cp "$ROOT/root/$f" "$LOG/$f"
done
while IFS= read -r line; do
	case $line in
	"ok: "*) ok "${line#ok: }" ;;
	"FAILED: "*) bad "${line#FAILED: }" ;;
	"note: "*) say "${line#note: }" ;;
	esac
done <"$LOG/inside.out"
grep -q '^done$' "$LOG/inside.out" || bad "the chroot script did not finish (see $LOG/inside.out)"
if [ "$failed" -ne 0 ] && [ -f "$LOG/make-test.log" ]; then
	echo "---- last lines of $LOG/make-test.log"
	tail -n 40 "$LOG/make-test.log"
	echo "----"
fi
finish
}
