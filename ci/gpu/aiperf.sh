#!/usr/bin/env bash
# perfgate serve-bench and NVIDIA AIPerf side by side against a server that is already running
# (on the GPU machine: `transformers serve --continuous-batching`, as ci/gpu/serving.sh starts
# it), with the agreement table of benches/serve_vs_aiperf.sh (docs/serve-bench.md, "Side by
# side with AIPerf").
#
#   ci/gpu/aiperf.sh --url URL --model MODEL --tokenizer DIR --server-kind KIND --out DIR
#                    [--concurrency 8,32] [--requests N] [--isl 512] [--osl 128] [--warmup 4]
#                    [--runs 1] [--timeout 300]
#
#   --url          the server's base URL (http://127.0.0.1:8123)
#   --model        the model name the server wants in requests (transformers serve: the path
#                  it was started with)
#   --tokenizer    a folder holding the server's tokenizer.json (the model folder)
#   --server-kind  llama-cpp, sglang or transformers: the request fields each tool sends
#                  (benches/serve_vs_aiperf_common.sh, the one place they are listed)
#   --out          results: prompts, CONCURRENCY/run folders of both tools, table.md
#   --concurrency  closed-loop levels, comma-separated (default 8,32)
#   --requests     requests per level (default twice the level's concurrency)
#   --isl, --osl   prompt and output tokens, fixed (defaults 512, 128)
#   --warmup       warmup requests before each tool's measured requests (default 4; transformers
#                  serve starts its continuous-batching manager on the first request)
#   --runs         runs per level, each pairing the two tools back to back, their order
#                  alternating (default 1)
#   --timeout      seconds one tool's run at one level may take (default 300)
#
# Both tools get the same prompts: `perfgate dataset token-norm-dist` (seed 0) with the
# tokenizer; AIPerf reads them as its single_turn dataset (token ids, or for a server that takes
# only text such as transformers serve, the ids decoded exactly as perfgate decodes them).
# Token counts are the server's usage for both. The clients are not pinned (a GPU machine has
# cores to spare).
#
# Env: PERFGATE (the perfgate binary; default .gpu/perfgate, else target/release/perfgate),
# AIPERF_PY (a Python that imports aiperf and tokenizers; default: `aiperf` on PATH, and
# python3 for the prompts). Exit status 0 when every run of both tools completed, 1 otherwise
# (the table then shows the runs that did).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD

url="" model="" tokenizer="" kind="" out="" levels=8,32 requests="" isl=512 osl=128 warmup=4 runs=1 timeout_s=300
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || case "$1" in -h|--help) ;; *) echo "ci/gpu/aiperf.sh: $1 needs a value (--help)" >&2; exit 2 ;; esac
  case "$1" in
    --url) url=$2; shift ;;
    --model) model=$2; shift ;;
    --tokenizer) tokenizer=$2; shift ;;
    --server-kind) kind=$2; shift ;;
    --out) out=$2; shift ;;
    --concurrency) levels=$2; shift ;;
    --requests) requests=$2; shift ;;
    --isl) isl=$2; shift ;;
    --osl) osl=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --runs) runs=$2; shift ;;
    --timeout) timeout_s=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "ci/gpu/aiperf.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
  shift
done
for name in url model tokenizer kind out; do
  [ -n "${!name}" ] || { echo "ci/gpu/aiperf.sh: --${name/kind/server-kind} is required (--help)" >&2; exit 2; }
done
IFS=, read -r -a concurrencies <<<"$levels"
for v in "${concurrencies[@]}" $requests "$isl" "$osl" "$runs" "$timeout_s"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "ci/gpu/aiperf.sh: '$v' is not a positive number" >&2; exit 2; }
done
[[ "$warmup" =~ ^[0-9]+$ ]] || { echo "ci/gpu/aiperf.sh: --warmup '$warmup' is not a number" >&2; exit 2; }
[ -f "$tokenizer/tokenizer.json" ] || { echo "ci/gpu/aiperf.sh: $tokenizer/tokenizer.json does not exist" >&2; exit 2; }

log() { echo "== $(date +%T) aiperf.sh: $*" >&2; }

if [ -n "${PERFGATE:-}" ]; then
  :
elif [ -x .gpu/perfgate ]; then
  PERFGATE=$ROOT/.gpu/perfgate
else
  PERFGATE=$ROOT/target/release/perfgate
fi
[ -x "$PERFGATE" ] || { log "no perfgate binary at $PERFGATE (set PERFGATE)"; exit 2; }
if [ -n "${AIPERF_PY:-}" ]; then
  AIPERF=("$AIPERF_PY" -m aiperf)
  AIPERF_PYTHON=$AIPERF_PY
else
  command -v aiperf >/dev/null || { log "no aiperf on PATH (set AIPERF_PY to a Python that imports it)"; exit 2; }
  AIPERF=(aiperf)
  AIPERF_PYTHON=python3
fi
# AIPerf 0.13.0 in Hugging Face offline mode (HF_HUB_OFFLINE=1, as ci/gpu/serving.sh sets for
# the server) looks even a local tokenizer folder up in the Hub cache and fails ("Repo id must
# be in the form 'repo_name'"); online it loads a local folder without asking the Hub.
unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE
export HF_HUB_DISABLE_UPDATE_CHECK=1
aiperf_version=$("$AIPERF_PYTHON" -c 'import importlib.metadata as m; print(m.version("aiperf"))' 2>/dev/null) \
  || { log "$AIPERF_PYTHON cannot find aiperf's metadata"; exit 2; }

mkdir -p "$out"
WORK=$(cd "$out" && pwd)
TOKENIZER=$(cd "$tokenizer" && pwd)
TOOL_TIMEOUT=$timeout_s
pin_client=()
# shellcheck source=benches/serve_vs_aiperf_common.sh
. "$ROOT/benches/serve_vs_aiperf_common.sh"
server_kind_flags "$kind" "$osl" || exit 2

most=0
for c in "${concurrencies[@]}"; do
  n=${requests:-$((2 * c))}
  [ "$n" -le "$most" ] || most=$n
done
log "prompts: $((most + warmup)) of ISL $isl, OSL $osl ($prompt_mode) with $TOKENIZER"
make_prompts prompts $((most + warmup)) "$isl" "$osl" "$prompt_mode" || exit 1

failed=0
target=$kind
for run in $(seq "$runs"); do
  for c in "${concurrencies[@]}"; do
    n=${requests:-$((2 * c))}
    dir=$WORK/$target/c$c/run$run
    rm -rf "$dir"
    mkdir -p "$dir"
    log "concurrency $c, $n requests, run $run/$runs"
    pg() {
      run_perfgate "$url" "$c" "$n" "$warmup" "$dir" prompts "$model" --output-dir "$dir/perfgate-out" \
        "${perfgate_kind_flags[@]}" || failed=1
    }
    ai() { run_aiperf "$url" "$c" "$n" "$warmup" "$dir" prompts "$model" "${aiperf_kind_flags[@]}" || failed=1; }
    if [ $((run % 2)) = 1 ]; then pg; ai; else ai; pg; fi
  done
done

{
  echo "# perfgate serve-bench vs AIPerf $aiperf_version against $url ($kind, model $model); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# workload: ISL $isl OSL $osl $prompt_mode prompts, OSL forced, streaming completions, $warmup warmup + ${requests:-2x concurrency} requests per level, $runs run(s)"
  "$AIPERF_PYTHON" "$SVA_HELPER" table "$WORK" "$target=$kind server at $url"
} >"$WORK/table.md"
cat "$WORK/table.md"
[ "$failed" = 0 ] || log "some runs failed: their logs are in $WORK/$target/"
exit "$failed"
