#!/usr/bin/env python3
"""Writes tiny random-weight llama-architecture GGUF models for ci/llama-server-up.sh.

    make_models.py TOKENIZER_DIR OUT_DIR

TOKENIZER_DIR holds a byte-level BPE tokenizer.json (GPT-2 pre-tokenizer, no byte fallback) and a
tokenizer_config.json (bos_token, eos_token, chat_template). Its vocabulary, merges and special
tokens are copied into every model, so llama-server tokenizes exactly like the `tokenizers` crate
on that tokenizer.json.

Every model has the same shapes and vocabulary and differs only in its seed (MODELS below), so
any one can be another's speculative-decoding draft: `tiny` drafting for itself agrees on every
greedy token, `tiny-unrelated` almost never does. The weights are drawn from numpy's PCG64 with a
fixed seed: with the same pinned numpy and gguf the files are byte-identical on every machine.
"""

import json
import sys
from pathlib import Path

import gguf
import numpy as np

MODELS = {"tiny": 1, "tiny-unrelated": 2}

# Small enough that a decoding step costs far less than llama-server's own per-step overhead on
# two CPU cores, so throughput is limited by the server's batching and HTTP path, as on a real
# deployment, not by arithmetic.
EMBED = 64
LAYERS = 2
HEADS = 4
HEADS_KV = 4
FFN = 128
CONTEXT = 65536
ROPE_BASE = 10000.0
RMS_EPS = 1e-5


def read_json(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: cannot read JSON: {e}")
    if not isinstance(value, dict):
        sys.exit(f"{path}: expected a JSON object")
    return value


def token_content(value, path: Path, key: str) -> str:
    """A tokenizer_config.json token entry: a string or an AddedToken object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    sys.exit(f"{path}: '{key}' must be a string or an object with 'content'")


class Vocab:
    """Tokens in id order with their GGUF types, merges, and the special ids."""

    def __init__(self, tokenizer_dir: Path):
        tj_path = tokenizer_dir / "tokenizer.json"
        tj = read_json(tj_path)
        model = tj.get("model") or {}
        if model.get("type") != "BPE" or model.get("byte_fallback"):
            sys.exit(f"{tj_path}: expected a byte-level BPE model without byte_fallback")
        pre = tj.get("pre_tokenizer") or {}
        if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space"):
            # llama.cpp's "gpt-2" pre-tokenizer is the GPT-2 regex; anything else would tokenize
            # differently on the server.
            sys.exit(f"{tj_path}: expected a ByteLevel pre-tokenizer without add_prefix_space")

        by_id: dict[int, str] = {}
        for text, i in model["vocab"].items():
            by_id[int(i)] = text
        special: set[int] = set()
        for added in tj.get("added_tokens") or []:
            by_id[int(added["id"])] = added["content"]
            if added.get("special"):
                special.add(int(added["id"]))
        if sorted(by_id) != list(range(len(by_id))):
            sys.exit(f"{tj_path}: token ids are not contiguous from 0")
        self.tokens = [by_id[i] for i in range(len(by_id))]
        self.types = [
            gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(self.tokens))
        ]
        merges = model.get("merges") or []
        self.merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in merges]
        if any(not isinstance(m, str) and " " in "".join(m) for m in merges):
            sys.exit(f"{tj_path}: a merge contains a space; byte-level BPE merges never do")

        cfg_path = tokenizer_dir / "tokenizer_config.json"
        cfg = read_json(cfg_path)
        ids = {t: i for i, t in enumerate(self.tokens)}

        def special_id(key: str) -> int:
            if key not in cfg:
                sys.exit(f"{cfg_path}: no '{key}'")
            text = token_content(cfg[key], cfg_path, key)
            if text not in ids:
                sys.exit(f"{cfg_path}: {key} {text!r} is not in {tj_path}")
            return ids[text]

        self.bos = special_id("bos_token")
        self.eos = special_id("eos_token")
        self.eot = ids.get("<|im_end|>")
        self.add_bos = bool(cfg.get("add_bos_token", False))
        self.chat_template = cfg.get("chat_template")
        if not isinstance(self.chat_template, str):
            sys.exit(f"{cfg_path}: no chat_template string")


def write_model(path: Path, name: str, seed: int, vocab: Vocab) -> None:
    rng = np.random.default_rng(seed)
    n_vocab = len(vocab.tokens)
    head_dim = EMBED // HEADS

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"perfgate {name}")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(EMBED)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS_KV)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    w.add_token_merges(vocab.merges)
    w.add_bos_token_id(vocab.bos)
    w.add_eos_token_id(vocab.eos)
    if vocab.eot is not None:
        w.add_eot_token_id(vocab.eot)
    w.add_add_bos_token(vocab.add_bos)
    w.add_add_eos_token(False)
    w.add_chat_template(vocab.chat_template)

    # numpy shapes are ggml's reversed: (rows = outputs, columns = inputs).
    # Unit-variance embeddings and a unit-std output matrix make the logits of the RMS-normalized
    # final state spread by about sqrt(EMBED) = 8: the greedy token wins by a wide margin, so
    # batched and unbatched evaluation (speculative verification) agree on it.
    lin = 1.0 / np.sqrt(EMBED)
    w.add_tensor("token_embd.weight", normal((n_vocab, EMBED), 1.0))
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(EMBED, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", normal((EMBED, EMBED), lin))
        w.add_tensor(f"blk.{i}.attn_k.weight", normal((head_dim * HEADS_KV, EMBED), lin))
        w.add_tensor(f"blk.{i}.attn_v.weight", normal((head_dim * HEADS_KV, EMBED), lin))
        w.add_tensor(f"blk.{i}.attn_output.weight", normal((EMBED, EMBED), lin))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(EMBED, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", normal((FFN, EMBED), lin))
        w.add_tensor(f"blk.{i}.ffn_up.weight", normal((FFN, EMBED), lin))
        w.add_tensor(f"blk.{i}.ffn_down.weight", normal((EMBED, FFN), 1.0 / np.sqrt(FFN)))
    w.add_tensor("output_norm.weight", np.ones(EMBED, dtype=np.float32))
    w.add_tensor("output.weight", normal((n_vocab, EMBED), 1.0))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} TOKENIZER_DIR OUT_DIR")
    tokenizer_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    vocab = Vocab(tokenizer_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, seed in MODELS.items():
        write_model(out / f"{name}.gguf", name, seed, vocab)
        print(f"{out / (name + '.gguf')}: {(out / (name + '.gguf')).stat().st_size} bytes, seed {seed}")


if __name__ == "__main__":
    main()
