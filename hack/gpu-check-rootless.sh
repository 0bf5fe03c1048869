#!/usr/bin/env bash
# gpu-check-rootless.sh [PACK.tar.xz]
#
# Checks rootless sbxrun with GPUs on a real GPU host, as root: it creates
# an unprivileged user (sbxrun-gpu) with subordinate ids, writes the host's
# CDI spec with `sbxrun gpu setup` as root, and then, as that user:
#
#   sbxrun rootless setup / start          (a per-user containerd under RootlessKit)
#   sbxrun run --gpus all -- nvidia-smi -L, model-dev, cuda-check
#   a stale spec and a missing one         (the user gets one generated in memory)
#   sbxrun rootless stop
#
# The host needs only the driver (plus util-linux's setpriv and nsenter and
# shadow's useradd, which every distribution has); everything else comes in
# PACK (hack/gpu-pack.sh). The log is gpu-check-rootless.log in $OUT or the
# current directory. Everything it made is removed at the end: the user, its
# home, the binaries, and the host's /var/run/cdi/nvidia.yaml is put back as
# it was. Exit status: the number of failed checks.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pack=${1:-$repo/dist/gpu-check.tar.xz}
# shellcheck source=hack/gpu-check/lib.sh
. "$repo/hack/gpu-check/lib.sh"
start_log gpu-check-rootless.log

[[ $(id -u) -eq 0 ]] || {
	echo "gpu-check-rootless: run as root (it creates a user)" >&2
	exit 125
}
[[ -f $pack ]] || {
	echo "gpu-check-rootless: $pack not found: build it with \`make gpu-pack\`" >&2
	exit 125
}
for tool in setpriv useradd usermod userdel nsenter; do
	command -v "$tool" >/dev/null || {
		echo "gpu-check-rootless: $tool not found on this host" >&2
		exit 125
	}
done

user=sbxrun-gpu
# Not under /tmp: the hook binary must lie in directories only root can
# change, and the user must be able to read it.
D=$(mktemp -d /opt/sbxrun-gpu-rootless.XXXXXX)
chmod 0755 "$D"
errfile=$D/stderr
spec=/var/run/cdi/nvidia.yaml
had_spec=
if [[ -e $spec ]]; then
	cp -a "$spec" "$D/nvidia.yaml.orig" && had_spec=1
fi
installed=()
made_user=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [[ -n $made_user ]]; then
		as_user rootless stop >/dev/null 2>&1
		pkill -KILL -u "$user" 2>/dev/null
		sleep 0.5
		userdel -r "$user" >/dev/null 2>&1
		sed -i "/^$user:/d" /etc/subuid /etc/subgid
	fi
	for f in "${installed[@]}"; do rm -f "$f"; done
	if [[ -n $had_spec ]]; then
		cp -a "$D/nvidia.yaml.orig" "$spec"
	else
		rm -f "$spec"
	fi
	rm -rf "$D"
}
trap cleanup EXIT

step "host"
echo "date:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
# shellcheck source=/dev/null
echo "os:     $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), kernel $(uname -r), cgroup $(stat -fc %T /sys/fs/cgroup)"
echo "driver: $(head -n1 /proc/driver/nvidia/version 2>/dev/null || echo 'not loaded')"
echo "userns: max_user_namespaces=$(cat /proc/sys/user/max_user_namespaces 2>/dev/null)" \
	"apparmor_restrict_unprivileged_userns=$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo n/a)"

tar -C "$D" -xJf "$pack" || fail "unpacking $pack"
B=$D/gpu-check
SBXRUN=$B/bin/sbxrun
for m in newuidmap newgidmap; do
	if ! command -v "$m" >/dev/null; then
		cp -a "$B/sbin/$m" "/usr/local/bin/$m" && installed+=("/usr/local/bin/$m")
		echo "installed the pack's $m in /usr/local/bin (removed at the end)"
	fi
done

step "the user $user"
if id "$user" >/dev/null 2>&1; then
	echo "gpu-check-rootless: user $user exists already: remove it (userdel -r $user) or run on a fresh host" >&2
	exit 125
fi
useradd --create-home --shell /bin/sh "$user" && made_user=1
usermod --add-subuids 400000-465535 --add-subgids 400000-465535 "$user"
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
xdg=$D/run
mkdir -m 0700 "$xdg" && chown "$uid:$gid" "$xdg"
echo "uid $uid, home $home, XDG_RUNTIME_DIR $xdg"

# shellcheck disable=SC2317 # called through capture
# as_user ARGS...: sbxrun as the user, in its home, with a clean environment.
as_user() {
	(cd "$home" && setpriv --reuid="$uid" --regid="$gid" --clear-groups \
		env -i HOME="$home" USER="$user" XDG_RUNTIME_DIR="$xdg" \
		PATH="$B/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$SBXRUN" "$@")
}
# run_user LABEL ARGS...: as_user ARGS, captured (see capture in lib.sh).
run_user() {
	local label=$1
	shift
	capture "$label" "   (as $user)" as_user "$@"
}

step "the host's CDI spec, as root"
"$SBXRUN" gpu setup
ok "gpu setup" "gpu setup"

step "rootless containerd"
run_user "setup" rootless setup
[[ $rc -eq 0 ]]
ok "rootless setup" "rootless setup: exit $rc"
run_user "start" rootless start
[[ $rc -eq 0 ]]
ok "rootless start in $took ms" "rootless start: exit $rc"
run_user "load" load -i "$B/image.tar"
[[ $rc -eq 0 ]]
ok "load" "load: exit $rc"
IMG=localhost/sbxrun/gpu-check:1

step "GPU sandboxes, rootless"
run_user "gpus all" run --pull never --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $out == *"GPU 0"* ]]
ok "rootless --gpus all: nvidia-smi -L lists the GPU ($took ms)" "rootless --gpus all: exit $rc"
run_user "model-dev" model-dev --pull never -- nvidia-smi -L
[[ $rc -eq 0 && $out == *"GPU 0"* ]]
ok "rootless model-dev -- nvidia-smi -L ($took ms)" "rootless model-dev: exit $rc"
run_user "cuda" run --pull never --gpus all "$IMG" -- cuda-check
[[ $rc -eq 0 && $out == *"fill/read back OK"* ]]
ok "rootless CUDA driver API ($took ms)" "rootless cuda-check: exit $rc"
# shellcheck disable=SC2016 # expanded in the sandbox
run_user "confinement" model-dev --pull never -- sh -c 'id -u; grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status; touch /workspace/made-by-sandbox'
[[ $rc -eq 0 && $out == *"NoNewPrivs:	1"* && $(stat -c %u "$home/made-by-sandbox" 2>/dev/null) == "$uid" ]]
ok "no-new-privileges, seccomp, and workspace files owned by $user on the host" "rootless confinement/ownership: exit $rc"

step "stale and missing specs, rootless (the user may not write them)"
sed -i 's/^\(  *sbxrun.driver-version: \).*/\11.0.0/' "$spec"
run_user "stale" run --pull never --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $err == *"generated in memory"* && $out == *"GPU 0"* ]]
ok "a stale spec: the run uses one generated in memory" "rootless stale spec: exit $rc"
grep -q 'sbxrun.driver-version: 1.0.0' "$spec"
ok "the user left the host's spec file alone" "the host's spec was rewritten by the user"
rm -f "$spec"
run_user "missing" run --pull never --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $err == *"generated in memory"* && $out == *"GPU 0"* && ! -e $spec ]]
ok "no spec: the run uses one generated in memory" "rootless missing spec: exit $rc"

step "stop"
run_user "stop" rootless stop
[[ $rc -eq 0 ]]
ok "rootless stop" "rootless stop: exit $rc"

echo
echo "gpu-check-rootless: $fails failure(s); log $log"
exit "$fails"
