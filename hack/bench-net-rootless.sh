#!/usr/bin/env bash
# make bench-net-rootless: `sbxrun run --rm IMG true` as an unprivileged user under
# `sbxrun rootless`, on the sandbox's own network (pasta) vs --net host, and on a named
# network (the user's bridge namespace, and pasta) vs its own network, interleaved, on one
# rootless daemon; then checks that no pasta, namespace or record is left. Needs root:
# it runs as BENCH_USER (default sbxrun-it, the integration tests' user; created with
# subordinate ids when missing) and makes /dev/net/tun mode 0666 while it runs (these
# machines create it 0600; udev's usual mode is 0666), restoring the mode afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-20}
user=${BENCH_USER:-sbxrun-it}
if [[ $(id -u) -ne 0 ]]; then
	echo "hack/bench-net-rootless.sh: run as root (it runs the benchmark as $user)" >&2
	exit 1
fi
if ! id "$user" >/dev/null 2>&1; then
	useradd --create-home --shell /bin/sh "$user"
fi
grep -q "^$user:" /etc/subuid || usermod --add-subuids 300000-365535 --add-subgids 300000-365535 "$user"
dir=$(mktemp -d /tmp/sbxrun-bench-rootless.XXXXXX)
chmod 755 "$dir"
tun_mode=$(stat -c %a /dev/net/tun)
as_user() {
	(cd "$dir/project" && setpriv --reuid="$user" --regid="$user" --clear-groups \
		env -i HOME="$(getent passwd "$user" | cut -d: -f6)" USER="$user" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		XDG_RUNTIME_DIR="$dir/run" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" "$@")
}
cleanup() {
	as_user "$dir/sbxrun" rootless stop >/dev/null 2>&1 || true
	chmod "$tun_mode" /dev/net/tun
	rm -rf "$dir"
}
trap cleanup EXIT
chmod 0666 /dev/net/tun
install -m 0755 bin/sbxrun "$dir/sbxrun"
install -m 0644 bin/sandbox-base.tar "$dir/base.tar"
go build -o "$dir/bench" ./hack/bench
for d in run data project config; do install -d -m 0700 -o "$user" -g "$user" "$dir/$d"; done
as_user "$dir/sbxrun" rootless setup >/dev/null
as_user "$dir/sbxrun" rootless start >/dev/null
as_user "$dir/sbxrun" load -i "$dir/base.tar" >/dev/null
img=ghcr.io/sbxrun/base:latest
# Warm both paths once.
as_user "$dir/sbxrun" run --rm --pull never "$img" true
as_user "$dir/sbxrun" run --rm --pull never --net host "$img" true
as_user "$dir/sbxrun" network create bench >/dev/null
as_user "$dir/sbxrun" run --rm --pull never --net bench "$img" true
echo "$(date -u +%F) $(nproc) cores, $(uname -r), containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), rootlesskit $(rootlesskit --version | awk '{print $3}'), passt $(dpkg-query -W -f='${Version}' passt 2>/dev/null || echo '?'), as $user"
echo "== rootless: own network (pasta) vs --net host"
as_user "$dir/bench" -n "$runs" \
	-a-name pasta -a "$dir/sbxrun run --rm --pull never $img true" \
	-b-name host -b "$dir/sbxrun run --rm --pull never --net host $img true"
echo "== rootless: own network with -p 8000 vs --net host"
as_user "$dir/bench" -n "$runs" \
	-a-name pasta-p -a "$dir/sbxrun run --rm --pull never -p 8000 $img true" \
	-b-name host -b "$dir/sbxrun run --rm --pull never --net host $img true"
echo "== rootless: a named network (bridge namespace + pasta) vs its own network (pasta)"
as_user "$dir/bench" -n "$runs" \
	-a-name named -a "$dir/sbxrun run --rm --pull never --net bench $img true" \
	-b-name pasta -b "$dir/sbxrun run --rm --pull never $img true"
as_user "$dir/sbxrun" network rm bench >/dev/null
sleep 1 # init reaps the last pasta
left_ns=$(find "$dir/data/sbxrun/netns" -mindepth 1 2>/dev/null | wc -l)
left_rec=$(find "$dir/data/sbxrun/cni/attachments" -type f 2>/dev/null | wc -l)
left_pasta=$(ps -u "$user" -o stat=,comm= | awk '$1 !~ /^Z/ && $2 ~ /^pass?t/' | wc -l) # zombies hold nothing
echo "left after $((runs * 5)) rootless runs on their own network: $left_ns namespaces, $left_rec records, $left_pasta pasta processes"
