#!/usr/bin/env bash
# hack/bench-ab.sh NEW OLD: two sbxrun binaries (e.g. this tree's bin/sbxrun
# and an earlier commit's build) on one private containerd, interleaved, 30
# runs each (BENCH_RUNS), on the default bridge and with --net host: the
# check for a regression between commits, which make bench's ratio to ctr
# hides in day-to-day noise. Root; needs bin/sandbox-base.tar (make image).
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: hack/bench-ab.sh NEW-SBXRUN OLD-SBXRUN" >&2; exit 2; }
new=$(realpath "$1") old=$(realpath "$2")
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-30}
dir=$(mktemp -d /tmp/sbxrun-bench.XXXXXX)
export SBXRUN_ADDRESS=$dir/containerd.sock SBXRUN_STATE_DIR=$dir/state SBXRUN_CNI_CONF_DIR=$dir/cni
cleanup() {
	"$new" network rm sbxrun >/dev/null 2>&1 || true
	hack/containerd.sh stop "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
hack/containerd.sh start "$dir" >/dev/null
img=ghcr.io/sbxrun/base:latest
"$new" load -i bin/sandbox-base.tar >/dev/null
"$new" run --rm --pull never "$img" true
"$old" run --rm --pull never "$img" true
go build -o "$dir/bench" ./hack/bench
echo "$(date -u +%F) $(nproc) cores, $(uname -r); new=$new old=$old"
echo "== default network (bridge)"
"$dir/bench" -n "$runs" -a-name new -a "$new run --rm --pull never $img true" -b-name old -b "$old run --rm --pull never $img true"
echo "== --net host"
"$dir/bench" -n "$runs" -a-name new-host -a "$new run --rm --pull never --net host $img true" \
	-b-name old-host -b "$old run --rm --pull never --net host $img true"
