#!/usr/bin/env bash
# build.sh: builds sandbox images without Docker, from Debian packages, for
# offline hosts, this project's demo and its tests. For each sandbox:
# mmdebstrap makes a Debian root filesystem with the packages in
# local/NAME.packages (test and model-dev add theirs to base's), runs the
# same sandbox-setup script as the Dockerfiles (user dev, uid 1000, workdirs,
# /etc/sbxrun-sandbox) and installs the same entrypoint and tools; then
# hack/ocipack writes an OCI archive whose config (user, workdir, env,
# entrypoint, labels) is the one the sandbox's Dockerfile gives. Load the
# result with `sbxrun load -i DIR/NAME.tar`.
#
#   sandboxes/local/build.sh [-o DIR] [--minimal] [--cache DIR] [--mirror URL]
#                            [--compress gzip|zstd|none] NAME...
#
# Needs root (or unprivileged user namespaces), mmdebstrap and Go; downloads
# from the Debian mirror only. Downloaded packages are kept in the cache
# directory (default DIR/apt-cache), so a rebuild downloads nothing new.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sandboxes=$(dirname "$here")
repo=$(dirname "$sandboxes")

usage() {
	echo "usage: sandboxes/local/build.sh [-o DIR] [--minimal] [--cache DIR] [--mirror URL] [--compress gzip|zstd|none] NAME..." >&2
	exit 2
}

out=$repo/bin/sandboxes
minimal=false
cache=""
mirror=${SBXRUN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${SBXRUN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
compress=gzip
names=()
while (($# > 0)); do
	case $1 in
	-o) out=${2:?-o needs a directory}; shift 2 ;;
	--minimal) minimal=true; shift ;;
	--cache) cache=${2:?--cache needs a directory}; shift 2 ;;
	--mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
	--compress) compress=${2:?--compress needs gzip, zstd or none}; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "build.sh: unknown option $1" >&2; usage ;;
	*) names+=("$1"); shift ;;
	esac
done
((${#names[@]} > 0)) || { echo "build.sh: name the sandboxes to build (base, test, model-dev)" >&2; usage; }
for name in "${names[@]}"; do
	case $name in
	base | test | model-dev) ;;
	*) echo "build.sh: unknown sandbox \"$name\": use base, test or model-dev" >&2; exit 2 ;;
	esac
	if $minimal && [[ $name != base ]]; then
		echo "build.sh: --minimal builds base only" >&2
		exit 2
	fi
done
command -v mmdebstrap >/dev/null || { echo "build.sh: mmdebstrap not found: install it with: apt-get install -y mmdebstrap" >&2; exit 1; }
command -v go >/dev/null || { echo "build.sh: go not found: install Go 1.26 or newer" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${cache:-$out/apt-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

version() {
	local v
	v=$(sed -n "s/^$1=//p" "$sandboxes/versions.env")
	[[ -n $v ]] || { echo "build.sh: $1 is not set in $sandboxes/versions.env" >&2; exit 1; }
	printf '%s\n' "$v"
}
suite=$(version DEBIAN_SUITE)
sandbox_version=$(version SANDBOX_VERSION)

ocipack=$out/.ocipack
(cd "$repo" && go build -o "$ocipack" ./hack/ocipack)

# packages FILE...: the package names in the lists, comma-separated.
packages() {
	sed -e 's/#.*//' -e 's/[[:space:]]//g' "$@" | grep -v '^$' | sort -u | paste -sd, -
}

for name in "${names[@]}"; do
	lists=("$here/base.packages")
	$minimal && lists=("$here/base-minimal.packages")
	[[ $name != base ]] && lists+=("$here/$name.packages")
	mapfile -t dirs < <("$ocipack" -dir "$sandboxes" -sandbox "$name" -print-dirs)
	rootfs=$out/.$name.rootfs.tar
	hooks=(
		--customize-hook="mkdir -p \"\$1/usr/local/sbin\" \"\$1/usr/local/lib/sbxrun/entrypoint.d\""
		--customize-hook="copy-in $sandboxes/base/sandbox-setup /usr/local/sbin"
		--customize-hook="copy-in $sandboxes/base/sandbox-entrypoint /usr/local/bin"
	)
	case $name in
	model-dev)
		hooks+=(
			--customize-hook="mkdir -p \"\$1/opt/sbxrun\""
			--customize-hook="copy-in $sandboxes/model-dev/bin/model-test $sandboxes/model-dev/bin/ollama-setup /usr/local/bin"
			--customize-hook="copy-in $sandboxes/model-dev/entrypoint.d/ollama.sh /usr/local/lib/sbxrun/entrypoint.d"
			--customize-hook="copy-in $sandboxes/model-dev/benchmarks /opt/sbxrun"
		)
		;;
	test)
		hooks+=(--customize-hook="copy-in $sandboxes/test/entrypoint.d/xvfb.sh /usr/local/lib/sbxrun/entrypoint.d")
		;;
	esac
	hooks+=(--customize-hook="chroot \"\$1\" /usr/local/sbin/sandbox-setup $name $sandbox_version local-debian ${dirs[*]}")

	echo "build.sh: $name: mmdebstrap $suite ($(packages "${lists[@]}" | tr ',' ' ' | wc -w) packages)" >&2
	start=$SECONDS
	# The package cache follows mmdebstrap's manual: keep the essential
	# packages' files, copy the cache in before and out after. The hooks'
	# "$1" is the chroot, which mmdebstrap passes them.
	# shellcheck disable=SC2016
	mmdebstrap --variant=apt --mode=auto --format=tar --quiet \
		--skip=output/dev --skip=essential/unlink \
		--aptopt='Acquire::Retries "3"' \
		--include="$(packages "${lists[@]}")" \
		--setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
		--setup-hook="sync-in $cache /var/cache/apt/archives/" \
		"${hooks[@]}" \
		--customize-hook="sync-out /var/cache/apt/archives $cache" \
		--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
		"$suite" "$rootfs" \
		"deb $mirror $suite main" \
		"deb $mirror $suite-updates main" \
		"deb $security $suite-security main"
	echo "build.sh: $name: root filesystem in $((SECONDS - start))s, $(du -m "$rootfs" | cut -f1) MiB" >&2

	start=$SECONDS
	label=(-label "org.opencontainers.image.description=sbxrun $name sandbox, local Debian $suite build (sandboxes/local)")
	"$ocipack" -dir "$sandboxes" -sandbox "$name" -rootfs "$rootfs" -o "$out/$name.tar" \
		-compress "$compress" "${label[@]}" \
		-history "sandboxes/local/build.sh $name (mmdebstrap $suite$($minimal && echo ', minimal'))"
	rm -f "$rootfs"
	echo "build.sh: $name: $out/$name.tar in $((SECONDS - start))s, $(du -m "$out/$name.tar" | cut -f1) MiB" >&2
done
