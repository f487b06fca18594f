#!/usr/bin/env bash
# A realistic dashboard to look at (and the screenshots in docs/): the example list run for
# NIGHTS nights against the trtllm-bench test double with 1% run-to-run noise, one revision per
# night, and a 10% throughput regression in the Llama 3.3 70B cases from night REGRESS_AT on.
# Then `perfgate dashboard`, and headless Chromium screenshots of the overview and a case page.
#
#   ci/dashboard-demo.sh [DIR]        (default target/dashboard-demo; needs chromium for the PNGs)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/dashboard-demo}
nights=${NIGHTS:-10}
regress_at=${REGRESS_AT:-8}
rm -rf "$dir" && mkdir -p "$dir/baselines"
# `cargo test --no-run` builds both binaries with the features the tests use, so this shares
# the build of the README's commands instead of compiling again.
cargo test --no-run --quiet
for n in $(seq 1 "$nights"); do
  scale=1
  [ "$n" -ge "$regress_at" ] && scale=0.9
  echo "== night $n (throughput scale $scale for llama_v3.3_70b)"
  FAKE_BENCH_NOISE=0.01 FAKE_BENCH_SEED=$n FAKE_BENCH_SCALE=$scale FAKE_BENCH_SCALE_FOR=llama_v3.3_70b \
  target/debug/perfgate run --test-list test_lists/perf_test.txt --test-prefix H100_80GB_HBM3 \
    --output-dir "$dir/night-$n" --history "$dir/history.sqlite" --baselines "$dir/baselines" \
    --dataset-cache target/ci-dataset-cache --tokenizer tests/fixtures/tokenizers/deepseek \
    --bench-cmd "$PWD/target/debug/fake-trtllm-bench" --no-telemetry \
    --revision "$(printf '%07x' $((0x3f1a2c0 + n * 4099)))" --branch main \
    --build-url "https://ci.example.com/job/nightly/$n/" >"$dir/night-$n.log" 2>&1 || true
done
target/debug/perfgate dashboard --history "$dir/history.sqlite" --out "$dir/site"
if command -v chromium >/dev/null 2>&1; then
  shot() {
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --user-data-dir="$(mktemp -d)" --virtual-time-budget=5000 --window-size=1400,1000 \
      --hide-scrollbars --screenshot="$2" "file://$PWD/$1" 2>/dev/null
  }
  shot "$dir/site/index.html" "$dir/overview.png"
  case_page=$(grep -l "llama_v3.3_70b" "$dir"/site/data/case-*.js 2>/dev/null | head -1 | sed 's/.*case-\([0-9]*\)\.js/\1/')
  [ -n "$case_page" ] && shot "$dir/site/case/$case_page.html" "$dir/case.png"
  echo "screenshots: $dir/overview.png $dir/case.png"
fi
echo "site: $dir/site/index.html"
