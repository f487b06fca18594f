#!/usr/bin/env python3
"""Differential test: random prepare_dataset invocations run through upstream's script and ours;
outputs (JSONL and workload JSON) and the LoRA warning must agree exactly.

    python3 benches/dataset_difftest.py --upstream DIR/benchmarks/cpp --ours BINARY \\
        --python /tmp/pd-venv/bin/python [--seed 1] [--cases 30]

BINARY is anything that takes prepare_dataset's arguments: `perfgate dataset` (pass
--ours "target/release/perfgate dataset") or the shim benches/dataset_vs_upstream.sh builds.
Upstream's Python environment is the venv that script creates. Standard library only.
"""
import argparse
import os
import random
import shlex
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZERS = {
    "deepseek": os.path.join(REPO, "tests/fixtures/tokenizers/deepseek"),      # 128k BPE
    "minilm_eos": os.path.join(REPO, "tests/fixtures/tokenizers/minilm-eos-sep"),  # 30522 WordPiece
}


def random_case(rng):
    tok = rng.choice(sorted(TOKENIZERS))
    seed = rng.choice([0, 1, 7, 420, 12345, 2**32 - 1, rng.randrange(2**32)])
    root = ["--tokenizer", TOKENIZERS[tok], "--random-seed", str(seed)]
    r = rng.random()
    if r < 0.25:
        root += ["--task-id", str(rng.randrange(-1, 5))]
    elif r < 0.5:
        low = rng.randrange(-3, 4)
        root += ["--rand-task-id", str(low), str(low + rng.randrange(0, 5))]
    if rng.random() < 0.5:
        root += ["--lora-dir", rng.choice(["/loras", "/loras/", "rel/dir", '/l"q'])]
    # With the 30522-id vocabulary, long requests reach sample()'s pool branch and choices().
    big = 40000 if tok == "minilm_eos" else 2000
    n = str(rng.randrange(1, 30))
    if rng.random() < 0.5:
        sub = ["token-norm-dist", "--num-requests", n,
               "--input-mean", str(rng.randrange(0, big)), "--input-stdev", str(rng.randrange(0, 3000)),
               "--output-mean", str(rng.randrange(0, 300)), "--output-stdev", str(rng.randrange(0, 100))]
    else:
        a, c = rng.randrange(1, big), rng.randrange(1, 300)
        sub = ["token-unif-dist", "--num-requests", n,
               "--input-min", str(a), "--input-max", str(a + rng.randrange(0, big)),
               "--output-min", str(c), "--output-max", str(c + rng.randrange(0, 300))]
    return root, sub, rng.random() < 0.3


def run(cmd, env=None):
    return subprocess.run(cmd, env=env, capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="TensorRT-LLM benchmarks/cpp directory")
    ap.add_argument("--ours", required=True, help="our command (split like a shell would)")
    ap.add_argument("--python", default="/tmp/pd-venv/bin/python")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=30)
    args = ap.parse_args()
    ours_cmd = shlex.split(args.ours)
    upstream = [args.python, os.path.join(args.upstream, "prepare_dataset.py")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.cases):
            root, sub, workload = random_case(rng)
            if workload:
                outs = [os.path.join(tmp, f"up{i}", "w.json"), os.path.join(tmp, f"ours{i}", "w.json")]
                up = run(upstream + root + ["--output", outs[0]] + sub, env)
                ours = run(ours_cmd + root + ["--output", outs[1]] + sub)
                got = [open(p, "rb").read() if r.returncode == 0 else None
                       for p, r in zip(outs, (up, ours))]
            else:
                up = run(upstream + ["--stdout"] + root + sub, env)
                ours = run(ours_cmd + ["--stdout"] + root + sub)
                got = [r.stdout if r.returncode == 0 else None for r in (up, ours)]
            warned = [b"Task IDs require LoRA" in r.stderr for r in (up, ours)]
            ok = got[0] is not None and got[0] == got[1] and warned[0] == warned[1]
            label = " ".join(root[2:] + sub)
            print(f"{'ok  ' if ok else 'FAIL'} {'workload' if workload else 'jsonl   '} "
                  f"{len(got[0] or b''):>9} B  {label}")
            if not ok:
                failures += 1
                print(f"     upstream rc={up.returncode} {up.stderr[-400:]!r}")
                print(f"     ours     rc={ours.returncode} {ours.stderr[-400:]!r}")
    print(f"{args.cases - failures}/{args.cases} identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
