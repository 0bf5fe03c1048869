#!/usr/bin/env bash
# Installs what sbxrun's build, tests and demo need on Debian/Ubuntu: containerd, runc,
# busybox-static (the local test image), the CNI plugins and iptables (--net bridge), passt
# (pasta, a rootless sandbox's network), and tools the tests use (etcd-server, curl, openssl and
# xz-utils for the Kubernetes API server of the kube tests, ../shared/tools/kube/apiserver.sh).
# Idempotent; needs root.
set -euo pipefail
pkgs=(containerd runc busybox-static ca-certificates rootlesskit uidmap util-linux docker-registry skopeo systemd gcc libc6-dev mmdebstrap shellcheck xvfb python3 containernetworking-plugins iptables passt zsh fish lintian rpm etcd-server curl openssl xz-utils)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "hack/deps.sh: missing packages ${missing[*]}: run as root (sudo make deps)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || { echo "hack/deps.sh: Go is not installed: install Go 1.24 or newer (https://go.dev/doc/install)" >&2; exit 1; }
