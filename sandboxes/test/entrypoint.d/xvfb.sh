# shellcheck shell=bash
# Sourced by sandbox-entrypoint: when DISPLAY names a local display (the test
# profile sets :99) and no X server listens there, start Xvfb on it for the
# command's lifetime, so headed browsers and GUI tests work. SBXRUN_XVFB=0
# turns this off; XVFB_SCREEN sets the screen (default 1920x1080x24).

if [[ ${SBXRUN_XVFB:-1} != 0 && ${DISPLAY-} =~ ^:([0-9]+)(\.[0-9]+)?$ ]]; then
	xvfb_display=${BASH_REMATCH[1]}
	if [[ ! -S /tmp/.X11-unix/X$xvfb_display ]]; then
		start_service xvfb "${TMPDIR:-/tmp}/xvfb-$xvfb_display.log" \
			Xvfb ":$xvfb_display" -screen 0 "${XVFB_SCREEN:-1920x1080x24}" -nolisten tcp
		wait_for_service xvfb 10 test -S "/tmp/.X11-unix/X$xvfb_display"
	fi
fi
