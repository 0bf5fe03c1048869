#!/usr/bin/env bash
# gpu-pack.sh [OUT.tar.xz]
#
# Packs everything hack/gpu-check.sh needs on a GPU host that has nothing but
# the NVIDIA driver (no containerd, runc, toolkit or network), into one
# compressed tarball (default dist/gpu-check.tar.xz, git-ignored; well under
# the 64 MiB a device upload may take):
#
#   bin/sbxrun                      built here with cgo (go-nvml), stripped
#   bin/ctrdconfig                  hack/ctrdconfig: the private containerd's
#                                   config, as sbxrun's own code writes it
#   bin/containerd, bin/containerd-shim-runc-v2, bin/runc   Debian's
#   bin/rootlesskit, sbin/newuidmap, sbin/newgidmap  Debian's, for the
#                                   rootless check (hack/gpu-check-rootless.sh)
#   lib/libseccomp.so.2             runc's one library beyond glibc
#   image.tar                       a docker-archive test image: busybox,
#                                   glibc, ldconfig and cuda-check (a CUDA
#                                   driver API check, hack/gpu-check/cuda-check.c),
#                                   tagged as the model-dev profile's image,
#                                   and the same layer with LD_PRELOAD set
#                                   (hack/gpu-check/preload-marker.c)
#
# Needs Go, gcc, xz, and Debian's containerd, runc, libseccomp2 and
# busybox-static (hack/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist/gpu-check.tar.xz}
case $out in /*) ;; *) out=$PWD/$out ;; esac

for tool in go gcc xz containerd containerd-shim-runc-v2 runc rootlesskit newuidmap newgidmap busybox ldconfig; do
	command -v "$tool" >/dev/null || { echo "gpu-pack: $tool not found: run hack/deps.sh (as root)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pack=$work/gpu-check
mkdir -p "$pack/bin" "$pack/lib" "$(dirname "$out")"

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
CGO_ENABLED=1 CGO_CFLAGS="${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}" \
	go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$pack/bin/sbxrun" ./cmd/sbxrun
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$pack/bin/ctrdconfig" ./hack/ctrdconfig
for b in containerd containerd-shim-runc-v2 runc rootlesskit; do
	cp "$(command -v "$b")" "$pack/bin/"
done
# For hosts without uidmap (hack/gpu-check-rootless.sh installs them only
# when the host has none); setuid root, as packaged.
mkdir -p "$pack/sbin"
cp -a "$(command -v newuidmap)" "$(command -v newgidmap)" "$pack/sbin/"
seccomp=$(ldconfig -p | awk '/libseccomp\.so\.2 .*x86-64/ {print $NF; exit}')
[[ -n $seccomp ]] || { echo "gpu-pack: libseccomp.so.2 not found: apt-get install libseccomp2" >&2; exit 1; }
cp -L "$seccomp" "$pack/lib/libseccomp.so.2"

# The test image: busybox for a shell, glibc for nvidia-smi and cuda-check
# (the driver's libraries come from the host through CDI), and a static
# ldconfig for the update-ldcache hook.
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,etc/ld.so.conf.d,lib/x86_64-linux-gnu,lib64,usr/bin,usr/lib/x86_64-linux-gnu,usr/local/bin,root,tmp,workspace,dev,proc,sys}
chmod 1777 "$root/tmp"
cp "$(command -v busybox)" "$root/bin/busybox"
for a in $(busybox --list); do
	[[ $a == busybox ]] || ln -sf busybox "$root/bin/$a"
done
for f in $(dpkg -L libc6 | grep -E '^/(usr/)?lib/x86_64-linux-gnu/[^/]+\.so[.0-9]*$'); do
	cp -L "$f" "$root/lib/x86_64-linux-gnu/"
done
ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
cp -L /sbin/ldconfig "$root/sbin/ldconfig"
printf 'include /etc/ld.so.conf.d/*.conf\n' >"$root/etc/ld.so.conf"
printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' >"$root/etc/ld.so.conf.d/x86_64-linux-gnu.conf"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
: >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
gcc -O2 -Wall -o "$root/usr/local/bin/cuda-check" hack/gpu-check/cuda-check.c -ldl
gcc -O2 -Wall -shared -fPIC -o "$root/usr/lib/x86_64-linux-gnu/sbxrun-preload-marker.so" hack/gpu-check/preload-marker.c
ldconfig -r "$root"

img=$work/image
mkdir -p "$img"
tar --owner=0 --group=0 --numeric-owner -C "$root" -cf "$img/layer.tar" .
diff_id=$(sha256sum "$img/layer.tar" | cut -d' ' -f1)
cat >"$img/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]}}
EOF
# The same layer with LD_PRELOAD set the way CVE-2025-23266 used it: a
# library inside the image, reached through the hook's working directory.
cat >"$img/preload.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","LD_PRELOAD=/proc/self/cwd/usr/lib/x86_64-linux-gnu/sbxrun-preload-marker.so"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]}}
EOF
cat >"$img/manifest.json" <<EOF
[{"Config":"config.json","RepoTags":["ghcr.io/sbxrun/model-dev:latest","localhost/sbxrun/gpu-check:1"],"Layers":["layer.tar"]},
 {"Config":"preload.json","RepoTags":["localhost/sbxrun/gpu-check-preload:1"],"Layers":["layer.tar"]}]
EOF
tar -C "$img" -cf "$pack/image.tar" manifest.json config.json preload.json layer.tar

tar --owner=0 --group=0 --numeric-owner -C "$work" -cf - gpu-check | xz -T0 -6 >"$out.tmp"
mv "$out.tmp" "$out"
size=$(stat -c %s "$out")
echo "gpu-pack: wrote $out ($((size / 1024 / 1024)) MiB)"
if ((size > 60 * 1024 * 1024)); then
	echo "gpu-pack: $out is over 60 MiB: a device upload takes at most 64 MiB" >&2
	exit 1
fi
