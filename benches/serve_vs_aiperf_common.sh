# shellcheck shell=bash disable=SC2034,SC2154  # sets variables its callers read, reads ones they set
# Sourced by benches/serve_vs_aiperf.sh and ci/gpu/aiperf.sh: what perfgate serve-bench and
# NVIDIA AIPerf are given so that both send the same requests, and one run of each.
#
# The caller sets:
#   PERFGATE      the perfgate binary
#   AIPERF        array: the command that runs AIPerf (its `aiperf` script, or PYTHON -m aiperf)
#   AIPERF_PYTHON a Python with `tokenizers` (AIPerf's own has it) for serve_vs_aiperf.py
#   WORK          the folder for prompts and results
#   TOKENIZER     a folder holding the server's tokenizer.json
#   pin_client    array, may be empty: a prefix pinning the clients (taskset)
#   TOOL_TIMEOUT  seconds one tool's run may take (empty: no bound)
# and a function `log`.

SVA_HELPER=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/serve_vs_aiperf.py

# The request shape of each server kind, for both tools (perfgate's side: src/serve/profile.rs,
# docs/serve-bench.md "Endpoints and server kinds"). $1 = kind, $2 = output length. Sets
# prompt_mode (ids: token ids as the completions prompt; text: the ids decoded, for servers that
# take only strings), perfgate_kind_flags and aiperf_kind_flags.
server_kind_flags() {
  local kind=$1 osl=$2
  case "$kind" in
    llama-cpp)
      prompt_mode=ids
      perfgate_kind_flags=(--server-kind llama-cpp)
      # llama-server closes the connection after every stream although it says keep-alive:
      # reusing it races the close (AIPerf: "Cannot write to closing transport", 2 of 64
      # requests at concurrency 4). perfgate sends Connection: close to llama.cpp; AIPerf's
      # equivalent is a new connection per request.
      aiperf_kind_flags=(--extra-inputs ignore_eos:true --extra-inputs cache_prompt:false
        --extra-inputs temperature:0 --connection-reuse-strategy=never)
      ;;
    sglang)
      prompt_mode=ids
      perfgate_kind_flags=(--server-kind sglang)
      aiperf_kind_flags=(--extra-inputs ignore_eos:true --extra-inputs "min_tokens:$osl"
        --extra-inputs temperature:0)
      ;;
    transformers)
      # transformers serve answers 422 to any field outside OpenAI's completion parameters
      # (ignore_eos, cache_prompt, min_tokens), 400 to a prompt of token ids, and forces the
      # output length through `generation_config`, a JSON object inside a JSON string. AIPerf's
      # --extra-inputs KEY:VALUE splits on commas, so the field goes as one JSON object (a value
      # starting with `{` is parsed as JSON; its string values stay strings).
      prompt_mode=text
      perfgate_kind_flags=(--server-kind transformers --tokenizer "$TOKENIZER")
      local gc="{\\\"min_new_tokens\\\":$osl,\\\"max_new_tokens\\\":$osl,\\\"do_sample\\\":false}"
      aiperf_kind_flags=(--extra-inputs "{\"generation_config\": \"$gc\"}" --extra-inputs temperature:0)
      ;;
    *)
      log "server kind '$kind' has no request shape for both tools here (llama-cpp, sglang, transformers; add it in ${BASH_SOURCE[0]})"
      return 2
      ;;
  esac
}

# $1 = name, $2 = count, $3 = input length, $4 = output length, $5 = prompt mode (ids|text).
# Writes $WORK/NAME.jsonl (perfgate's) and $WORK/NAME-aiperf.jsonl (AIPerf's single_turn).
make_prompts() {
  local name=$1 count=$2 isl=$3 osl=$4 mode=$5
  "$PERFGATE" dataset --tokenizer "$TOKENIZER" --random-seed 0 --stdout token-norm-dist \
    --num-requests "$count" --input-mean "$isl" --input-stdev 0 --output-mean "$osl" --output-stdev 0 \
    >"$WORK/$name.jsonl" || { log "perfgate dataset failed"; return 1; }
  "$AIPERF_PYTHON" "$SVA_HELPER" prompts "$WORK/$name.jsonl" "$TOKENIZER/tokenizer.json" \
    "$WORK/$name-aiperf.jsonl" "$mode"
}

_sva_bounded() {
  if [ -n "${TOOL_TIMEOUT:-}" ]; then
    # timeout signals its whole process group: AIPerf's worker processes too.
    timeout --kill-after=15 "$TOOL_TIMEOUT" "$@"
  else
    "$@"
  fi
}

# $1 url, $2 concurrency, $3 requests, $4 warmup, $5 output folder, $6 prompts name, $7 model,
# $8.. extra perfgate flags. Writes DIR/perfgate.jsonl (--save-result) and DIR/perfgate.log.
run_perfgate() {
  local url=$1 c=$2 n=$3 w=$4 dir=$5 name=$6 model=$7 rc=0
  shift 7
  _sva_bounded "${pin_client[@]}" "$PERFGATE" serve-bench --url "$url" --model "$model" \
    --dataset "$WORK/$name.jsonl" --concurrency "$c" --num-prompts "$n" --warmup "$w" \
    --ignore-eos --no-progress --save-result "$dir/perfgate.jsonl" "$@" >"$dir/perfgate.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 20 "$dir/perfgate.log" >&2
    log "perfgate serve-bench failed with status $rc (log $dir/perfgate.log)"
    return 1
  fi
}

# $1 url, $2 concurrency, $3 requests, $4 warmup, $5 output folder, $6 prompts name, $7 model,
# $8.. extra AIPerf flags. Writes DIR/aiperf/ (its artifacts) and DIR/aiperf.log.
run_aiperf() {
  local url=$1 c=$2 n=$3 w=$4 dir=$5 name=$6 model=$7 rc=0
  shift 7
  local args=(profile --model "$model" --url "$url" --endpoint-type completions --streaming
    --input-file "$WORK/$name-aiperf.jsonl" --custom-dataset-type single_turn
    --dataset-sampling-strategy sequential --concurrency "$c" --request-count "$n"
    --use-server-token-count --tokenizer "$TOKENIZER" --random-seed 0 --ui-type none
    --no-server-metrics --no-gpu-telemetry --output-artifact-dir "$dir/aiperf")
  [ "$w" = 0 ] || args+=(--warmup-request-count "$w")
  args+=("$@")
  _sva_bounded "${pin_client[@]}" "${AIPERF[@]}" "${args[@]}" >"$dir/aiperf.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 30 "$dir/aiperf.log" >&2
    log "aiperf failed with status $rc (log $dir/aiperf.log)"
    return 1
  fi
}
