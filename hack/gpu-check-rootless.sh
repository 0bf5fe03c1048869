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
# PACK (hack/gpu-pack.sh). The log is gpu-check-rootless.log in $OUT or
# dist/gpu-check-out/ in the repo. Exit status: the number of failed checks.
#
# Meant for a GPU host you may disturb briefly: while it runs, it changes
# the host's /var/run/cdi/nvidia.yaml (writes it, makes it stale, removes
# it), and other CDI users on the host (Docker, Podman, containerd's CRI)
# see those changes. At the end, or on Ctrl-C or TERM, it removes what it
# made (the user, its home and subordinate ids, the binaries) and puts the
# spec back as it found it; a SIGKILL leaves the spec changed (`sbxrun gpu
# setup` rewrites it) and the user behind (`userdel -r sbxrun-gpu`).
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
save_spec "$D" || {
	echo "gpu-check-rootless: cannot keep a copy of $spec" >&2
	rm -rf "$D"
	exit 125
}
# The subordinate id files this check makes (where the host has none), and
# shadow's backups of them (FILE-), go at the end once the file is empty again.
made_ids=()
for f in /etc/sub{u,g}id{,-}; do [[ -e $f ]] || made_ids+=("$f"); done
installed=()
made_user='' finished=''
# shellcheck disable=SC2317 # called by the traps
cleanup() {
	trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
	if [[ -n $made_user ]]; then
		as_user rootless stop >/dev/null 2>&1
		pkill -KILL -u "$user" 2>/dev/null
		sleep 0.5
		userdel -r "$user" >/dev/null 2>&1
		sed -i "/^$user:/d" /etc/subuid /etc/subgid 2>/dev/null
	fi
	for f in "${made_ids[@]}"; do [[ -s ${f%-} ]] || rm -f "$f"; done
	for f in "${installed[@]}"; do rm -f "$f"; done
	restore_spec
	rm -rf "$D"
	[[ -n $finished ]] || echo "gpu-check-rootless: stopped before the end, cleaned up; log $log"
}
trap cleanup EXIT
# Ctrl-C: stop after the current command (TERM stops at once; both clean up).
trap 'exit 130' INT

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
useradd --create-home --shell /bin/sh "$user" || {
	echo "gpu-check-rootless: useradd $user failed (see above): nothing to check without the user" >&2
	exit 125
}
made_user=1
# 65536 subordinate ids from 400000 up, clear of every range the host (or
# useradd, just now) gave out. usermod needs the files to exist.
ids=400000
while { cat /etc/subuid /etc/subgid 2>/dev/null || true; } |
	awk -F: -v s="$ids" '$2 < s + 65536 && $2 + $3 > s {hit = 1} END {exit !hit}'; do
	ids=$((ids + 65536))
done
for f in /etc/subuid /etc/subgid; do [[ -e $f ]] || : >"$f"; done
usermod --add-subuids "$ids-$((ids + 65535))" --add-subgids "$ids-$((ids + 65535))" "$user" || {
	echo "gpu-check-rootless: usermod --add-subuids failed (see above)" >&2
	exit 125
}
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
xdg=$D/run
mkdir -m 0700 "$xdg" && chown "$uid:$gid" "$xdg"
echo "uid $uid, home $home, XDG_RUNTIME_DIR $xdg, subordinate ids $ids-$((ids + 65535))"

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
# --net host: the pack carries no pasta, which a rootless sandbox's own
# network needs; the GPU is what this checks.
run_user "gpus all" run --pull never --net host --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $out == *"GPU 0"* ]]
ok "rootless --gpus all: nvidia-smi -L lists the GPU ($took ms)" "rootless --gpus all: exit $rc"
run_user "model-dev" model-dev --pull never --net host -- nvidia-smi -L
[[ $rc -eq 0 && $out == *"GPU 0"* ]]
ok "rootless model-dev -- nvidia-smi -L ($took ms)" "rootless model-dev: exit $rc"
run_user "cuda" run --pull never --net host --gpus all "$IMG" -- cuda-check
[[ $rc -eq 0 && $out == *"fill/read back OK"* ]]
ok "rootless CUDA driver API ($took ms)" "rootless cuda-check: exit $rc"
# shellcheck disable=SC2016 # expanded in the sandbox
run_user "confinement" model-dev --pull never --net host -- sh -c 'id -u; grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status; touch /workspace/made-by-sandbox'
[[ $rc -eq 0 && $out == *"NoNewPrivs:	1"* && $(stat -c %u "$home/made-by-sandbox" 2>/dev/null) == "$uid" ]]
ok "no-new-privileges, seccomp, and workspace files owned by $user on the host" "rootless confinement/ownership: exit $rc"

step "stale and missing specs, rootless (the user may not write them)"
sed -i 's/^\(  *sbxrun.driver-version: \).*/\11.0.0/' "$spec"
run_user "stale" run --pull never --net host --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $err == *"generated in memory"* && $out == *"GPU 0"* ]]
ok "a stale spec: the run uses one generated in memory" "rootless stale spec: exit $rc"
# The same stale spec, but one the user could rewrite: their own file in
# their own directory (uid 0 in the rootless namespace, where the run
# decides). Only sbxrun's rule, no rewrite inside the rootless namespace,
# keeps it: a rewrite would say "regenerated" and change the file's mtime.
us=$D/user-cdi
mkdir -m 0755 "$us" && cp "$spec" "$us/nvidia.yaml" && chown -R "$uid:$gid" "$us"
mtime=$(stat -c %y "$us/nvidia.yaml" 2>/dev/null)
run_user "user's stale spec" --cdi-spec-dir "$us" run --pull never --net host --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $err == *"generated in memory"* && $err != *regenerated* && $out == *"GPU 0"* &&
	-n $mtime && $(stat -c %y "$us/nvidia.yaml") == "$mtime" ]]
ok "a stale spec the user may write: not rewritten inside the rootless namespace, one generated in memory" \
	"a stale spec the user may write: exit $rc, mtime ${mtime:-(no spec to copy)} -> $(stat -c %y "$us/nvidia.yaml" 2>/dev/null)"
rm -f "$spec"
run_user "missing" run --pull never --net host --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $err == *"generated in memory"* && $out == *"GPU 0"* && ! -e $spec ]]
ok "no spec: the run uses one generated in memory" "rootless missing spec: exit $rc"

step "left behind"
run_user "ps" ps -a
left=$(tail -n +2 <<<"$out")
[[ $rc -eq 0 && -z $left ]]
ok "no sandbox left" "ps -a: exit $rc, sandboxes left: $left"

step "stop"
run_user "stop" rootless stop
[[ $rc -eq 0 ]]
ok "rootless stop" "rootless stop: exit $rc"

finished=1
echo
echo "gpu-check-rootless: $fails failure(s); log $log"
exit "$fails"
