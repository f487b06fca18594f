#!/usr/bin/env bash
# perfgate serve-bench side by side with NVIDIA AIPerf (PyPI `aiperf`, pinned below): the same
# workload against (a) a real llama.cpp server (ci/llama-server-up.sh) and (b) serve-mock at zero
# delay, then the client capacity of each against the mock. Prints markdown tables of the
# figures both tools report, with the definitions mapped (AIPerf's inter_token_latency is
# perfgate's TPOT, its request_latency perfgate's E2EL; docs/serve-bench.md, "Side by side with
# AIPerf").
#
#   benches/serve_vs_aiperf.sh [--runs N] [--concurrency 1,4] [--requests N] [--isl N] [--osl N]
#                              [--capacity-requests N] [--aiperf-capacity-requests N] [--no-capacity]
#
# The same prompts for both: token ids from `perfgate dataset token-norm-dist` (seed 0), sent as
# the completions `prompt` by both (AIPerf through its single_turn dataset's per-entry `extra`
# body), the same max_tokens and the same fields for the server's kind (llama.cpp: `ignore_eos`,
# `cache_prompt: false`, `temperature: 0`; benches/serve_vs_aiperf_common.sh, shared with
# ci/gpu/aiperf.sh, which runs the same comparison against any running server), streaming, a
# closed loop at each concurrency, the same warmup count. Token counts are the server's usage
# for both (AIPerf --use-server-token-count). Each run pairs the two tools back to back (their
# order alternates between runs); on a machine of several cores the server (or mock) gets core 1
# and the clients core 0 (taskset), so neither client's CPU use slows the server.
#
# AIPerf goes into a throwaway venv (AIPERF_VENV, default target/aiperf-venv-<version>; about 50
# packages, 1.2 GB, a minute or two to install). Results stay in target/serve-vs-aiperf/.
# Needs python3 (3.10+) with venv, and llama-server built once (ci/llama-server-up.sh --install-only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

AIPERF_VERSION=0.13.0
VENV=${AIPERF_VENV:-$ROOT/target/aiperf-venv-$AIPERF_VERSION}
WORK=$ROOT/target/serve-vs-aiperf
TOKENIZER=$ROOT/tests/fixtures/tokenizers/tiny-bpe

runs=3 levels=1,4 requests=64 isl=64 osl=128 warmup=4 cap_requests=20000 ai_cap_requests=3000 capacity=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift ;;
    --concurrency) levels=$2; shift ;;
    --requests) requests=$2; shift ;;
    --isl) isl=$2; shift ;;
    --osl) osl=$2; shift ;;
    --capacity-requests) cap_requests=$2; shift ;;
    --aiperf-capacity-requests) ai_cap_requests=$2; shift ;;
    --no-capacity) capacity=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "serve_vs_aiperf: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
  shift
done
for v in "$runs" "$requests" "$isl" "$osl" "$cap_requests" "$ai_cap_requests"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "serve_vs_aiperf: '$v' is not a positive number" >&2; exit 2; }
done
IFS=, read -r -a concurrencies <<<"$levels"

log() { echo "serve_vs_aiperf: $*" >&2; }

# --- AIPerf in its own venv ----------------------------------------------------------------------
if [ ! -x "$VENV/bin/aiperf" ] || [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("aiperf"))' 2>/dev/null)" != "$AIPERF_VERSION" ]; then
  log "installing aiperf==$AIPERF_VERSION into $VENV (log $VENV.log)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >"$VENV.log" 2>&1 || { tail -n 20 "$VENV.log" >&2; log "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "aiperf==$AIPERF_VERSION" >>"$VENV.log" 2>&1 \
    || { tail -n 30 "$VENV.log" >&2; log "pip install aiperf==$AIPERF_VERSION failed (log $VENV.log)"; exit 1; }
fi
AIPERF_PYTHON=$VENV/bin/python
AIPERF=("$VENV/bin/aiperf")

cargo build --release --bin perfgate --bin serve-mock >&2
PERFGATE=$ROOT/target/release/perfgate
MOCK=$ROOT/target/release/serve-mock

# Server on core 1, clients on core 0, where there are two cores or more.
pin_client=() pin_server=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
  pin_client=(taskset -c 0) pin_server=(taskset -c "1-$(( $(nproc) - 1 ))")
fi

rm -rf "$WORK"
mkdir -p "$WORK"
# --- the prompts, the runs: shared with ci/gpu/aiperf.sh ------------------------------------------
# shellcheck source=benches/serve_vs_aiperf_common.sh
. "$ROOT/benches/serve_vs_aiperf_common.sh"
make_prompts prompts $((requests + warmup)) "$isl" "$osl" ids

# Background processes of this script, stopped on every exit path.
mock_pid="" server_name=""
cleanup() {
  [ -z "$mock_pid" ] || { kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; }
  [ -z "$server_name" ] || ci/llama-server-down.sh --name "$server_name" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_mock() {
  local out=$WORK/mock.addr
  "${pin_server[@]}" "$MOCK" --threads 1 >"$out" 2>"$WORK/mock.log" &
  mock_pid=$!
  for _ in $(seq 50); do grep -q http= "$out" && break; sleep 0.1; done
  mock_url=http://$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$out")
  [ "$mock_url" != http:// ] || { log "serve-mock did not start"; exit 1; }
}
stop_mock() { kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; mock_pid=""; }

# $1 target name (real|mock), $2 url, $3 model, $4 server kind (serve_vs_aiperf_common.sh)
compare() {
  local target=$1 url=$2 model=$3 kind=$4
  server_kind_flags "$kind" "$osl"
  local run c dir
  for run in $(seq "$runs"); do
    for c in "${concurrencies[@]}"; do
      dir=$WORK/$target/c$c/run$run
      mkdir -p "$dir"
      log "$target concurrency $c run $run/$runs"
      if [ $((run % 2)) = 1 ]; then
        run_perfgate "$url" "$c" "$requests" "$warmup" "$dir" prompts "$model" --output-dir "$dir/perfgate-out" "${perfgate_kind_flags[@]}"
        run_aiperf "$url" "$c" "$requests" "$warmup" "$dir" prompts "$model" "${aiperf_kind_flags[@]}"
      else
        run_aiperf "$url" "$c" "$requests" "$warmup" "$dir" prompts "$model" "${aiperf_kind_flags[@]}"
        run_perfgate "$url" "$c" "$requests" "$warmup" "$dir" prompts "$model" --output-dir "$dir/perfgate-out" "${perfgate_kind_flags[@]}"
      fi
    done
  done
}

# --- (a) the real server -------------------------------------------------------------------------
server_name=serve-vs-aiperf-$$
real_url=$("${pin_server[@]}" ci/llama-server-up.sh --no-build --name "$server_name" --owner-pid $$)
compare real "$real_url" tiny llama-cpp
ci/llama-server-down.sh --name "$server_name" >/dev/null 2>&1
server_name=""

# --- (b) serve-mock at zero delay: the same workload ---------------------------------------------
# sglang's shape: token-id prompts and ignore_eos as for llama.cpp, without llama.cpp's
# Connection: close (the mock keeps connections alive) and without per-chunk usage (AIPerf does
# not ask for it either).
start_mock
compare mock "$mock_url" mock-model sglang

# --- (c) client capacity: one-token answers at zero delay, 64 in flight ---------------------------
if [ "$capacity" = 1 ]; then
  make_prompts capacity 256 "$isl" 1 ids
  server_kind_flags sglang 1
  dir=$WORK/capacity
  mkdir -p "$dir"
  TIMEFORMAT='%R %U %S'
  log "capacity: perfgate, $cap_requests requests"
  { time run_perfgate "$mock_url" 64 "$cap_requests" 0 "$dir" capacity mock-model "${perfgate_kind_flags[@]}" ; } 2>"$dir/perfgate.time"
  log "capacity: AIPerf, $ai_cap_requests requests"
  { time run_aiperf "$mock_url" 64 "$ai_cap_requests" 0 "$dir" capacity mock-model "${aiperf_kind_flags[@]}" ; } 2>"$dir/aiperf.time"
fi
stop_mock

echo "# perfgate serve-bench vs AIPerf $AIPERF_VERSION; $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# workload: ISL $isl OSL $osl token-id prompts, ignore_eos, streaming completions, $requests requests + $warmup warmup per level"
"$AIPERF_PYTHON" "$SVA_HELPER" table "$WORK"
