#!/usr/bin/env bash
# perfgate dataset vs upstream prepare_dataset.py on the same job, side by side.
#
#   benches/dataset_vs_upstream.sh [UPSTREAM_CPP_DIR]
#
# UPSTREAM_CPP_DIR is TensorRT-LLM's benchmarks/cpp directory (prepare_dataset.py + utils/), from
# a checkout; or set TRTLLM_GIT_DIR to a bare git directory of TensorRT-LLM (such as a fetched
# mirror) and the two paths are extracted from it into $WORK at run time. Upstream code is never
# copied into this repository. Without either, only our side runs and the script says so.
#
# Environment (defaults):
#   TOKENIZER  tests/fixtures/tokenizers/deepseek   the tokenizer directory both sides use
#   PD_VENV    /tmp/pd-venv      throwaway venv for upstream's Python deps (created if missing)
#   WORK       /tmp/pd-bench     scratch directory for outputs
#   RUNS       5                 timed runs of our side (the median is reported)
#   NUM_REQUESTS 20000, INPUT_MEAN 1024, INPUT_STDEV 128, OUTPUT_MEAN 256, OUTPUT_STDEV 64
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOKENIZER=${TOKENIZER:-$REPO/tests/fixtures/tokenizers/deepseek}
PD_VENV=${PD_VENV:-/tmp/pd-venv}
WORK=${WORK:-/tmp/pd-bench}
RUNS=${RUNS:-5}
JOB=(token-norm-dist
  --num-requests "${NUM_REQUESTS:-20000}"
  --input-mean "${INPUT_MEAN:-1024}" --input-stdev "${INPUT_STDEV:-128}"
  --output-mean "${OUTPUT_MEAN:-256}" --output-stdev "${OUTPUT_STDEV:-64}")

case "$WORK" in "$REPO"|"$REPO"/*) echo "WORK must be outside the repository" >&2; exit 2;; esac
case "$PD_VENV" in "$REPO"|"$REPO"/*) echo "PD_VENV must be outside the repository" >&2; exit 2;; esac
mkdir -p "$WORK"

now_ns() { date +%s%N; }
seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mb_per_s() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.0f", b / 1e6 / (ns / 1e9) }'; }

# --- upstream sources ---------------------------------------------------------------------------
UPSTREAM=${1:-${UPSTREAM_CPP_DIR:-}}
if [[ -z "$UPSTREAM" && -n "${TRTLLM_GIT_DIR:-}" ]]; then
  rm -rf "$WORK/upstream"
  mkdir -p "$WORK/upstream"
  git --git-dir="$TRTLLM_GIT_DIR" archive HEAD benchmarks/cpp/prepare_dataset.py benchmarks/cpp/utils \
    | tar -x -C "$WORK/upstream"
  UPSTREAM=$WORK/upstream/benchmarks/cpp
fi
if [[ -n "$UPSTREAM" && ! -f "$UPSTREAM/prepare_dataset.py" ]]; then
  echo "no prepare_dataset.py in $UPSTREAM" >&2
  exit 2
fi

# --- our side: release build ----------------------------------------------------------------------
echo "== building perfgate (release)"
(cd "$REPO" && cargo build --release --quiet)
OURS=("$REPO/target/release/perfgate" dataset)
if ! "${OURS[@]}" --help 2>/dev/null | grep -q token-norm-dist; then
  # The `dataset` subcommand is not wired into the binary yet: drive the same library entry
  # point (cli::run_cli) through a two-line shim crate built outside the repository.
  SHIM=$WORK/shim
  mkdir -p "$SHIM/src"
  cat >"$SHIM/Cargo.toml" <<EOF
[package]
name = "perfgate-dataset-shim"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
perfgate = { path = "$REPO" }
clap = { version = "4.6", features = ["derive", "env"] }
anyhow = "1.0"

[profile.release]
debug = "line-tables-only"

[workspace]
EOF
  cat >"$SHIM/src/main.rs" <<'EOF'
use clap::Parser;

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: perfgate::dataset::cli::DatasetArgs,
}

fn main() -> anyhow::Result<()> {
    perfgate::dataset::cli::run_cli(Cmd::parse().args)
}
EOF
  [[ -f "$REPO/Cargo.lock" ]] && cp "$REPO/Cargo.lock" "$SHIM/Cargo.lock"
  (cd "$SHIM" && CARGO_TARGET_DIR="$REPO/target" cargo build --release --quiet)
  OURS=("$REPO/target/release/perfgate-dataset-shim")
  echo "   (perfgate's binary has no dataset subcommand yet; using a shim over cli::run_cli)"
fi

# --- run ours -------------------------------------------------------------------------------------
echo "== ours: ${OURS[*]} --stdout --tokenizer $TOKENIZER ${JOB[*]}"
"${OURS[@]}" --stdout --tokenizer "$TOKENIZER" "${JOB[@]}" >/dev/null # warm the page cache
times=()
for _ in $(seq "$RUNS"); do
  rm -f "$WORK/ours.jsonl"
  t0=$(now_ns)
  "${OURS[@]}" --stdout --tokenizer "$TOKENIZER" "${JOB[@]}" >"$WORK/ours.jsonl"
  times+=($(($(now_ns) - t0)))
done
ours_ns=$(printf '%s\n' "${times[@]}" | median)
devnull=()
for _ in $(seq "$RUNS"); do
  t0=$(now_ns)
  "${OURS[@]}" --stdout --tokenizer "$TOKENIZER" "${JOB[@]}" >/dev/null
  devnull+=($(($(now_ns) - t0)))
done
devnull_ns=$(printf '%s\n' "${devnull[@]}" | median)
bytes=$(stat -c %s "$WORK/ours.jsonl")
if [[ "$bytes" -eq 0 ]]; then
  echo "our side wrote nothing: is ${OURS[*]} the dataset command?" >&2
  exit 1
fi
ours_sha=$(sha256sum "$WORK/ours.jsonl" | cut -d' ' -f1)

# The I/O limit: the same bytes written by cat from the page cache to a fresh file.
cats=()
for _ in $(seq "$RUNS"); do
  rm -f "$WORK/cat.jsonl"
  t0=$(now_ns)
  cat "$WORK/ours.jsonl" >"$WORK/cat.jsonl"
  cats+=($(($(now_ns) - t0)))
done
cat_ns=$(printf '%s\n' "${cats[@]}" | median)
rm -f "$WORK/cat.jsonl"

# --- run upstream -----------------------------------------------------------------------------------
up_ns=""
if [[ -n "$UPSTREAM" ]]; then
  if [[ ! -x "$PD_VENV/bin/python" ]]; then
    echo "== creating $PD_VENV (numpy, transformers, tokenizers, click, pydantic; datasets and"
    echo "   pillow only because upstream's prepare_dataset.py imports its real-data module)"
    python3 -m venv "$PD_VENV"
    "$PD_VENV/bin/pip" install --quiet "numpy==2.4.6" "transformers==4.56.2" "tokenizers==0.22.2" \
      "click==8.5.1" "pydantic==2.14.3" "huggingface-hub>=0.34,<1.0" "datasets>=3,<4.1" pillow
  fi
  echo "== upstream: $UPSTREAM/prepare_dataset.py --stdout --tokenizer $TOKENIZER ${JOB[*]}"
  t0=$(now_ns)
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PD_VENV/bin/python" "$UPSTREAM/prepare_dataset.py" \
    --stdout --tokenizer "$TOKENIZER" "${JOB[@]}" >"$WORK/upstream.jsonl" 2>"$WORK/upstream.stderr"
  up_ns=$(($(now_ns) - t0))
  # How much of upstream's time is only Python start-up and imports.
  t0=$(now_ns)
  (cd "$UPSTREAM" && HF_HUB_OFFLINE=1 "$PD_VENV/bin/python" -c \
    "import utils.prepare_synthetic_data, utils.prepare_real_data, transformers" 2>/dev/null)
  import_ns=$(($(now_ns) - t0))
  up_sha=$(sha256sum "$WORK/upstream.jsonl" | cut -d' ' -f1)
fi

# --- report ---------------------------------------------------------------------------------------
echo
echo "job: ${JOB[*]}, tokenizer $(basename "$TOKENIZER")"
echo "output: $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB)"
printf '%-34s %10s\n' "ours, to a file (median of $RUNS)" "$(seconds "$ours_ns") s"
printf '%-34s %10s\n' "ours, to /dev/null (median)" "$(seconds "$devnull_ns") s"
printf '%-34s %10s\n' "ours, output rate" "$(mb_per_s "$bytes" "$ours_ns") MB/s"
printf '%-34s %10s\n' "cat of the same bytes (I/O limit)" "$(mb_per_s "$bytes" "$cat_ns") MB/s ($(seconds "$cat_ns") s)"
if [[ -n "$up_ns" ]]; then
  printf '%-34s %10s\n' "upstream prepare_dataset.py" "$(seconds "$up_ns") s"
  printf '%-34s %10s\n' "  of which Python imports" "$(seconds "$import_ns") s"
  printf '%-34s %10s\n' "speed-up (upstream / ours)" "$(awk -v u="$up_ns" -v o="$ours_ns" 'BEGIN { printf "%.0fx", u / o }')"
  printf '%-34s %10s\n' "  excluding upstream's imports" "$(awk -v u="$up_ns" -v i="$import_ns" -v o="$ours_ns" 'BEGIN { printf "%.0fx", (u - i) / o }')"
  echo "sha256 ours:     $ours_sha"
  echo "sha256 upstream: $up_sha"
  if [[ "$ours_sha" == "$up_sha" ]]; then
    echo "outputs are byte-identical"
  else
    echo "OUTPUTS DIFFER (see $WORK/ours.jsonl, $WORK/upstream.jsonl, $WORK/upstream.stderr)"
    exit 1
  fi
else
  echo "sha256 ours:     $ours_sha"
  echo "upstream not run: pass TensorRT-LLM's benchmarks/cpp directory as the first argument,"
  echo "or set TRTLLM_GIT_DIR to a git directory of TensorRT-LLM."
fi
