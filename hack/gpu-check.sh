#!/usr/bin/env bash
# gpu-check.sh [PACK.tar.xz]
#
# Checks sbxrun's GPU support on a real GPU host, as root. The host needs only
# the NVIDIA driver: everything else comes in PACK (default
# dist/gpu-check.tar.xz, made by hack/gpu-pack.sh or `make gpu-pack`). It
# starts a private containerd under /tmp, runs `sbxrun gpu setup`, loads a
# small glibc image as the model-dev profile's image, and runs
#
#   sbxrun model-dev -- nvidia-smi -L            (model-dev asks for all GPUs)
#   sbxrun run --gpus all|1|device=0|device=UUID, --device nvidia.com/gpu=0
#   cuda-check                                   (CUDA driver API: context, 64 MiB fill + read back)
#   a stale spec (driver version, missing file) that a run regenerates
#   an OOM kill under --memory, the sandbox's confinement, timings
#
# Meant for a GPU host you may disturb briefly: while it runs, it changes
# the host's /var/run/cdi/nvidia.yaml (writes it, makes it stale, removes
# it), and other CDI users on the host (Docker, Podman, containerd's CRI)
# see those changes. At the end, or on Ctrl-C or TERM, it removes its
# sandboxes, containerd and shims and puts the spec back as it found it; a
# SIGKILL leaves the spec changed (`sbxrun gpu setup` rewrites it).
#
# Everything goes to one log, gpu-check.log in $OUT (the device runner's
# output folder) or dist/gpu-check-out/ in the repo, next to the generated
# CDI spec and the config.json of a GPU sandbox. Exit status: the number of
# failed checks (0: all passed).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pack=${1:-$repo/dist/gpu-check.tar.xz}
# shellcheck source=hack/gpu-check/lib.sh
. "$repo/hack/gpu-check/lib.sh"
start_log gpu-check.log

# run_sb LABEL ARGS...: sbxrun ARGS, captured (see capture in lib.sh).
run_sb() {
	local label=$1
	shift
	capture "$label" "" "$SBXRUN" "$@"
}

[[ $(id -u) -eq 0 ]] || {
	echo "gpu-check: run as root (a private containerd and runc need it)" >&2
	exit 125
}
[[ -f $pack ]] || {
	echo "gpu-check: $pack not found: build it with \`make gpu-pack\` on a machine with Go and Debian's containerd" >&2
	exit 125
}

W=$(mktemp -d /tmp/sbxrun-gpu-check.XXXXXX)
errfile=$W/stderr
ctd_pid='' finished=''
# The check writes the host's /var/run/cdi/nvidia.yaml (what `sbxrun gpu
# setup` writes): whatever was there before is put back at the end.
save_spec "$W" || {
	echo "gpu-check: cannot keep a copy of $spec" >&2
	rm -rf "$W"
	exit 125
}
marker=/tmp/sbxrun-preload-marker
rm -f "$marker"
# shellcheck disable=SC2317 # called by the traps
cleanup() {
	trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
	if [[ -n $ctd_pid ]]; then
		# An interrupted run leaves its sandbox running: remove them all (from
		# this run's containerd only), stop containerd, then kill any shim of
		# this run that outlived it (its -address is under $W), the sandbox
		# init processes it holds, and remove its socket (containerd 1.6 names
		# it /run/containerd/s/sha256(ADDRESS/NAMESPACE/ID)).
		local sock=$W/ctd/containerd.sock p av i ns id
		timeout 20 "$SBXRUN" --address "$sock" ps -a 2>/dev/null | awk 'NR > 1 {print $1}' |
			xargs -r timeout 60 "$SBXRUN" --address "$sock" rm -f >/dev/null 2>&1
		kill "$ctd_pid" 2>/dev/null
		wait "$ctd_pid" 2>/dev/null
		for p in /proc/[0-9]*; do
			mapfile -d '' -t av <"$p/cmdline" || continue
			[[ ${av[0]:-} == *containerd-shim-runc-v2 && " ${av[*]} " == *" -address $sock "* ]] || continue
			pkill -KILL -P "${p#/proc/}"
			kill -KILL "${p#/proc/}"
			for i in "${!av[@]}"; do
				case ${av[i]} in -namespace) ns=${av[i + 1]:-} ;; -id) id=${av[i + 1]:-} ;; esac
			done
			rm -f "/run/containerd/s/$(printf %s "$sock/$ns/$id" | sha256sum | cut -d' ' -f1)"
		done 2>/dev/null
	fi
	grep -o " $W/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	restore_spec
	rm -rf "$W" "$marker"
	[[ -n $finished ]] || echo "gpu-check: stopped before the end, cleaned up; log $log"
}
trap cleanup EXIT
# Ctrl-C: stop after the current command (TERM stops at once; both clean up).
trap 'exit 130' INT

step "host"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
# shellcheck source=/dev/null
echo "os:       $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) cores"
echo "cgroup:   $(stat -fc %T /sys/fs/cgroup)"
echo "driver:   $(head -n1 /proc/driver/nvidia/version 2>/dev/null || echo 'not loaded')"
smi=$(command -v nvidia-smi || ls /usr/local/nvidia/bin/nvidia-smi 2>/dev/null)
if [[ -n $smi ]]; then
	echo "nvidia-smi: $smi"
	"$smi" --query-gpu=index,name,driver_version,memory.total --format=csv,noheader | sed 's/^/  /'
	host_gpus=$("$smi" -L | grep -c '^GPU ')
	uuid=$("$smi" -L | sed -n 's/.*(UUID: \(GPU-[^)]*\)).*/\1/p' | head -n1)
else
	echo "nvidia-smi: not found"
	host_gpus=0
	uuid=
fi

step "unpack $pack"
t0=$(now_ms)
tar -C "$W" -xJf "$pack" || fail "unpacking $pack"
echo "unpacked in $(($(now_ms) - t0)) ms"
B=$W/gpu-check
SBXRUN=$B/bin/sbxrun
export PATH=$B/bin:$PATH
export HOME=$W/home XDG_CONFIG_HOME=$W/home/.config SBXRUN_STATE_DIR=$W/state SBXRUN_SYSTEM_CONFIG=$W/none.yaml
mkdir -p "$HOME" "$W/work"
cd "$W/work" || exit 125
"$SBXRUN" version 2>/dev/null | head -n1
LD_LIBRARY_PATH=$B/lib runc --version | head -n1

step "private containerd"
mkdir -p "$W/ctd"
# The config every private daemon of sbxrun uses (internal/ctrdconfig).
"$B/bin/ctrdconfig" "$W/ctd" >"$W/ctd/config.toml" || {
	fail "writing $W/ctd/config.toml"
	exit 1
}
t0=$(now_ms)
# In a session of its own: a Ctrl-C (or a TERM to the script's process
# group) must leave it to the cleanup, which removes the sandboxes through it.
LD_LIBRARY_PATH=$B/lib setsid containerd --config "$W/ctd/config.toml" >"$W/ctd/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 100); do
	[[ -S $W/ctd/containerd.sock ]] && break
	sleep 0.1
done
if [[ -S $W/ctd/containerd.sock ]]; then
	pass "containerd up in $(($(now_ms) - t0)) ms"
else
	fail "containerd did not start"
	tail -n 20 "$W/ctd/containerd.log"
	exit 1
fi
export SBXRUN_ADDRESS=$W/ctd/containerd.sock

step "sbxrun gpu setup"
run_sb "setup" gpu setup
if [[ $rc -eq 0 && -f /var/run/cdi/nvidia.yaml ]]; then
	pass "gpu setup in $took ms"
	cp /var/run/cdi/nvidia.yaml "$outdir/nvidia.yaml"
else
	fail "gpu setup"
fi
run_sb "status" gpu status
[[ $rc -eq 0 ]]
ok "gpu status" "gpu status"
run_sb "setup --if-stale" gpu setup --if-stale
[[ $rc -eq 0 && $out == *"up to date"* ]]
ok "setup --if-stale finds the spec fresh" "setup --if-stale"
if [[ -d /usr/local/nvidia ]]; then
	# This host keeps the driver under /usr/local/nvidia (GPU.md): what does
	# --driver-root make of it? Recorded, not judged: / is the path that works.
	run_sb "driver-root" gpu setup --driver-root /usr/local/nvidia --output "$W/driver-root.yaml"
	[[ $rc -eq 0 ]]
	ok "gpu setup --driver-root /usr/local/nvidia: $(grep -c 'hostPath:' "$W/driver-root.yaml" 2>/dev/null || echo 0) host paths" "gpu setup --driver-root"
fi
# A systemd unit or `env -i` gives a minimal PATH, without the driver's
# bin directory: the spec must not depend on it.
mkdir -m 0755 "$W/minpath"
if env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$SBXRUN" gpu setup --output "$W/minpath/nvidia.yaml" >/dev/null 2>&1; then
	pass "gpu setup under a minimal PATH"
else
	fail "gpu setup under a minimal PATH"
fi
if "$SBXRUN" nvidia-cdi-hook noop && (exec -a nvidia-cdi-hook "$SBXRUN" noop); then
	pass "sbxrun serves nvidia-cdi-hook (subcommand and argv[0])"
else
	fail "sbxrun as nvidia-cdi-hook"
fi

step "load the test image"
run_sb "load" load -i "$B/image.tar"
[[ $rc -eq 0 ]]
ok "image loaded in $took ms" "load"
IMG=localhost/sbxrun/gpu-check:1

step "GPU sandboxes"
gpu_check() { # LABEL WANT_GPUS ARGS...
	local label=$1 want=$2
	shift 2
	run_sb "$label" "$@"
	local n
	n=$(printf '%s\n' "$out" | grep -c '^GPU [0-9]')
	if [[ $rc -eq 0 && $n -eq $want ]]; then
		pass "$label: $n GPU(s) in $took ms"
	else
		fail "$label: exit $rc, $n GPU(s), want $want"
	fi
}
gpu_check "model-dev -- nvidia-smi -L" "$host_gpus" model-dev --pull never -- nvidia-smi -L
gpu_check "model-dev --gpus all" "$host_gpus" model-dev --pull never --gpus all -- nvidia-smi -L
gpu_check "--gpus all" "$host_gpus" run --pull never --gpus all "$IMG" -- nvidia-smi -L
gpu_check "--gpus 1" 1 run --pull never --gpus 1 "$IMG" -- nvidia-smi -L
gpu_check "--gpus device=0" 1 run --pull never --gpus device=0 "$IMG" -- nvidia-smi -L
if [[ -n $uuid ]]; then
	gpu_check "--gpus device=UUID" 1 run --pull never --gpus "device=$uuid" "$IMG" -- nvidia-smi -L
else
	fail "--gpus device=UUID: the host's nvidia-smi -L shows no GPU UUID to ask for"
fi
gpu_check "--device nvidia.com/gpu=0" 1 run --pull never --device nvidia.com/gpu=0 "$IMG" -- nvidia-smi -L
gpu_check "--gpus none" 0 run --pull never --gpus none "$IMG" -- sh -c 'nvidia-smi -L 2>/dev/null; true'

run_sb "minimal PATH spec" --cdi-spec-dir "$W/minpath" run --pull never --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $out == *"GPU 0"* ]]
ok "a spec made under a minimal PATH works" "a spec made under a minimal PATH: exit $rc"
# Required and unavailable: one line with the reason, exit 125, nothing made.
run_sb "too many" run --pull never --gpus $((host_gpus + 1)) "$IMG" -- true
[[ $rc -eq 125 && -n $err && $(wc -l <<<"$err") -eq 1 ]]
ok "--gpus $((host_gpus + 1)) on a $host_gpus-GPU host: exit 125, one line" "--gpus $((host_gpus + 1)): exit $rc"
run_sb "unknown device" run --pull never --gpus device=99 "$IMG" -- true
[[ $rc -eq 125 && -n $err ]]
ok "--gpus device=99: exit 125" "--gpus device=99: exit $rc"
if [[ -f $W/driver-root.yaml ]]; then
	mkdir -m 0755 "$W/dr" && cp "$W/driver-root.yaml" "$W/dr/nvidia.yaml"
	run_sb "driver-root spec" --cdi-spec-dir "$W/dr" run --pull never --gpus all "$IMG" -- nvidia-smi -L
	[[ $rc -eq 0 && $out == *"GPU 0"* ]]
	ok "a run with the --driver-root spec lists the GPU" "a run with the --driver-root spec: exit $rc"
fi

step "CUDA"
run_sb "cuda-check" run --pull never --gpus all "$IMG" -- cuda-check
[[ $rc -eq 0 && $out == *"fill/read back OK"* ]]
ok "CUDA driver API in a sandbox ($took ms)" "cuda-check"

step "what a GPU sandbox gets"
# shellcheck disable=SC2016 # expanded in the sandbox
run_sb "confinement" run --pull never --gpus all "$IMG" -- sh -c 'grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; echo "PATH=$PATH"; ls /dev | grep nvidia | tr "\n" " "; echo'
[[ $out == *"NoNewPrivs:	1"* && $out == *"Seccomp:	2"* ]]
ok "no-new-privileges and seccomp with GPUs" "confinement"
"$SBXRUN" spec --pull never --gpus all "$IMG" -- true >"$outdir/gpu-spec.json" 2>"$W/stderr"
hooks=$(grep -c '"path": ' "$outdir/gpu-spec.json")
if grep -q '"sbxrun.cdi-devices": "nvidia.com/gpu=all"' "$outdir/gpu-spec.json" && grep -q '/dev/nvidiactl' "$outdir/gpu-spec.json"; then
	pass "sbxrun spec shows the injection ($hooks hook paths, the device nodes)"
else
	fail "sbxrun spec"
fi

step "an image that sets LD_PRELOAD (CVE-2025-23266)"
PRE=localhost/sbxrun/gpu-check-preload:1
"$SBXRUN" spec --pull never --gpus all "$PRE" -- true >"$outdir/gpu-spec-preload.json" 2>"$W/stderr"
n=$(grep -c '"LD_PRELOAD=' "$outdir/gpu-spec-preload.json")
# Exactly once: in process.env; a hook's env holding it would make more.
[[ $n -eq 1 ]]
ok "LD_PRELOAD is in the workload's env only, in no hook's" "LD_PRELOAD appears $n times in the spec (want 1: process.env)"
run_sb "preload" run --pull never --gpus all "$PRE" -- sh -c 'nvidia-smi -L; cat /tmp/sbxrun-preload-marker'
[[ $rc -eq 0 && $out == *"GPU 0"* && $out == *nvidia-smi* ]]
ok "the workload loads the image's LD_PRELOAD library (the control)" "preload control: exit $rc"
if [[ -e $marker ]]; then
	fail "a host-side process loaded the image's LD_PRELOAD library: $(tr '\0' ' ' <"$marker")"
else
	pass "no host-side hook loaded the image's LD_PRELOAD library"
fi

step "timings (5 runs each, median)"
with=() without=()
for _ in 1 2 3 4 5; do
	t0=$(now_ms)
	"$SBXRUN" run --pull never --gpus all "$IMG" -- true >/dev/null 2>&1
	with+=($(($(now_ms) - t0)))
	t0=$(now_ms)
	"$SBXRUN" run --pull never --gpus none "$IMG" -- true >/dev/null 2>&1
	without+=($(($(now_ms) - t0)))
done
echo "run --rm true with --gpus all: $(printf '%s\n' "${with[@]}" | median) ms  (${with[*]})"
echo "run --rm true without GPUs:    $(printf '%s\n' "${without[@]}" | median) ms  (${without[*]})"
"$SBXRUN" --debug run --pull never --gpus all "$IMG" -- true 2>&1 | grep 'debug:' | sed 's/^/  /'

step "a spec made before a driver upgrade"
if [[ -f $spec ]]; then
	sed -i 's/^\(  *sbxrun.driver-version: \).*/\11.0.0/' "$spec"
	run_sb "stale version" run --pull never --gpus all "$IMG" -- nvidia-smi -L
	[[ $rc -eq 0 && $err == *"regenerated the CDI spec"* && $out == *"GPU 0"* ]]
	ok "a stale spec (driver version) is regenerated by the run" "stale version"
	lib=$(grep -o 'hostPath: [^ ]*libnvidia-ml.so.[0-9.]*' "$spec" | head -n1 | cut -d' ' -f2)
	if [[ -n $lib ]]; then
		sed -i "s#hostPath: $lib\$#hostPath: $lib.gone#" "$spec"
		run_sb "stale file" run --pull never --gpus all "$IMG" -- nvidia-smi -L
		[[ $rc -eq 0 && $err == *"regenerated the CDI spec"* && $out == *"GPU 0"* ]]
		ok "a stale spec (missing library) is regenerated by the run" "stale file"
	else
		fail "stale file: $spec names no libnvidia-ml.so.VERSION to make missing"
	fi
	run_sb "fresh again" gpu setup --if-stale
	[[ $out == *"up to date"* ]]
	ok "the regenerated spec is fresh" "fresh again"
else
	fail "stale specs: there is no $spec to make stale (gpu setup failed)"
fi

step "a spec gone after a reboot (/var/run is emptied at boot)"
rm -f "$spec"
# An NVIDIA spec in /etc/cdi would serve the run, which then has nothing to
# generate: read /var/run/cdi only.
dirs=()
etc_specs=$(grep -l 'nvidia.com/gpu' /etc/cdi/*.yaml /etc/cdi/*.json 2>/dev/null)
if [[ -n $etc_specs ]]; then
	echo "NVIDIA specs in /etc/cdi (${etc_specs//$'\n'/, }): the run reads /var/run/cdi only"
	dirs=(--cdi-spec-dir /var/run/cdi)
fi
run_sb "missing spec" "${dirs[@]}" run --pull never --gpus all "$IMG" -- nvidia-smi -L
[[ $rc -eq 0 && $err == *"generated the CDI spec"* && $out == *"GPU 0"* && -f $spec ]]
ok "a GPU run with no spec on the host generates it" "missing spec: exit $rc"

step "a stale spec root cannot rewrite (read-only mount)"
mkdir -m 0755 "$W/ro"
cp "$spec" "$W/ro/nvidia.yaml"
sed -i 's/^\(  *sbxrun.driver-version: \).*/\11.0.0/' "$W/ro/nvidia.yaml"
if mount --bind "$W/ro" "$W/ro" && mount -o remount,bind,ro "$W/ro"; then
	run_sb "read-only stale" --cdi-spec-dir "$W/ro" run --pull never --gpus all "$IMG" -- nvidia-smi -L
	[[ $rc -eq 0 && $err == *"generated in memory"* && $out == *"GPU 0"* ]]
	ok "the run uses a spec generated in memory" "read-only stale spec: exit $rc"
	umount "$W/ro"
else
	fail "could not make $W/ro read-only"
fi

step "OOM under --memory"
run_sb "oom" run --pull never --memory 32m "$IMG" -- sh -c 'head -c 300m /dev/zero | tail'
[[ $rc -eq 137 && $err == *"OOM-killed"* ]]
ok "OOM kill exits 137 with the report" "OOM: exit $rc"

step "left behind"
run_sb "ps" ps -a
left=$(tail -n +2 <<<"$out")
[[ $rc -eq 0 && -z $left ]]
ok "no sandbox left" "ps -a: exit $rc, sandboxes left: $left"

finished=1
echo
echo "gpu-check: $fails failure(s); log $log"
exit "$fails"
