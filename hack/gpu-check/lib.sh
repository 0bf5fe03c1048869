# shellcheck shell=bash
# Shared by hack/gpu-check.sh and hack/gpu-check-rootless.sh: the log,
# PASS/FAIL lines, timing, the host's CDI spec. Source it after setting
# $repo; the caller sets `set -uo pipefail`.

# start_log NAME: everything from here on also goes to NAME ($log) in $OUT
# (the device runner's output folder) or dist/gpu-check-out/ in the repo
# (git-ignored). tee ignores INT and TERM, so that a Ctrl-C still logs the
# cleanup.
start_log() {
	outdir=${OUT:-${repo:?}/dist/gpu-check-out}
	mkdir -p "$outdir"
	log=$outdir/$1
	exec > >(
		trap '' INT TERM
		exec tee "$log"
	) 2>&1
}

# The host's CDI spec, as `sbxrun gpu setup` writes it. save_spec DIR keeps
# a copy in DIR, and whether the spec and its directory existed;
# restore_spec puts back what was there (removing the directory if
# save_spec did not find it and it is empty now).
spec=/var/run/cdi/nvidia.yaml
save_spec() {
	spec_copy=$1/nvidia.yaml.orig had_spec='' had_spec_dir=''
	[[ -d ${spec%/*} ]] && had_spec_dir=1
	if [[ -e $spec ]]; then
		cp -a "$spec" "$spec_copy" || return 1
		had_spec=1
	fi
}
restore_spec() {
	if [[ -n $had_spec ]]; then
		cp -a "$spec_copy" "$spec"
	else
		rm -f "$spec"
	fi
	[[ -n $had_spec_dir ]] || rmdir "${spec%/*}" 2>/dev/null
}

fails=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
# ok PASS_MSG FAIL_MSG: reports the status of the command just run.
ok() {
	if [[ $? -eq 0 ]]; then pass "$1"; else fail "$2"; fi
}
step() { printf '\n== %s\n' "$*"; }
now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }

# capture LABEL NOTE CMD ARGS...: runs CMD ARGS (CMD runs sbxrun), keeps
# stdout in $out, stderr in $err, the exit status in $rc and the wall time
# in $took (ms), and prints them as `$ sbxrun ARGS NOTE`. $errfile is
# where stderr goes meanwhile.
capture() {
	local label=$1 note=$2 t0
	: "${errfile:?the caller sets errfile}"
	shift 2
	t0=$(now_ms)
	out=$("$@" 2>"$errfile")
	rc=$?
	took=$(($(now_ms) - t0))
	err=$(cat "$errfile")
	echo "\$ sbxrun $(printf '%q ' "${@:2}")$note"
	[[ -n $out ]] && printf '%s\n' "$out" | sed 's/^/  | /'
	[[ -n $err ]] && printf '%s\n' "$err" | sed 's/^/  ! /'
	echo "  -> exit $rc in ${took} ms ($label)"
}
