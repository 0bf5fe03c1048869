#!/bin/bash
# soak.sh: many runs against a private containerd, then a check that
# nothing is left behind (`make soak`; root).
#
#   1. SOAK_RUNS (1000) sequential `run --rm` of the base image
#   2. SOAK_MOUNT_RUNS (200) runs with a bind mount, -e and --env-file
#   3. SOAK_KILLS (100) runs SIGKILLed at a random point 50-300 ms in,
#      then `sbxrun gc`
#   4. a containerd restart while a sandbox runs (its exit status must
#      survive)
#   5. a full state directory (the run must fail with 125, creating nothing)
#
# Before and after, it prints the containers, tasks, active snapshots,
# leases, mounts, shims, bundles, markers and runc containers of its
# namespace, and
# containerd's RSS; it exits non-zero when a count did not come back to
# where it started, a run failed, or containerd's RSS grew by more than
# SOAK_RSS_GROWTH_KB (65536) over the runs of one containerd process.
#
# SBXRUN (bin/sbxrun) and IMAGE (bin/sandbox-base.tar, `make image`) can be
# overridden.
set -euo pipefail

SBXRUN=$(realpath "${SBXRUN:-bin/sbxrun}")
IMAGE=$(realpath "${IMAGE:-bin/sandbox-base.tar}")
RUNS=${SOAK_RUNS:-1000}
MOUNT_RUNS=${SOAK_MOUNT_RUNS:-200}
KILLS=${SOAK_KILLS:-100}
RSS_GROWTH_KB=${SOAK_RSS_GROWTH_KB:-65536}
HACK=$(cd "$(dirname "$0")" && pwd)
NS=soak

[ "$(id -u)" -eq 0 ] || { echo "soak.sh starts its own containerd and needs root: run it with sudo" >&2; exit 1; }
[ -x "$SBXRUN" ] || { echo "$SBXRUN not found: run \`make build\` first" >&2; exit 1; }
[ -f "$IMAGE" ] || { echo "$IMAGE not found: run \`make image\` first" >&2; exit 1; }

ROOT=$(mktemp -d /tmp/sbxrun-soak.XXXXXX)
CTD=$ROOT/ctd
SOCK=$CTD/containerd.sock
STATE=$ROOT/state
FULL=$ROOT/full
WORK=$ROOT/work
mkdir -p "$STATE" "$WORK" "$ROOT/home" "$ROOT/data" "$FULL"

cleanup() {
	umount "$FULL" 2>/dev/null || true
	"$HACK/containerd.sh" stop "$CTD" >/dev/null 2>&1 || true
	# Shims of this daemon that a failure left (the pid's command line
	# names this daemon's socket and the soak namespace).
	for pid in $(shim_pids); do kill -9 "$pid" 2>/dev/null || true; done
	rm -rf "$ROOT"
}
trap cleanup EXIT

export SBXRUN_ADDRESS=$SOCK CONTAINERD_ADDRESS=$SOCK SBXRUN_STATE_DIR=$STATE
export HOME=$ROOT/home XDG_CONFIG_HOME=$ROOT/home/.config SBXRUN_SYSTEM_CONFIG=$ROOT/no-such.yaml
sbx() { "$SBXRUN" --namespace "$NS" "$@"; }
ctr_() { ctr -a "$SOCK" -n "$NS" "$@"; }

shim_pids() {
	ps -eo pid=,args= | awk -v ns="$NS" -v s="$SOCK" '$2 ~ /containerd-shim/ &&
		index($0 " ", " -namespace " ns " ") && index($0 " ", " -address " s " ") { print $1 }'
}
ctd_pid() { cat "$CTD/containerd.pid"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$(ctd_pid)/status"; }

# counts prints "name value" lines of everything a run may leave.
counts() {
	echo "containers $(ctr_ containers ls -q | wc -l)"
	echo "tasks $(ctr_ tasks ls -q | wc -l)"
	echo "snapshots $(ctr_ snapshots ls | awk 'NR > 1 && $3 == "Active"' | wc -l)"
	echo "leases $(ctr_ leases ls -q | wc -l)"
	echo "mounts $(awk -v d="$ROOT/" -v f="$FULL" 'index($5, d) == 1 && $5 != f' /proc/self/mountinfo | wc -l)"
	echo "shims $(shim_pids | wc -l)"
	echo "bundles $(find "$CTD/state/io.containerd.runtime.v2.task/$NS" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
	echo "markers $(find "$STATE/owners/$NS" -name '*@*' 2>/dev/null | wc -l)"
	echo "runc-containers $(find "/run/containerd/runc/$NS" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
}

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}
phase() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

restart_containerd() {
	local pid
	pid=$(ctd_pid)
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	rm -f "$CTD/containerd.pid"
	sleep "${1:-1}"
	"$HACK/containerd.sh" start "$CTD" >/dev/null
}

"$HACK/containerd.sh" start "$CTD" >/dev/null
cd "$WORK"
sbx load -i "$IMAGE" >/dev/null
# What earlier soaks on this host left (the runc state of the namespace
# outlives their daemons) is not this soak's: collect it first.
sbx gc | sed -E 's/(removed|shim of|container) [^ ]+$/\1 .../' | sort | uniq -c | sed 's/^ */left by earlier runs, gc: /'
# Warm up, so the baseline RSS includes what the first runs load once.
for _ in $(seq 1 20); do sbx run --pull never base -- true; done
before=$(counts)
rss0=$(rss_kb)
phase "before"
echo "$before"
echo "containerd-rss-kb $rss0"

phase "$RUNS sequential runs"
t0=$(date +%s%N)
for i in $(seq 1 "$RUNS"); do
	out=$(sbx run --pull never base -- echo "run $i") || fail "run $i exited $?"
	[ "$out" = "run $i" ] || fail "run $i printed '$out'"
done
echo "$RUNS runs in $(ms_since "$t0") ms; containerd RSS $(rss_kb) kB"

phase "$MOUNT_RUNS runs with a bind mount and env"
printf 'FROM_FILE=yes\n' >"$ROOT/env"
t0=$(date +%s%N)
for i in $(seq 1 "$MOUNT_RUNS"); do
	echo "$i" >"$ROOT/data/n"
	# shellcheck disable=SC2016 # expanded in the sandbox
	out=$(sbx run --pull never -v "$ROOT/data:/data:ro" -e "N=$i" --env-file "$ROOT/env" base -- \
		sh -c 'echo "$(cat /data/n) $N $FROM_FILE"') || fail "mount run $i exited $?"
	[ "$out" = "$i $i yes" ] || fail "mount run $i printed '$out'"
done
echo "$MOUNT_RUNS runs in $(ms_since "$t0") ms; containerd RSS $(rss_kb) kB"
rss1=$(rss_kb)

phase "$KILLS runs SIGKILLed 50-300 ms in, then gc"
for _ in $(seq 1 "$KILLS"); do
	# Not through sbx: $! must be sbxrun itself, not a subshell.
	"$SBXRUN" --namespace "$NS" run --pull never base -- sh -c 'sleep 1' >/dev/null 2>&1 &
	pid=$!
	sleep "0.$(printf %03d $((50 + RANDOM % 250)))"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
done
# containerd finishes what the killed clients had asked for.
sleep 2
echo "left by the kills:"
counts | sed 's/^/  /'
sbx gc | sed -E 's/(removed|shim of|container) [^ ]+$/\1 .../' | sort | uniq -c | sed 's/^ */  gc: /'

phase "containerd restart while a sandbox runs"
set +e
sbx run --pull never base -- sh -c 'echo before; sleep 3; echo after; exit 3' >"$ROOT/restart.out" 2>&1 &
pid=$!
sleep 1.5
restart_containerd 1
wait "$pid"
code=$?
set -e
echo "exit $code (want 3); output: $(tr '\n' ' ' <"$ROOT/restart.out")"
[ "$code" -eq 3 ] || fail "the run across a containerd restart exited $code, want 3"
grep -q after "$ROOT/restart.out" || fail "the run across a containerd restart lost its output"

phase "full state directory"
mount -t tmpfs -o size=64k tmpfs "$FULL"
dd if=/dev/zero of="$FULL/fill" bs=4k 2>/dev/null || true
for args in "" "-d" "--rm=false"; do
	set +e
	# shellcheck disable=SC2086 # $args is zero or one flag
	msg=$(SBXRUN_STATE_DIR=$FULL sbx run --pull never $args base -- echo lost 2>&1)
	code=$?
	set -e
	echo "run ${args:-(attached)}: exit $code: $msg"
	[ "$code" -eq 125 ] || fail "a run ${args} with a full state directory exited $code, want 125"
done
umount "$FULL"

phase "after"
sbx gc >/dev/null
after=$(counts)
echo "$after"
rss2=$(rss_kb)
echo "containerd-rss-kb $rss2 (before the restart: $rss0 -> $rss1 kB over $((RUNS + MOUNT_RUNS)) runs)"

if [ "$before" != "$after" ]; then
	fail "not everything came back to the start:"
	diff <(echo "$before") <(echo "$after") >&2 || true
	echo "bundles:" >&2
	find "$CTD/state/io.containerd.runtime.v2.task/$NS" -mindepth 1 -maxdepth 2 -ls >&2 2>/dev/null || true
	echo "containerd's log (warnings and errors):" >&2
	grep -E 'level=(warning|error)' "$CTD/containerd.log" | tail -n 20 >&2 || true
fi
if [ $((rss1 - rss0)) -gt "$RSS_GROWTH_KB" ]; then
	fail "containerd's RSS grew by $((rss1 - rss0)) kB over $((RUNS + MOUNT_RUNS)) runs (limit $RSS_GROWTH_KB)"
fi
if [ "$failures" -gt 0 ]; then
	echo "soak: $failures failure(s)" >&2
	exit 1
fi
echo "soak: everything back to the start"
