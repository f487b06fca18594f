#!/usr/bin/env python3
"""Checks a llama-server started by ci/llama-server-up.sh and measures it.

    check.py STATE_JSON [--draft-expect high|low] [--osl N] [--json OUT] [--perfgate BIN]

Needs the Python `tokenizers` package (same implementation as the Rust crate perfgate uses):
    python3 -m venv /tmp/tok && /tmp/tok/bin/pip install tokenizers==0.23.2

Checks, each a hard failure (exit 1) when it does not hold:
  - GET /health is 200 and /v1/models serves the model name of the state file;
  - POST /tokenize equals tokenizers' encode(text, add_special_tokens=False) on hand-picked
    strings (whitespace runs, tabs, newlines, emoji, accents, CJK, code, contractions) and on
    texts decoded from seeded random token ids; with --perfgate, also the Rust crate's ids
    (`perfgate dataset prompts`, which tokenizes with the `tokenizers` crate);
  - a streaming /v1/completions request with a token-id prompt, max_tokens, ignore_eos and
    cache_prompt=false reports usage.prompt_tokens = len(prompt) and completion_tokens = max_tokens;
  - a chat request's usage.prompt_tokens equals the client-side count of the ChatML-rendered prompt;
  - every slot serves at once: `parallel` concurrent requests all complete with exact lengths;
  - with --draft-expect: timings.draft_n > 0 and the acceptance rate >= 0.9 (high) or <= 0.1 (low).
Prints the measured figures (load time, tok/s per request at concurrency 1 and `parallel`,
acceptance) as JSON on stdout.
"""

import argparse
import json
import os
import random
import subprocess
import tempfile
import sys
import threading
import time
import urllib.error
import urllib.request

from tokenizers import Tokenizer

FIXED_TEXTS = [
    "Hello world",
    " Hello World!",
    "   three leading spaces and two trailing  ",
    "tabs\tand\t\ttabs\n\nnewlines\n\n\n",
    "Äpfel, naïve café, façade, Øresund, ß",
    "emoji 🦙🚀👍🏽 and a family 👨‍👩‍👧",
    "日本語のテキストと中文文本",
    "нещо на Български",
    "fn main() {\n    let x = 42; // don't panic\n}\n",
    "I'm sure they'll say we've done it; it's 3.14159 or 1,000,000?",
    "    \n\t \r\n  mixed whitespace runs",
    "<|im_start|> is a special token text",
]


class Failure(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


def http(url: str, body: dict | None = None, timeout: float = 120.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_json(url: str, body: dict) -> dict:
    status, data = http(url, body)
    check(status == 200, f"POST {url} -> HTTP {status}: {data[:300]!r}")
    return json.loads(data)


def stream(url: str, body: dict) -> dict:
    """Sends a streaming request; returns the events, the first-content and end times."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    events, first, done = [], None, False
    with urllib.request.urlopen(req, timeout=300) as r:
        buf = b""
        for chunk in iter(lambda: r.read1(65536), b""):
            buf += chunk
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                for line in frame.split(b"\n"):
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[len(b"data: "):]
                    if payload == b"[DONE]":
                        done = True
                        continue
                    ev = json.loads(payload)
                    events.append(ev)
                    for ch in ev.get("choices") or []:
                        text = ch.get("text") or (ch.get("delta") or {}).get("content")
                        if text and first is None:
                            first = time.perf_counter()
    end = time.perf_counter()
    check(done, f"{url}: the stream ended without data: [DONE]")
    usage = next((e["usage"] for e in reversed(events) if e.get("usage")), None)
    timings = next((e["timings"] for e in reversed(events) if e.get("timings")), None)
    check(usage is not None, f"{url}: no usage in the stream (stream_options.include_usage)")
    return {"events": len(events), "usage": usage, "timings": timings,
            "ttft": (first - t0) if first else None, "e2e": end - t0}


def rust_ids(perfgate: str, tokenizer_dir: str, texts: list[str]) -> list[list[int]]:
    """Token ids from the Rust `tokenizers` crate, through `perfgate dataset prompts`."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "prompts.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"input": t, "output": "x"}) + "\n")
        run = subprocess.run([perfgate, "dataset", "--tokenizer", tokenizer_dir, "--stdout", "prompts", "--input", path],
                             capture_output=True, text=True)
    check(run.returncode == 0, f"{perfgate} dataset prompts failed: {run.stderr[-500:]}")
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    check(len(rows) == len(texts), f"perfgate dataset prompts wrote {len(rows)} rows for {len(texts)} texts")
    return [r["input_ids"] for r in rows]


def completion_body(prompt_ids: list[int], osl: int, **extra) -> dict:
    body = {"prompt": prompt_ids, "max_tokens": osl, "ignore_eos": True, "cache_prompt": False,
            "stream": True, "stream_options": {"include_usage": True}}
    body.update(extra)
    return body


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("state")
    ap.add_argument("--draft-expect", choices=["high", "low"])
    ap.add_argument("--osl", type=int, default=128)
    ap.add_argument("--json")
    ap.add_argument("--perfgate", help="a perfgate binary: compare its (Rust) token ids too")
    args = ap.parse_args()
    with open(args.state, encoding="utf-8") as f:
        st = json.load(f)
    url, tok = st["url"], Tokenizer.from_file(st["tokenizer_json"])
    vocab = tok.get_vocab_size()
    out = {"url": url, "model": st["model_name"], "draft": st.get("draft_model_name"),
           "parallel": st["parallel"], "ready_seconds": st["ready_seconds"]}

    status, _ = http(url + "/health")
    check(status == 200, f"GET /health -> {status}")
    status, data = http(url + "/v1/models")
    check(status == 200 and st["model_name"] in data.decode(), f"GET /v1/models -> {status} {data[:200]!r}")

    # Tokenizer parity.
    rng = random.Random(20261207)
    texts = list(FIXED_TEXTS)
    for _ in range(200):
        ids = [rng.randrange(4, vocab) for _ in range(rng.randrange(1, 64))]
        texts.append(tok.decode(ids, skip_special_tokens=True))
    texts = [t for t in texts if t]
    rust = rust_ids(args.perfgate, st["tokenizer"], texts) if args.perfgate else None
    mismatches = []
    for i, text in enumerate(texts):
        server = post_json(url + "/tokenize", {"content": text, "add_special": False})["tokens"]
        client = tok.encode(text, add_special_tokens=False).ids
        if server != client or (rust is not None and server != rust[i]):
            mismatches.append({"text": text, "server": server, "python": client, "rust": rust and rust[i]})
    check(not mismatches, f"/tokenize differs from the client tokenizer on {len(mismatches)}/{len(texts)} texts: "
          f"{json.dumps(mismatches[:3], ensure_ascii=False)}")
    out["tokenize_parity"] = f"{len(texts)}/{len(texts)}" + (" (python and rust)" if rust else " (python)")

    # One streaming completion with a token-id prompt.
    prompt = [rng.randrange(4, vocab) for _ in range(100)]
    r = stream(url + "/v1/completions", completion_body(prompt, 32))
    check(r["usage"]["prompt_tokens"] == len(prompt), f"prompt_tokens {r['usage']['prompt_tokens']} != {len(prompt)}")
    check(r["usage"]["completion_tokens"] == 32, f"completion_tokens {r['usage']['completion_tokens']} != 32")
    out["completion_32"] = {"usage": r["usage"], "events": r["events"], "ttft_ms": round(r["ttft"] * 1e3, 1)}

    # Chat: the server's prompt count equals the client's count of the rendered template.
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Count to five, please. 🦙 café"}]
    rendered = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    rendered += "<|im_start|>assistant\n"
    chat = post_json(url + "/v1/chat/completions",
                     {"messages": messages, "max_tokens": 16, "ignore_eos": True, "cache_prompt": False})
    want = len(tok.encode(rendered, add_special_tokens=False).ids)
    check(chat["usage"]["prompt_tokens"] == want, f"chat prompt_tokens {chat['usage']['prompt_tokens']} != client {want}")
    check(chat["usage"]["completion_tokens"] == 16, f"chat completion_tokens {chat['usage']['completion_tokens']} != 16")
    rs = stream(url + "/v1/chat/completions",
                {"messages": messages, "max_tokens": 16, "ignore_eos": True, "cache_prompt": False,
                 "stream": True, "stream_options": {"include_usage": True}})
    check(rs["usage"]["completion_tokens"] == 16, f"streaming chat completion_tokens {rs['usage']} != 16")
    out["chat"] = {"prompt_tokens": want, "usage": chat["usage"]}

    # Throughput at concurrency 1 and `parallel` (ISL 128, OSL args.osl); greedy when drafting.
    extra = {"temperature": 0.0} if st.get("draft_model_name") else {}
    for conc in sorted({1, st["parallel"]}):
        results, errors = [None] * conc, []

        def one(i: int) -> None:
            try:
                ids = [rng.randrange(4, vocab) for _ in range(128)]
                results[i] = stream(url + "/v1/completions", completion_body(ids, args.osl, **extra))
            except Exception as e:  # reported below, with the others
                errors.append(repr(e))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(conc)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        check(not errors, f"concurrency {conc}: {errors}")
        for res in results:
            check(res["usage"]["completion_tokens"] == args.osl, f"concurrency {conc}: usage {res['usage']}")
        per_req = [res["timings"]["predicted_per_second"] for res in results]
        client_tps = [(args.osl - 1) / (res["e2e"] - res["ttft"]) for res in results]
        level = {"wall_s": round(wall, 3),
                 "output_tok_per_s_total": round(conc * args.osl / wall, 1),
                 "server_predicted_per_second_per_request": [round(x, 1) for x in per_req],
                 "client_decode_tok_per_s_per_request": [round(x, 1) for x in client_tps],
                 "ttft_ms": [round(res["ttft"] * 1e3, 1) for res in results]}
        if st.get("draft_model_name"):
            n = sum(res["timings"].get("draft_n", 0) for res in results)
            acc = sum(res["timings"].get("draft_n_accepted", 0) for res in results)
            level["draft_n"], level["draft_n_accepted"] = n, acc
            level["acceptance"] = round(acc / n, 4) if n else None
            if args.draft_expect:
                check(n > 0, f"concurrency {conc}: no draft tokens (timings {results[0]['timings']})")
                rate = acc / n
                ok = rate >= 0.9 if args.draft_expect == "high" else rate <= 0.1
                check(ok, f"concurrency {conc}: acceptance {rate:.3f}, expected {args.draft_expect}")
        out[f"concurrency_{conc}"] = level

    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"check.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError, KeyError) as e:  # unreadable state file, server gone, bad JSON
        print(f"check.py: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
