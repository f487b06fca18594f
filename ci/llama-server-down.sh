#!/usr/bin/env bash
# Stops a server that ci/llama-server-up.sh started: reads the pid from the state file, checks
# that /proc/PID/comm still names llama-server (a zombie counts as exited, a reused pid is left
# alone), sends SIGTERM, waits up to 10 s, then SIGKILL; removes the state file. Idempotent: no
# state file, or a server already gone, is success. A watchdog (--owner-pid) exits by itself once
# the server is gone.
#
#   ci/llama-server-down.sh [--name NAME]    the server started with --name NAME (default: default)
#   ci/llama-server-down.sh --all            every server with a state file in the state folder
#
# Env: LLAMA_SERVER_STATE_DIR (default target/llama-server/ in the repository), as for up.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE_DIR=${LLAMA_SERVER_STATE_DIR:-$ROOT/target/llama-server}
PYTHON=${PYTHON:-python3}

die() { echo "llama-server-down: error: $*" >&2; exit 1; }
log() { echo "llama-server-down: $*" >&2; }

names=() all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --name) names+=("${2:-}"); shift ;;
    --all) all=1 ;;
    *) echo "usage: $0 [--name NAME | --all]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$all" = 1 ]; then
  [ ${#names[@]} = 0 ] || { echo "usage: $0 [--name NAME | --all]" >&2; exit 2; }
  for f in "$STATE_DIR"/*.json; do
    [ -e "$f" ] && names+=("$(basename "$f" .json)")
  done
elif [ ${#names[@]} = 0 ]; then
  names=(default)
fi

# True when $1 is a live (not zombie) llama-server process.
is_server() {
  [[ "$1" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = llama-server ] || return 1
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

stop() {
  local name=$1 state pid i
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "--name must be letters, digits, '.', '_' or '-', got '$name'"
  state=$STATE_DIR/$name.json
  if [ ! -e "$state" ]; then
    log "'$name' is not up (no $state)"
    return 0
  fi
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (needed to read $state)"
  pid=$("$PYTHON" -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["pid"]))' "$state" 2>/dev/null) \
    || die "$state: unreadable or has no integer \"pid\"; stop the server by hand and delete the file"
  if is_server "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      is_server "$pid" || break
      sleep 0.1
    done
    if is_server "$pid"; then
      log "'$name' (pid $pid) ignored SIGTERM for 10 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        is_server "$pid" || break
        sleep 0.1
      done
      is_server "$pid" && die "'$name' (pid $pid) survived SIGKILL"
    fi
    log "stopped '$name' (pid $pid)"
  else
    log "'$name' (pid $pid) had already exited"
  fi
  rm -f "$state"
}

for n in "${names[@]}"; do stop "$n"; done
