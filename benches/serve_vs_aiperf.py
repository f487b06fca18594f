"""Helpers of benches/serve_vs_aiperf.sh and ci/gpu/aiperf.sh (run with AIPerf's Python, which
has `tokenizers`).

    serve_vs_aiperf.py prompts PERFGATE_DATASET TOKENIZER_JSON OUT_AIPERF_JSONL [ids|text]
    serve_vs_aiperf.py table WORK_DIR [TARGET=TITLE ...]

`prompts` turns a perfgate/prepare_dataset JSONL (`input_ids`, `output_tokens`) into AIPerf's
`single_turn` custom dataset with the same `output_length`. `ids` (the default): the same token
ids go on the wire as the completions `prompt` (through the per-entry `extra` body fields, which
AIPerf merges last), and `text` (the ids decoded) is what AIPerf would otherwise send. `text`:
for servers that take only a string prompt, `text` is the ids decoded exactly as perfgate
decodes them for such a server (special tokens kept), so both send the same string.

`table` reads what the shell scripts left in WORK_DIR (WORK_DIR/TARGET/cN/runR/ with
perfgate.jsonl and aiperf/) and prints markdown tables of the figures both tools report, with
their definitions mapped (docs/serve-bench.md, "Side by side with AIPerf"). Without TARGET=TITLE
arguments the targets are benches/serve_vs_aiperf.sh's (`real`, `mock`, and its capacity run).
"""

import json
import os
import statistics
import sys

# (label, perfgate --save-result key, AIPerf profile_export_aiperf.json metric and stat)
FIGURES = [
    ("requests completed", "completed", ("request_count", "avg")),
    ("failed requests", "failed", ("error_request_count", "avg")),
    ("benchmark duration (s)", "duration", ("benchmark_duration", "avg")),
    ("request throughput (req/s)", "request_throughput", ("request_throughput", "avg")),
    ("output token throughput (tok/s)", "output_throughput", ("output_token_throughput", "avg")),
    ("median TTFT (ms)", "median_ttft_ms", ("time_to_first_token", "p50")),
    ("mean TTFT (ms)", "mean_ttft_ms", ("time_to_first_token", "avg")),
    ("median TPOT (ms) = AIPerf inter_token_latency", "median_tpot_ms", ("inter_token_latency", "p50")),
    ("median ITL per chunk (ms) = AIPerf inter_chunk_latency", "median_itl_ms", ("inter_chunk_latency", "p50")),
    ("median E2EL (ms) = AIPerf request_latency", "median_e2el_ms", ("request_latency", "p50")),
    ("p99 E2EL (ms) = AIPerf request_latency p99", "p99_e2el_ms", ("request_latency", "p99")),
]


def die(msg):
    print(f"serve_vs_aiperf.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def prompts(dataset, tokenizer_json, out, mode="ids"):
    from tokenizers import Tokenizer

    if mode not in ("ids", "text"):
        die(f"prompt mode '{mode}': expected ids or text")

    tok = Tokenizer.from_file(tokenizer_json)
    n = 0
    with open(dataset, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as o:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                ids = r["input_ids"]
                osl = int(r["output_tokens"])
            except (ValueError, KeyError, TypeError) as e:
                die(f"{dataset}:{lineno}: expected input_ids and output_tokens ({e})")
            # perfgate's ids_to_text decodes with special tokens kept (src/serve/dataset.rs).
            rec = {"text": tok.decode(ids, skip_special_tokens=False), "output_length": osl}
            if mode == "ids":
                rec["extra"] = {"prompt": ids}
            o.write(json.dumps(rec) + "\n")
            n += 1
    if n == 0:
        die(f"{dataset}: no records")


def read_perfgate(path):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    if len(lines) != 1:
        die(f"{path}: expected one level, found {len(lines)}")
    return lines[0]


def read_aiperf(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def perfgate_gap_ms(run_dir):
    """Median time from a response's end to the next request's send, at concurrency 1 (the
    client's own turnaround in a closed loop; its send lag)."""
    path = os.path.join(run_dir, "perfgate-out", "requests-level0.jsonl")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        recs = sorted((json.loads(l) for l in f if l.strip()), key=lambda r: r["t_send_ns"])
    gaps = [(b["t_send_ns"] - a["t_end_ns"]) / 1e6 for a, b in zip(recs, recs[1:])]
    return statistics.median(gaps) if gaps else None


def aiperf_gap_ms(run_dir):
    """The same for AIPerf, from its per-request export (warmup left out)."""
    path = os.path.join(run_dir, "aiperf", "profile_export.jsonl")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        meta = [json.loads(l)["metadata"] for l in f if l.strip()]
    meta = sorted((m for m in meta if m.get("benchmark_phase") != "warmup"), key=lambda m: m["request_start_ns"])
    gaps = [(b["request_start_ns"] - a["request_end_ns"]) / 1e6 for a, b in zip(meta, meta[1:])]
    return statistics.median(gaps) if gaps else None


def aiperf_value(doc, metric, stat):
    m = doc.get(metric)
    if m is None:
        # AIPerf leaves a count out when it is zero (no errors).
        return 0.0 if metric == "error_request_count" else None
    return m.get(stat)


def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if float(v).is_integer():
        return f"{v:,.0f}"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


TITLES = {"real": "llama-server (ci/llama-server-up.sh)", "mock": "serve-mock at zero delay"}


def comparison(work, target, title):
    """One table per concurrency of `target` (a folder of WORK_DIR): medians over the runs, and
    the median of the per-run differences (each run pairs the two tools back to back)."""
    base = os.path.join(work, target)
    if not os.path.isdir(base):
        return
    for level in sorted(os.listdir(base), key=lambda s: int(s.lstrip("c"))):
        runs = sorted(os.listdir(os.path.join(base, level)))
        pairs = []
        gaps = []
        for run in runs:
            d = os.path.join(base, level, run)
            pg_path = os.path.join(d, "perfgate.jsonl")
            ai_path = os.path.join(d, "aiperf", "profile_export_aiperf.json")
            if os.path.exists(pg_path) and os.path.exists(ai_path):
                pairs.append((read_perfgate(pg_path), read_aiperf(ai_path)))
                gaps.append((perfgate_gap_ms(d), aiperf_gap_ms(d)))
        if not pairs:
            continue
        lagged = sum(1 for p, _ in pairs if p.get("perfgate", {}).get("self_check", {}).get("lagged"))
        print(
            f"\n{title}, concurrency {level.lstrip('c')}, {len(pairs)} runs: median (min–max); "
            f"perfgate's self-check flagged its client as lagging (descheduled) in {lagged} of them\n"
        )
        print("| figure | perfgate serve-bench | AIPerf | AIPerf vs perfgate (median of runs) |")
        print("|---|---|---|---|")
        for label, pg_key, (metric, stat) in FIGURES:
            pg = [p.get(pg_key) for p, _ in pairs]
            ai = [aiperf_value(a, metric, stat) for _, a in pairs]
            diffs = [a / p - 1 for p, a in zip(pg, ai) if p and a is not None]
            diff = f"{statistics.median(diffs) * 100:+.1f}%" if diffs else "n/a"
            if pg_key in ("completed", "failed"):
                diff = "" if pg == ai else diff
            print(f"| {label} | {spread(pg)} | {spread(ai)} | {diff} |")
        trace = [
            sum(aiperf_value(a, m, "p50") or 0.0 for m in ("http_req_connecting", "http_req_sending"))
            for _, a in pairs
        ]
        print(f"| AIPerf's own HTTP trace: connecting + sending the request (ms, medians; client time inside its TTFT) | | {spread(trace)} | |")
        if level == "c1":
            pg = [g for g, _ in gaps]
            ai = [g for _, g in gaps]
            print(f"| median gap from a response's end to the next send (ms; the client's turnaround) | {spread(pg)} | {spread(ai)} | |")


def capacity(work):
    d = os.path.join(work, "capacity")
    if not os.path.isdir(d):
        return
    rows = []
    for tool in ("perfgate", "aiperf"):
        tpath = os.path.join(d, f"{tool}.time")
        if not os.path.exists(tpath):
            continue
        with open(tpath, encoding="utf-8") as f:
            wall, user, sys_ = (float(x) for x in f.read().split()[-3:])
        if tool == "perfgate":
            doc = read_perfgate(os.path.join(d, "perfgate.jsonl"))
            n, rate, failed = doc["completed"], doc["request_throughput"], doc["failed"]
        else:
            doc = read_aiperf(os.path.join(d, "aiperf", "profile_export_aiperf.json"))
            n = aiperf_value(doc, "request_count", "avg")
            rate = aiperf_value(doc, "request_throughput", "avg")
            failed = aiperf_value(doc, "error_request_count", "avg")
        cpu = user + sys_
        rows.append((tool, n, failed, rate, wall, cpu, n / cpu if cpu > 0 else None))
    if not rows:
        return
    print("\nclient capacity against serve-mock at zero delay (client pinned to core 0, mock on core 1)\n")
    print("| client | requests | failed | req/s reached | wall s | client CPU s (whole process) | requests per client CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for tool, n, failed, rate, wall, cpu, per_cpu in rows:
        name = {"perfgate": "perfgate serve-bench", "aiperf": "AIPerf"}[tool]
        print(f"| {name} | {n:.0f} | {failed:.0f} | {fmt(rate)} | {wall:.1f} | {cpu:.2f} | {fmt(per_cpu)} |")
    by = {r[0]: r for r in rows}
    if "perfgate" in by and "aiperf" in by and by["aiperf"][3]:
        print(
            f"\nreq/s reached: perfgate / AIPerf = {by['perfgate'][3] / by['aiperf'][3]:.1f}x; "
            f"requests per client CPU-s: {by['perfgate'][6] / by['aiperf'][6]:.1f}x"
        )


def main():
    if len(sys.argv) in (5, 6) and sys.argv[1] == "prompts":
        prompts(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        for target, title in TITLES.items():
            comparison(sys.argv[2], target, title)
        capacity(sys.argv[2])
    elif len(sys.argv) > 3 and sys.argv[1] == "table":
        for arg in sys.argv[3:]:
            target, sep, title = arg.partition("=")
            if not sep or not target:
                die(f"table: '{arg}': expected TARGET=TITLE")
            comparison(sys.argv[2], target, title)
    else:
        die(__doc__)


if __name__ == "__main__":
    main()
