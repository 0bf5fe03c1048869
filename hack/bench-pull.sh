#!/usr/bin/env bash
# make bench-pull: pull and unpack of a multi-layer image (>= 200 MB, random data, generated here)
# from a registry on loopback: sbxrun pull vs ctr pull (same containerd), each on a cleaned
# content store, interleaved. Prints min/median/max, the median ratio and peak RSS.
#
#   BENCH_RUNS=5 BENCH_LAYERS=5 BENCH_LAYER_MB=48 hack/bench-pull.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-5}
layers=${BENCH_LAYERS:-5}
layer_mb=${BENCH_LAYER_MB:-48}
for bin in docker-registry skopeo ctr containerd; do
	command -v "$bin" >/dev/null || { echo "bench-pull: $bin not found: run hack/deps.sh (apt-get install -y docker-registry skopeo containerd)" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { echo "bench-pull: /usr/bin/time not found: apt-get install -y time" >&2; exit 1; }
[[ -x bin/sbxrun ]] || { echo "bench-pull: bin/sbxrun not built: make build" >&2; exit 1; }

dir=$(mktemp -d /tmp/sbxrun-bench-pull.XXXXXX)
regpid=
cleanup() {
	if [[ -n $regpid ]]; then
		kill "$regpid" 2>/dev/null || true
		wait "$regpid" 2>/dev/null || true
	fi
	hack/containerd.sh stop "$dir/ctd" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
hack/containerd.sh start "$dir/ctd" >/dev/null
sock=$dir/ctd/containerd.sock
ns=bench-pull
export SBXRUN_ADDRESS=$sock SBXRUN_STATE_DIR=$dir/state

# A registry on a free loopback port.
port=$((20000 + RANDOM % 20000))
cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# The image: $layers gzip layers of random data, as an OCI layout.
oci=$dir/oci
mkdir -p "$oci/blobs/sha256"
blob() { # FILE -> prints "sha256:HEX SIZE" and moves FILE into the layout
	local h s
	h=$(sha256sum "$1" | cut -d' ' -f1)
	s=$(stat -c %s "$1")
	mv "$1" "$oci/blobs/sha256/$h"
	echo "sha256:$h $s"
}
diffids=() descs=()
for i in $(seq "$layers"); do
	mkdir -p "$dir/layer$i/data"
	head -c "${layer_mb}M" /dev/urandom >"$dir/layer$i/data/blob$i.bin"
	tar -C "$dir/layer$i" --mtime=@1700000000 --owner=0 --group=0 -cf "$dir/layer$i.tar" data
	diffids+=("\"sha256:$(sha256sum "$dir/layer$i.tar" | cut -d' ' -f1)\"")
	gzip -1 -n -c "$dir/layer$i.tar" >"$dir/layer$i.tar.gz"
	read -r d s < <(blob "$dir/layer$i.tar.gz")
	descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$d\",\"size\":$s}")
	rm -rf "$dir/layer$i" "$dir/layer$i.tar"
done
case $(uname -m) in
aarch64) arch=arm64 ;;
x86_64) arch=amd64 ;;
*) arch=$(uname -m) ;;
esac
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/true"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
	"$arch" "$(IFS=,; echo "${diffids[*]}")" >"$dir/config.json"
read -r cd cs < <(blob "$dir/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
	"$cd" "$cs" "$(IFS=,; echo "${descs[*]}")" >"$dir/manifest.json"
read -r md ms < <(blob "$dir/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$md" "$ms" >"$oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
ref=127.0.0.1:$port/sbxrun/bench:1
HOME=$dir skopeo copy --quiet --dest-tls-verify=false "oci:$oci:bench" "docker://$ref"
total=$(du -sb "$oci/blobs" | cut -f1)
rm -rf "$oci"

ctr() { command ctr -a "$sock" -n "$ns" "$@"; }
# clean removes the image, the leases and everything they held, then checks the namespace is empty.
clean() {
	ctr images rm --sync "$ref" >/dev/null 2>&1 || true
	for l in $(ctr leases ls -q 2>/dev/null); do ctr leases rm --sync "$l" >/dev/null 2>&1 || true; done
	if [[ -n $(ctr content ls -q) || -n $(ctr snapshots ls | tail -n +2) ]]; then
		echo "bench-pull: the content store is not empty after cleaning" >&2
		ctr content ls >&2
		exit 1
	fi
	sync
}
# timed NAME CMD...: runs CMD on a clean store, appends "seconds KiB" to $dir/NAME.
timed() {
	local name=$1
	shift
	clean
	/usr/bin/time -f "%e %M" -o "$dir/t" "$@" >/dev/null 2>"$dir/err" || { cat "$dir/err" >&2; exit 1; }
	cat "$dir/t" >>"$dir/$name"
}

echo "$(date -u +%F) $(nproc) cores, $(uname -r), containerd $(containerd --version | awk '{print $3}'); image: $layers layers, $((total / 1000000)) MB compressed"
sbx=("$PWD/bin/sbxrun" --namespace "$ns" pull -q "$ref")
peer=("$(command -v ctr)" -a "$sock" -n "$ns" images pull --plain-http "$ref")
for i in $(seq "$runs"); do
	if ((i % 2)); then
		timed sbxrun "${sbx[@]}"
		timed ctr "${peer[@]}"
	else
		timed ctr "${peer[@]}"
		timed sbxrun "${sbx[@]}"
	fi
done
clean

# report NAME: prints the stats of NAME and sets $median (ms).
report() {
	local f=$dir/$1
	median=$(cut -d' ' -f1 "$f" | sort -n | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%d", m * 1000}')
	sort -n "$f" | awk -v name="$1" -v med="$median" '{t[NR] = $1; if ($2 > rss) rss = $2}
		END {printf "%-7s n=%d min %6.0fms  median %6dms  max %6.0fms  peak RSS %.1f MB\n", name, NR, t[1] * 1000, med, t[NR] * 1000, rss / 1024}'
}
report sbxrun
ms=$median
report ctr
mc=$median
awk -v a="$ms" -v b="$mc" 'BEGIN {printf "median ratio sbxrun/ctr: %.2f\n", a / b}'
