"""A random-initialised Llama of about 1.2 B parameters, saved locally (no hub), for serving a
real engine on a GPU machine (issue 19): the Llama-3.2-1B shape (16 layers, hidden 2048, 32
heads, 8 KV heads, head dim 64, MLP 8192, tied embeddings) with the vocabulary of a tokenizer
fixture, so perfgate's client counts tokens with the server's own tokenizer.

    python3 ci/gpu/make_model.py --out DIR --tokenizer tests/fixtures/tokenizers/deepseek

Seeded: the same weights every time. The saved tokenizer carries a ChatML chat template.
"""

import argparse
import json
import pathlib
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer", required=True, help="a directory holding tokenizer.json")
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    src = pathlib.Path(a.tokenizer)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(src / "tokenizer.json"))
    cfg_file = src / "tokenizer_config.json"
    specials = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    for key in ("bos_token", "eos_token"):
        v = specials.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if v:
            setattr(tok, key, v)
    tok.chat_template = CHAT_TEMPLATE
    vocab = len(tok)
    torch.manual_seed(a.seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        torch_dtype="bfloat16",
    )
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    params = sum(t.numel() for t in model.parameters())
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    for extra in ("tokenizer_config.json",):
        if not (out / extra).exists() and (src / extra).exists():
            shutil.copy(src / extra, out / extra)
    print(json.dumps({"out": str(out), "params": params, "vocab": vocab}))


if __name__ == "__main__":
    main()
