#!/bin/sh
# containerd.sh start|stop|status DIR
#
# Runs a private containerd (Debian's /usr/bin/containerd) whose root, state
# and sockets all live under DIR, so tests and demos never touch a daemon that
# happens to be running. "start" prints the line to eval:
#
#   eval "$(hack/containerd.sh start /tmp/sbxrun-ctd)"
#   sbxrun base -- sh
#   hack/containerd.sh stop /tmp/sbxrun-ctd
#
# stop kills only the containerd this script started (DIR/containerd.pid),
# removes the tasks and containers it still runs, and unmounts what is left
# under DIR.
set -eu

CONTAINERD=${CONTAINERD:-/usr/bin/containerd}
CTR=${CTR:-/usr/bin/ctr}

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
case $2 in
/*) dir=$2 ;;
*) dir=$(pwd)/$2 ;;
esac
sock=$dir/containerd.sock
pidfile=$dir/containerd.pid

running() {
	[ -f "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
		grep -q containerd "/proc/$pid/comm" 2>/dev/null
}

start() {
	if running; then
		echo "containerd already running (pid $(cat "$pidfile"))" >&2
		echo "export SBXRUN_ADDRESS=$sock"
		return 0
	fi
	if [ ! -x "$CONTAINERD" ]; then
		echo "$CONTAINERD not found: install it with: apt-get install -y containerd runc" >&2
		exit 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "a private containerd needs root: run this script with sudo" >&2
		exit 1
	fi
	mkdir -p "$dir/root" "$dir/state"
	# The config every private daemon of sbxrun uses (internal/ctrdconfig).
	if ! (cd "$(dirname "$0")/.." && ${GO:-go} run ./hack/ctrdconfig "$dir") >"$dir/config.toml"; then
		echo "writing $dir/config.toml failed: containerd.sh needs Go (${GO:-go}) to run hack/ctrdconfig" >&2
		exit 1
	fi
	rm -f "$sock"
	"$CONTAINERD" --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
	echo $! >"$pidfile"
	i=0
	while [ ! -S "$sock" ]; do
		if ! running; then
			echo "containerd exited; see $dir/containerd.log:" >&2
			tail -n 20 "$dir/containerd.log" >&2
			exit 1
		fi
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "containerd did not create $sock within 10s; see $dir/containerd.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "export SBXRUN_ADDRESS=$sock"
}

# cleanup_tasks kills and deletes every task and container of the private
# daemon, so no shim outlives it.
cleanup_tasks() {
	[ -S "$sock" ] && [ -x "$CTR" ] || return 0
	for ns in $("$CTR" -a "$sock" namespaces ls -q 2>/dev/null); do
		for t in $("$CTR" -a "$sock" -n "$ns" tasks ls -q 2>/dev/null); do
			"$CTR" -a "$sock" -n "$ns" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
			"$CTR" -a "$sock" -n "$ns" tasks delete -f "$t" >/dev/null 2>&1 || true
		done
		for c in $("$CTR" -a "$sock" -n "$ns" containers ls -q 2>/dev/null); do
			"$CTR" -a "$sock" -n "$ns" containers delete "$c" >/dev/null 2>&1 || true
		done
	done
}

# unmount_all unmounts every mount point under DIR, deepest first.
unmount_all() {
	awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

stop() {
	if running; then
		pid=$(cat "$pidfile")
		cleanup_tasks
		kill -TERM "$pid"
		i=0
		while kill -0 "$pid" 2>/dev/null; do
			i=$((i + 1))
			if [ $i -gt 100 ]; then
				kill -KILL "$pid" 2>/dev/null || true
			fi
			sleep 0.1
		done
	fi
	rm -f "$pidfile" "$sock"
	unmount_all
}

status() {
	if running; then
		echo "containerd running (pid $(cat "$pidfile")), address $sock"
	else
		echo "containerd not running for $dir"
		exit 1
	fi
}

case $cmd in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
