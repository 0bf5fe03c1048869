# shellcheck shell=bash
# Shared by hack/gpu-check.sh and hack/gpu-check-rootless.sh: the log,
# PASS/FAIL lines, timing. Source it; the caller sets `set -uo pipefail`.

# start_log NAME: everything from here on also goes to NAME in $OUT (the
# device runner's output folder) or the current directory ($log).
start_log() {
	outdir=${OUT:-$PWD}
	mkdir -p "$outdir"
	log=$outdir/$1
	exec > >(tee "$log") 2>&1
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
