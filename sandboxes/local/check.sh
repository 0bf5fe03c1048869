#!/usr/bin/env bash
# shellcheck disable=SC2016 # the sandbox commands are expanded in the sandbox
# check.sh: runs the sandboxes through sbxrun as their test: a version check of
# every promised tool, a GPU-less PyTorch smoke run and Ollama autostart for
# model-dev, a headless browser page load for test. Images built by CI
# (SANDBOX_BUILD=docker in /etc/sbxrun-sandbox) must have everything;
# local Debian builds are checked for what Debian packages (see the README).
#
#   sandboxes/local/check.sh [--config FILE] [--pull POLICY] NAME...
#
# --config is passed to sbxrun (CI points the profiles at the digests it just
# pushed); --pull defaults to never. $SBXRUN is the sbxrun binary.
set -euo pipefail

sbxrun=${SBXRUN:-sbxrun}
global=()
pull=never
names=()
while (($# > 0)); do
	case $1 in
	--config) global+=(--config "${2:?--config needs a file}"); shift 2 ;;
	--pull) pull=${2:?--pull needs missing, always or never}; shift 2 ;;
	-*) echo "check.sh: unknown option $1" >&2; exit 2 ;;
	*) names+=("$1"); shift ;;
	esac
done
((${#names[@]} > 0)) || { echo "usage: sandboxes/local/check.sh [--config FILE] [--pull POLICY] NAME..." >&2; exit 2; }

# The runs happen in a scratch directory: make paths given relative absolute.
if [[ $sbxrun == */* ]]; then
	sbxrun=$(cd "$(dirname "$sbxrun")" && pwd)/$(basename "$sbxrun")
fi
for i in "${!global[@]}"; do
	if [[ ${global[i]} == --config && ${global[i + 1]} != /* ]]; then
		global[i + 1]=$PWD/${global[i + 1]}
	fi
done

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
chmod 0777 "$work" # the sandbox user (uid 1000) writes here
cd "$work"

failures=0
# sandbox NAME [RUN FLAGS...] -- CMD...: one sbxrun run, echoed.
sandbox() {
	local name=$1
	shift
	"$sbxrun" "${global[@]}" "$name" --pull "$pull" "$@"
}
# expect NAME WANT [RUN FLAGS...] -- CMD...: the run's output must contain WANT.
expect() {
	local name=$1 want=$2 out line
	shift 2
	line="sbxrun $name $*"
	line=${line//$'\n'/ }
	echo "+ ${line:0:100}" >&2
	if out=$(sandbox "$name" "$@" 2>&1) && [[ $out == *"$want"* ]]; then
		printf '  %s\n' "${out//$'\n'/$'\n'  }"
	else
		printf 'check.sh: FAIL: sbxrun %s %s: want output containing "%s", got:\n%s\n' "$name" "$*" "$want" "$out" >&2
		failures=$((failures + 1))
	fi
}

# The tool version checks run in one sandbox each: one line per tool.
base_tools='set -e
for c in "git --version" "git lfs version" "python3 --version" "node --version" "npm --version" \
	"tsc --version" "eslint --version" "rg --version" "fd --version" "jq --version" "htop --version" "tmux -V" \
	"vim --version" "black --version" "isort --version-number" "mypy --version" "pytest --version" "poetry --version" \
	"gcc --version" "make --version" "curl --version" "ssh -V" "tini --version"; do
	printf "%-20s %s\n" "${c%% *}" "$($c 2>&1 | grep -m1 .)"
done
. /etc/sbxrun-sandbox
if [ "$SANDBOX_BUILD" = docker ]; then
	for c in "prettier --version" "uv --version"; do printf "%-20s %s\n" "${c%% *}" "$($c 2>&1 | head -n1)"; done
	python3 -c "import sys; assert sys.version_info[:2] == (3, 12), sys.version"
fi
python3 -m venv "$HOME/venv-check" && rm -rf "$HOME/venv-check"
echo "user $(id -u):$(id -g) in $(pwd), HOME=$HOME, PID 1 $(cat /proc/1/comm), $SANDBOX $SANDBOX_VERSION ($SANDBOX_BUILD)"'

for name in "${names[@]}"; do
	echo "== $name" >&2
	case $name in
	base)
		expect base "git version" -- git --version
		expect base "user 1000:1000 in /workspace, HOME=/home/dev, PID 1 tini, base" -- sh -c "$base_tools"
		;;
	test)
		expect test "pytest" -- pytest --version
		expect test "user 1000:1000 in /workspace/tests, HOME=/home/dev, PID 1 tini, test" -- sh -c "$base_tools"
		expect test "xdist cov selenium" -- python3 -c 'import xdist, pytest_cov, selenium; print("xdist cov selenium")'
		expect test "X server on :99" -- sh -c 'test -S /tmp/.X11-unix/X99 && echo "X server on $DISPLAY"'
		# A headless page load in each browser.
		expect test "chromium: loaded, firefox: loaded" -- sh -c '
			. /etc/sbxrun-sandbox
			page="data:text/html,<title>loaded</title>"
			if [ "$SANDBOX_BUILD" = docker ]; then
				python3 - "$page" <<PY
import sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    out = []
    for kind in (p.chromium, p.firefox):
        browser = kind.launch()
        page = browser.new_page()
        page.goto(sys.argv[1])
        out.append(f"{kind.name}: {page.title()}")
        browser.close()
    print(", ".join(out))
PY
			else
				c=$(chromium --headless --no-sandbox --disable-gpu --dump-dom "$page" 2>/dev/null | sed -n "s:.*<title>\(.*\)</title>.*:\1:p")
				cd "$(mktemp -d)" && HOME=$PWD timeout 120 firefox-esr --headless --screenshot "$page" >/dev/null 2>&1
				f=$(test -s screenshot.png && echo loaded)
				echo "chromium: $c, firefox: $f"
			fi'
		;;
	model-dev)
		expect model-dev "user 1000:1000 in /workspace/models, HOME=/home/dev, PID 1 tini, model-dev" --gpus none -- sh -c "$base_tools"
		expect model-dev "cuda available: False" --gpus none -- python3 -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__, "cuda available:", torch.cuda.is_available())'
		expect model-dev "samples_per_second" --gpus none -- model-test bench mlp 8 3
		expect model-dev "ollama ok" --gpus none -- sh -c '
			. /etc/sbxrun-sandbox
			[ "$SANDBOX_BUILD" = docker ] || { echo "ollama ok (not in local builds)"; exit 0; }
			python3 -c "import transformers, datasets, accelerate, tensorboard; print(transformers.__version__, datasets.__version__, accelerate.__version__, tensorboard.__version__)"
			ollama --version 2>&1 | grep -m1 version
			sandbox-entrypoint ollama list && test -s "$HOME/.ollama/logs/server.log" && echo "ollama ok"'
		;;
	*)
		echo "check.sh: unknown sandbox \"$name\"" >&2
		exit 2
		;;
	esac
done
if ((failures > 0)); then
	echo "check.sh: $failures check(s) failed" >&2
	exit 1
fi
echo "check.sh: all checks passed" >&2
