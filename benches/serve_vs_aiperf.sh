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
# body), the same max_tokens, `ignore_eos`, `cache_prompt: false`, `temperature: 0`, streaming,
# a closed loop at each concurrency, the same warmup count. Token counts are the server's usage
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
PY=$VENV/bin/python
HELPER=$ROOT/benches/serve_vs_aiperf.py

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
# --- the prompts ---------------------------------------------------------------------------------
make_prompts() { # $1 = name, $2 = count, $3 = output length
  "$PERFGATE" dataset --tokenizer "$TOKENIZER" --random-seed 0 --stdout token-norm-dist \
    --num-requests "$2" --input-mean "$isl" --input-stdev 0 --output-mean "$3" --output-stdev 0 \
    >"$WORK/$1.jsonl"
  "$PY" "$HELPER" prompts "$WORK/$1.jsonl" "$TOKENIZER/tokenizer.json" "$WORK/$1-aiperf.jsonl"
}
make_prompts prompts $((requests + warmup)) "$osl"

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

# $1 url, $2 concurrency, $3 requests, $4 warmup, $5 output folder, $6 prompts name, $7.. extra
# perfgate flags
run_perfgate() {
  local url=$1 c=$2 n=$3 w=$4 dir=$5 name=$6; shift 6
  "${pin_client[@]}" "$PERFGATE" serve-bench --url "$url" --dataset "$WORK/$name.jsonl" \
    --concurrency "$c" --num-prompts "$n" --warmup "$w" --ignore-eos --no-progress \
    --save-result "$dir/perfgate.jsonl" "$@" >"$dir/perfgate.log" 2>&1 \
    || { tail -n 20 "$dir/perfgate.log" >&2; log "perfgate serve-bench failed (log $dir/perfgate.log)"; exit 1; }
}
# $1 url, $2 concurrency, $3 requests, $4 warmup, $5 output folder, $6 prompts name, $7 model,
# $8.. extra AIPerf flags
run_aiperf() {
  local url=$1 c=$2 n=$3 w=$4 dir=$5 name=$6 model=$7; shift 7
  local args=(profile --model "$model" --url "$url" --endpoint-type completions --streaming
    --input-file "$WORK/$name-aiperf.jsonl" --custom-dataset-type single_turn
    --dataset-sampling-strategy sequential --concurrency "$c" --request-count "$n"
    --extra-inputs ignore_eos:true --extra-inputs cache_prompt:false --extra-inputs temperature:0
    --use-server-token-count --tokenizer "$TOKENIZER" --random-seed 0 --ui-type none
    --no-server-metrics --no-gpu-telemetry --output-artifact-dir "$dir/aiperf")
  [ "$w" = 0 ] || args+=(--warmup-request-count "$w")
  args+=("$@")
  "${pin_client[@]}" "$VENV/bin/aiperf" "${args[@]}" >"$dir/aiperf.log" 2>&1 \
    || { tail -n 30 "$dir/aiperf.log" >&2; log "aiperf failed (log $dir/aiperf.log)"; exit 1; }
}

# $1 target name (real|mock), $2 url, $3 model, $4 extra AIPerf flags (one word or ""), $5..
# extra perfgate flags
compare() {
  local target=$1 url=$2 model=$3 ai_extra=()
  [ -z "$4" ] || read -r -a ai_extra <<<"$4"
  shift 4
  local run c dir
  for run in $(seq "$runs"); do
    for c in "${concurrencies[@]}"; do
      dir=$WORK/$target/c$c/run$run
      mkdir -p "$dir"
      log "$target concurrency $c run $run/$runs"
      if [ $((run % 2)) = 1 ]; then
        run_perfgate "$url" "$c" "$requests" "$warmup" "$dir" prompts --output-dir "$dir/perfgate-out" "$@"
        run_aiperf "$url" "$c" "$requests" "$warmup" "$dir" prompts "$model" "${ai_extra[@]}"
      else
        run_aiperf "$url" "$c" "$requests" "$warmup" "$dir" prompts "$model" "${ai_extra[@]}"
        run_perfgate "$url" "$c" "$requests" "$warmup" "$dir" prompts --output-dir "$dir/perfgate-out" "$@"
      fi
    done
  done
}

# --- (a) the real server -------------------------------------------------------------------------
server_name=serve-vs-aiperf-$$
real_url=$("${pin_server[@]}" ci/llama-server-up.sh --no-build --name "$server_name" --owner-pid $$)
# llama-server closes the connection after every stream although it says keep-alive: reusing it
# races the close (AIPerf: "Cannot write to closing transport", 2 of 64 requests at
# concurrency 4 here). perfgate sends Connection: close to llama.cpp; AIPerf's equivalent is a
# new connection per request.
compare real "$real_url" tiny "--connection-reuse-strategy=never"
ci/llama-server-down.sh --name "$server_name" >/dev/null 2>&1
server_name=""

# --- (b) serve-mock at zero delay: the same workload ---------------------------------------------
# --server-kind sglang: token-id prompts and ignore_eos as for llama.cpp, without llama.cpp's
# Connection: close (the mock keeps connections alive) and without per-chunk usage (AIPerf does
# not ask for it either).
start_mock
compare mock "$mock_url" mock-model "" --server-kind sglang

# --- (c) client capacity: one-token answers at zero delay, 64 in flight ---------------------------
if [ "$capacity" = 1 ]; then
  make_prompts capacity 256 1
  dir=$WORK/capacity
  mkdir -p "$dir"
  TIMEFORMAT='%R %U %S'
  log "capacity: perfgate, $cap_requests requests"
  { time run_perfgate "$mock_url" 64 "$cap_requests" 0 "$dir" capacity --server-kind sglang ; } 2>"$dir/perfgate.time"
  log "capacity: AIPerf, $ai_cap_requests requests"
  { time run_aiperf "$mock_url" 64 "$ai_cap_requests" 0 "$dir" capacity mock-model ; } 2>"$dir/aiperf.time"
fi
stop_mock

echo "# perfgate serve-bench vs AIPerf $AIPERF_VERSION; $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# workload: ISL $isl OSL $osl token-id prompts, ignore_eos, streaming completions, $requests requests + $warmup warmup per level"
"$PY" "$HELPER" table "$WORK"
