"""Writes a randomly initialised checkpoint with a real model's config and tokenizer files.

The GPU machine cannot reach the hub and our GGUFs are too large to carry, so the GPU check
measures speed and CUDA-vs-PyTorch agreement on random weights of the real shapes.
Usage: make_random_model.py SRC_DIR (config.json + tokenizer files) OUT_DIR [dtype]
"""
import shutil, sys, torch
from pathlib import Path
from transformers import AutoConfig, AutoModelForCausalLM

src, out = Path(sys.argv[1]), Path(sys.argv[2])
dtype = getattr(torch, sys.argv[3] if len(sys.argv) > 3 else "bfloat16")
torch.manual_seed(0)
cfg = AutoConfig.from_pretrained(src)
model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
model.save_pretrained(out)
for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
    if (src / f).exists():
        shutil.copy(src / f, out / f)
print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters, {dtype}")
