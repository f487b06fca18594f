#!/usr/bin/env bash
# A real run-to-run noise series for the gate's evaluation (`perfgate dev bench-gate --noise`):
# one short serve-bench measurement repeated REPS times on one server, the same prompts each
# time, as a nightly repeats them. Each repetition appends one `--save-result` line to OUT.jsonl;
# the file is one *session* (run it again on another machine for another session).
#
#   benches/noise_series.sh OUT.jsonl REPS [serve-bench options...]
#
# With no --url among the options it starts the CI llama.cpp server (ci/llama-server-up.sh,
# tiny model, 4 slots) for the series and stops it afterwards, and measures the default level
# below. The options are passed to `perfgate serve-bench` after `--endpoint completions
# --ignore-eos --no-progress` and the level, set by the environment:
#   ISL (128), OSL (32), CONCURRENCY (4), PROMPTS (16)     the workload of one repetition
#   WARMUP (1)                                             unrecorded repetitions first
#   PERFGATE (target/debug/perfgate, else `perfgate` on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benches/noise_series.sh OUT.jsonl REPS [serve-bench options...]}
REPS=${2:?usage: benches/noise_series.sh OUT.jsonl REPS [serve-bench options...]}
shift 2
PG=${PERFGATE:-target/debug/perfgate}
[ -x "$PG" ] || PG=perfgate

extra=("$@")
started=""
if ! printf '%s\n' "${extra[@]}" | grep -qx -- '--url'; then
  name=noise-$$
  url=$(ci/llama-server-up.sh --name "$name" --owner-pid $$)
  started=$name
  trap 'ci/llama-server-down.sh --name "$started" >/dev/null 2>&1 || true' EXIT
  state=target/llama-server/$name.json
  tok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokenizer"])' "$state")
  extra=(--url "$url" --model tiny --tokenizer "$tok" --server-kind llama-cpp "${extra[@]}")
fi

bench() {
  "$PG" serve-bench --endpoint completions --isl "${ISL:-128}" --osl "${OSL:-32}" \
    --concurrency "${CONCURRENCY:-4}" --num-prompts "${PROMPTS:-16}" --ignore-eos --no-progress \
    "${extra[@]}" "$@"
}
mkdir -p "$(dirname "$OUT")"
for _ in $(seq "${WARMUP:-1}"); do bench >/dev/null; done
for i in $(seq "$REPS"); do
  bench --save-result "$OUT" >/dev/null || echo "repetition $i failed" >&2
done
echo "$OUT: $(wc -l < "$OUT") repetitions" >&2
