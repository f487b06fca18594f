#!/usr/bin/env bash
# A real GPU serving engine measured by perfgate (issue 19), on a GPU machine with PyTorch and
# transformers but no network: `transformers serve --continuous-batching` on the random-weight
# Llama of ci/gpu/make_model.py.
#
#   ci/gpu/serving.sh OUT_DIR
#
# Expects, beside the checkout (git-ignored): .gpu/perfgate (a release build), .gpu/whl/ (the
# wheels `transformers serve` lacks there: fastapi, uvicorn, openai and their dependencies; see
# docs/guide/gpu.md). Stages, each bounded in time and each leaving its files in OUT_DIR even
# when a later one fails:
#   sweep   the harness runs test_lists/gpu_transformers.txt (four concurrencies; NVML telemetry:
#           energy per token, clocks, power, throttling; rooflines from the detected GPU)
#   noise   one server, then `perfgate serve-bench` repeated NOISE_REPS times (same prompts) at
#           concurrency NOISE_CONC: the run-to-run series the gate's real-noise mode resamples
#   aiperf  on the same server, ci/gpu/aiperf.sh: perfgate serve-bench and NVIDIA AIPerf side by
#           side at concurrency 8 and 32 (ISL 512, OSL 128), when .gpu/aiperf-whl/ holds AIPerf's
#           wheels (AIPERF_S seconds at most)
#   power   on the same server, `perfgate sweep -p 128 512 -n 32 128 -pg 512,128 -r 3` with
#           NVML power, temperature and clocks per repetition (POWER_S seconds at most)
# STAGES picks them (default "sweep noise aiperf power"; a second machine's noise session:
# STAGES=noise).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit
OUT_DIR=${1:?usage: ci/gpu/serving.sh OUT_DIR}
mkdir -p "$OUT_DIR"
PG=${PERFGATE:-$PWD/.gpu/perfgate}
NOISE_REPS=${NOISE_REPS:-30}
NOISE_CONC=${NOISE_CONC:-32}
# Env: STAGES, TEST_LIST (the sweep's list), SWEEP_S, NOISE_S, AIPERF_S, POWER_S (seconds per
# stage), NOISE_REPS, AIPERF_RUNS (runs per level of the aiperf stage, each pairing the two
# tools back to back; default 1),
# NOISE_CONC (the noise level's concurrency, as many requests per repetition), MODELS (where the
# model is made), PERFGATE (the perfgate binary).
MODELS=${MODELS:-/tmp/models}
log() { echo "== $(date +%T) $*"; }

STAGES=" ${STAGES:-sweep noise aiperf power} "
stage() { [[ "$STAGES" == *" $1 "* ]]; }

log "install the serving wheels"
wheels=(.gpu/whl/*.whl)
if stage aiperf && compgen -G '.gpu/aiperf-whl/*.whl' >/dev/null; then
  wheels+=(.gpu/aiperf-whl/*.whl)
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "${wheels[@]}" || exit 1
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 HF_HUB_DISABLE_UPDATE_CHECK=1
command -v transformers >/dev/null || { echo "no transformers CLI on PATH" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm,clocks.max.mem \
  --format=csv > "$OUT_DIR/gpu.csv" 2>&1
python3 -m pip list 2>/dev/null > "$OUT_DIR/pip-list.txt"
hostname > "$OUT_DIR/host.txt"

log "the random-weight model"
python3 ci/gpu/make_model.py --out "$MODELS/random-llama-1b" \
  --tokenizer tests/fixtures/tokenizers/deepseek | tee "$OUT_DIR/model.json" || exit 1

if stage sweep; then
  log "sweep: the harness, four concurrencies"
  timeout "${SWEEP_S:-330}" "$PG" run --test-list "${TEST_LIST:-test_lists/gpu_transformers.txt}" \
    --models-root "$MODELS" --model-configs model_configs --output-dir "$OUT_DIR/sweep" \
    --serve-bench-cmd "$PG" \
    --dataset-cache /tmp/datasets --timeout 5 --fail-on never 2>&1 | tail -40
fi

log "one server for the noise, aiperf and power stages"
port=8123
transformers serve "$MODELS/random-llama-1b" --continuous-batching --dtype bfloat16 \
  --host 127.0.0.1 --port $port > "$OUT_DIR/noise-server.log" 2>&1 &
server=$!
for _ in $(seq 180); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
  sleep 1
done
# bench CONCURRENCY PROMPTS [flags]
bench() {
  local c=$1 n=$2
  shift 2
  "$PG" serve-bench --url "http://127.0.0.1:$port" --endpoint completions \
    --model "$MODELS/random-llama-1b" --tokenizer "$MODELS/random-llama-1b" \
    --server-kind transformers --isl 128 --osl 32 --concurrency "$c" --num-prompts "$n" \
    --ignore-eos --no-progress "$@"
}
bench 8 8 > "$OUT_DIR/noise-warmup.txt" 2>&1
if stage noise; then
  log "noise: up to $NOISE_REPS repetitions of one level"
  end=$((SECONDS + ${NOISE_S:-200}))
  for i in $(seq "$NOISE_REPS"); do
    [ $SECONDS -lt $end ] || break
    bench "$NOISE_CONC" "$NOISE_CONC" --save-result "$OUT_DIR/noise.jsonl" > "$OUT_DIR/noise-$i.txt" 2>&1 \
      || echo "repetition $i failed" >&2
  done
fi

if stage aiperf && [ -d .gpu/aiperf-whl ]; then
  log "aiperf: perfgate and AIPerf side by side on the same server"
  AIPERF_PY=python3 PERFGATE="$PG" timeout "${AIPERF_S:-200}" ci/gpu/aiperf.sh \
    --url "http://127.0.0.1:$port" --model "$MODELS/random-llama-1b" \
    --tokenizer "$MODELS/random-llama-1b" --server-kind transformers --out "$OUT_DIR/aiperf" \
    --runs "${AIPERF_RUNS:-1}" --timeout 90 2>&1 | tail -30
fi

if stage power; then
  log "power sweep: prompt/generation matrix, NVML sampled per repetition"
  timeout "${POWER_S:-120}" "$PG" sweep --url "http://127.0.0.1:$port" --endpoint completions \
    --model "$MODELS/random-llama-1b" --tokenizer "$MODELS/random-llama-1b" \
    --server-kind transformers -p 128 512 -n 32 128 --pg 512,128 -r 3 --power nvml \
    --output-dir "$OUT_DIR/power-sweep" -o md 2>&1 | tee "$OUT_DIR/power-sweep.md" | tail -20
fi
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
log "done"
