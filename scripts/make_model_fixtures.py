#!/usr/bin/env python3
"""Golden values from HF transformers that srlm's Rust decoder must reproduce.

Writes (paths relative to the repo root):
  tests/fixtures/tiny/{qwen2,llama,qwen3}/{config.json,model.safetensors,golden.json}
      Tiny seeded random float32 models and their logits / log-probs / entropies.
  tests/fixtures/tiny/llama_rope_params/{config.json,model.safetensors}
      The llama model with its config in the *other* RoPE layout from the one this
      transformers writes (see `other_rope_layout`): transformers >= 5 writes
      `rope_parameters: {rope_theta, rope_type}`, so this copy has top-level `rope_theta`
      (and vice versa with transformers 4.x).
  tests/fixtures/gguf_golden.json
      Log-probs, last-position top-20 and 16 greedy tokens for two real GGUF checkpoints,
      dequantized to float32 by transformers' GGUF loader.

Usage:
  pip install torch transformers gguf numpy safetensors accelerate  # accelerate: GGUF loading
  python3 scripts/make_model_fixtures.py              # both parts
  python3 scripts/make_model_fixtures.py --skip-gguf  # tiny models only (no checkpoints needed)
  SRLM_MODELS=/path/to/folder python3 scripts/make_model_fixtures.py
GGUF files are read from $SRLM_MODELS (default ~/.cache/srlm-models):
  qwen2.5-coder-0.5b-instruct-q4_k_m.gguf, smollm2-135m-instruct-q4_1.gguf

Committed fixtures were produced with torch 2.15.0+cu132 (run on CPU), transformers 5.24.0,
gguf 0.19.0, accelerate 1.15.0, numpy 2.4.6, Python 3.11.7. Reruns are deterministic on one
machine; another CPU or library version may change the last bits of the floats.

golden.json layout (b = 3 sequences, t = 7, v = vocab):
  input_ids         b×t ints, right-padded with pad_id 0 (real lengths in `lengths`)
  attention_mask    b×t ints (1 = real token)
  logits            b×t×v floats; null at padded positions
  logprobs          b×(t-1): log_softmax(logits[:, i])[input_ids[:, i+1]]; null unless both
                    positions i and i+1 are real
  entropies         b×(t-1): entropy of softmax(logits[:, i]); null where logprobs is null
  temperature_0.7_logprobs  b×(t-1): as logprobs with log_softmax(logits / 0.7)
  left_padded       {input_ids, attention_mask, position_ids, logits, logprobs, entropies}
                    for the same sequences left-padded; position_ids = clamp(cumsum(mask) - 1, 0);
                    null at padded positions as above
Floats are float32 values printed with 9 significant digits (round-trip exact).
"""

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PAD_ID = 0
LENGTHS = [7, 5, 3]
GGUF_FILES = ["qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "smollm2-135m-instruct-q4_1.gguf"]
QUESTION = "What is 7 + 5? Answer with just the number."
GREEDY_STEPS = 16
TOP_N = 20

COMMON = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=64,
    vocab_size=96,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    hidden_act="silu",
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=PAD_ID,
)

# Distinct rope thetas so a decoder reading the wrong field is caught.
TINY = {
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(rope_theta=10000.0, tie_word_embeddings=True), 1),
    "llama": (LlamaConfig, LlamaForCausalLM, dict(rope_theta=500000.0, tie_word_embeddings=False), 2),
    "qwen3": (
        Qwen3Config,
        Qwen3ForCausalLM,
        dict(rope_theta=1000000.0, tie_word_embeddings=True, head_dim=16),
        3,
    ),
}


def f32(x):
    """A float32 as the shortest decimal that round-trips (at most 9 significant digits)."""
    x = float(np.float32(x))
    if not np.isfinite(x):
        return None
    return float(f"{x:.9g}")


def tensor_list(t, keep):
    """Nested lists of `t` (b, t, ...) with positions where keep[b][t] is False set to None."""
    out = []
    for bi in range(t.shape[0]):
        row = []
        for ti in range(t.shape[1]):
            if not keep[bi][ti]:
                row.append(None)
            elif t.dim() == 2:
                row.append(f32(t[bi, ti]))
            else:
                row.append([f32(v) for v in t[bi, ti].tolist()])
        out.append(row)
    return out


def make_config(cls, extra):
    kw = dict(COMMON, **extra)
    theta = kw.pop("rope_theta")
    # transformers 5 keeps theta in `rope_parameters`; 4.x takes a top-level `rope_theta`.
    try:
        cfg = cls(**kw, rope_parameters={"rope_type": "default", "rope_theta": theta})
    except TypeError:
        cfg = cls(**kw, rope_theta=theta)
    if getattr(cfg, "rope_parameters", None) is None:
        cfg = cls(**kw, rope_theta=theta)
    cfg._attn_implementation = "eager"
    return cfg


@torch.no_grad()
def init_weights(model, seed):
    """Weights far from the default tiny init, so logits are not near-uniform."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.2 * noise)
        elif name.endswith(".bias"):
            p.copy_(0.2 * noise)
        else:
            p.copy_(0.2 * noise)


def other_rope_layout(cfg_json):
    """The same config in the RoPE layout this transformers version does not write."""
    cfg = dict(cfg_json)
    if "rope_parameters" in cfg and cfg["rope_parameters"] is not None:
        rp = cfg.pop("rope_parameters")
        assert rp.get("rope_type", "default") == "default", rp
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["rope_scaling"] = None
    else:
        cfg["rope_parameters"] = {"rope_theta": cfg.pop("rope_theta"), "rope_type": "default"}
        cfg.pop("rope_scaling", None)
    return cfg


def sequences(vocab, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    return [torch.randint(1, vocab, (n,), generator=g).tolist() for n in LENGTHS]


def pad(seqs, left):
    t = max(len(s) for s in seqs)
    ids, mask = [], []
    for s in seqs:
        fill = [PAD_ID] * (t - len(s))
        ids.append(fill + s if left else s + fill)
        m = [0] * (t - len(s))
        ones = [1] * len(s)
        mask.append(m + ones if left else ones + m)
    return torch.tensor(ids), torch.tensor(mask)


def next_token_stats(logits, ids, mask, temperature=1.0):
    """Log-prob of ids[:, i+1] and entropy at position i, plus which pairs are real."""
    logp = torch.log_softmax(logits[:, :-1].double() / temperature, dim=-1)
    lp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    ent = -(logp.exp() * logp).sum(-1)
    keep = ((mask[:, :-1] == 1) & (mask[:, 1:] == 1)).tolist()
    return lp, ent, keep


@torch.no_grad()
def tiny_golden(model, vocab, seed):
    seqs = sequences(vocab, seed)
    ids, mask = pad(seqs, left=False)
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    lp, ent, keep = next_token_stats(logits, ids, mask)
    lp07, _, _ = next_token_stats(logits, ids, mask, temperature=0.7)
    real = (mask == 1).tolist()

    lids, lmask = pad(seqs, left=True)
    pos = (lmask.cumsum(-1) - 1).clamp(min=0)
    llogits = model(input_ids=lids, attention_mask=lmask, position_ids=pos).logits.float()
    llp, lent, lkeep = next_token_stats(llogits, lids, lmask)
    lreal = (lmask == 1).tolist()

    # Both paddings must give the same logits at real tokens, or a fixture is wrong.
    t = ids.shape[1]
    for b, n in enumerate(LENGTHS):
        diff = (logits[b, :n] - llogits[b, t - n :]).abs().max().item()
        assert diff < 1e-4, f"left/right padding disagree by {diff}"

    return {
        "description": "HF transformers eager float32; null marks padded positions",
        "pad_id": PAD_ID,
        "lengths": LENGTHS,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "logits": tensor_list(logits, real),
        "logprobs": tensor_list(lp, keep),
        "entropies": tensor_list(ent, keep),
        "temperature_0.7_logprobs": tensor_list(lp07, keep),
        "left_padded": {
            "input_ids": lids.tolist(),
            "attention_mask": lmask.tolist(),
            "position_ids": pos.tolist(),
            "logits": tensor_list(llogits, lreal),
            "logprobs": tensor_list(llp, lkeep),
            "entropies": tensor_list(lent, lkeep),
        },
    }


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def make_tiny():
    for name, (cfg_cls, model_cls, extra, seed) in TINY.items():
        torch.manual_seed(seed)
        cfg = make_config(cfg_cls, extra)
        model = model_cls(cfg).eval()
        init_weights(model, seed)
        if cfg.tie_word_embeddings:
            model.tie_weights()
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        out = FIXTURES / "tiny" / name
        if out.exists():
            shutil.rmtree(out)
        model.save_pretrained(out, safe_serialization=True)
        # Reload from disk so the goldens come from exactly what the Rust side will read.
        model = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        write_json(out / "golden.json", tiny_golden(model, cfg.vocab_size, seed))
        for extra_file in out.iterdir():
            if extra_file.name not in ("config.json", "model.safetensors", "golden.json"):
                extra_file.unlink()
        # safetensors writes via a 0600 temp file; fixtures should be world-readable.
        os.chmod(out / "model.safetensors", 0o644)
        print(f"wrote {out}")

    src = FIXTURES / "tiny" / "llama"
    dst = FIXTURES / "tiny" / "llama_rope_params"
    dst.mkdir(parents=True, exist_ok=True)
    with open(src / "config.json") as f:
        cfg = json.load(f)
    with open(dst / "config.json", "w") as f:
        json.dump(other_rope_layout(cfg), f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(src / "model.safetensors", dst / "model.safetensors")
    os.chmod(dst / "model.safetensors", 0o644)
    print(f"wrote {dst}")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def gguf_golden(folder, file):
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=file, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    messages = [{"role": "user", "content": QUESTION}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids

    logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits.double(), dim=-1)
    lp = logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
    top = torch.topk(logits[-1], TOP_N)

    # Greedy by hand, without stopping at EOS, so there are always GREEDY_STEPS tokens to
    # compare; full recompute each step keeps the reference free of KV-cache code.
    seq = ids
    greedy, margins, greedy_lp = [], [], []
    for _ in range(GREEDY_STEPS):
        last = model(input_ids=seq).logits[0, -1].float()
        two = torch.topk(last, 2)
        nxt = int(two.indices[0])
        greedy.append(nxt)
        margins.append(f32(two.values[0] - two.values[1]))
        greedy_lp.append(f32(torch.log_softmax(last.double(), -1)[nxt]))
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)

    return {
        "file": file,
        "sha256": sha256(Path(folder) / file),
        "model_type": model.config.model_type,
        "vocab_size": model.config.vocab_size,
        "question": QUESTION,
        "prompt": prompt,
        "input_ids": ids[0].tolist(),
        "logprobs": [f32(v) for v in lp.tolist()],
        "top20": {"ids": top.indices.tolist(), "logits": [f32(v) for v in top.values.tolist()]},
        "greedy_ids": greedy,
        "greedy_text": tok.decode(greedy, skip_special_tokens=False),
        "greedy_logprobs": greedy_lp,
        "greedy_margins": margins,
    }


def make_gguf():
    folder = os.environ.get("SRLM_MODELS", os.path.expanduser("~/.cache/srlm-models"))
    out = {
        "description": "transformers GGUF loader, dequantized to float32, eager; logprobs[i] = "
        "log p(input_ids[i+1] | input_ids[..=i]) at T=1; top20 = last prompt position, logits "
        "descending; greedy_ids = argmax decoding for 16 steps without stopping at EOS; "
        "greedy_margins = top1 - top2 logit at each step",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "models": [gguf_golden(folder, f) for f in GGUF_FILES],
    }
    write_json(FIXTURES / "gguf_golden.json", out)
    print(f"wrote {FIXTURES / 'gguf_golden.json'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-gguf", action="store_true", help="only write the tiny models")
    ap.add_argument("--skip-tiny", action="store_true", help="only write gguf_golden.json")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if not args.skip_tiny:
        make_tiny()
    if not args.skip_gguf:
        make_gguf()


if __name__ == "__main__":
    main()
