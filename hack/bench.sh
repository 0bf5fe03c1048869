#!/usr/bin/env bash
# make bench: sbxrun run --rm vs ctr run --rm, same private containerd, same image,
# interleaved. Prints min/median/max, the median ratio and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-30}
dir=$(mktemp -d /tmp/sbxrun-bench.XXXXXX)
trap 'hack/containerd.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
hack/containerd.sh start "$dir" >/dev/null
sock=$dir/containerd.sock
export SBXRUN_ADDRESS=$sock SBXRUN_STATE_DIR=$dir/state
img=ghcr.io/sbxrun/base:latest
bin/sbxrun load -i bin/sandbox-base.tar >/dev/null
# Warm both paths once (snapshot unpack, page cache).
bin/sbxrun run --rm --pull never "$img" true
ctr -a "$sock" -n sbxrun run --rm "$img" warm true
echo "$(date -u +%F) $(nproc) cores, $(uname -r), containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
ctr=$(command -v ctr)
go build -o "$dir/bench" ./hack/bench
echo "== sbxrun (default seccomp, no-new-privileges) vs ctr run --rm (no seccomp)"
"$dir/bench" -n "$runs" \
	-a-name sbxrun -a "$PWD/bin/sbxrun run --rm --pull never $img true" \
	-b-name ctr -b "$ctr -a $sock -n sbxrun run --rm $img {id} true"
echo "== the same hardening on both sides: sbxrun vs ctr run --rm --seccomp"
"$dir/bench" -n "$runs" \
	-a-name sbxrun -a "$PWD/bin/sbxrun run --rm --pull never $img true" \
	-b-name ctr-secc -b "$ctr -a $sock -n sbxrun run --rm --seccomp $img {id} true"
echo "== neither confined: sbxrun --security-opt seccomp=unconfined vs ctr run --rm"
"$dir/bench" -n "$runs" \
	-a-name sbx-unc -a "$PWD/bin/sbxrun run --rm --pull never --security-opt seccomp=unconfined $img true" \
	-b-name ctr -b "$ctr -a $sock -n sbxrun run --rm $img {id} true"
