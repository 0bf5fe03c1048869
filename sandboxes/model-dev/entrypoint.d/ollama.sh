# shellcheck shell=bash
# Sourced by sandbox-entrypoint with the sandbox's command in "$@": when the
# command talks to Ollama (ollama run|pull|list|..., ollama-setup) and no
# server answers, start `ollama serve` for the command's lifetime, its log
# under the persisted ~/.ollama. SBXRUN_OLLAMA_AUTOSTART=0 turns this off;
# OLLAMA_START_TIMEOUT (seconds, default 30) bounds the wait.

ollama_client_command() {
	case "${1##*/}" in
	ollama)
		case "${2-}" in
		"" | serve | help | -h | --help | -v | --version) return 1 ;;
		esac
		return 0
		;;
	ollama-setup)
		case "${2-}" in
		setup | run) return 0 ;;
		esac
		return 1
		;;
	esac
	return 1
}

if [[ ${SBXRUN_OLLAMA_AUTOSTART:-1} != 0 ]] && ollama_client_command "$@" && command -v ollama >/dev/null &&
	! ollama list >/dev/null 2>&1; then
	start_service ollama "${OLLAMA_LOG_DIR:-$HOME/.ollama/logs}/server.log" ollama serve
	wait_for_service ollama "${OLLAMA_START_TIMEOUT:-30}" ollama list
fi
