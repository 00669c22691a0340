#!/usr/bin/env python3
"""PEFT reference for srlm's LoRA: adapters written by PEFT must load in srlm, and adapters
written by srlm must load in PEFT, giving the same logits.

  python3 scripts/peft_reference.py fixture
      Writes tests/fixtures/tiny/lora_peft/{adapter_config.json, adapter_model.safetensors,
      golden.json}: a PEFT LoRA adapter (r=4, alpha=6, all seven projections, seeded random A
      and B so the branch is not zero) on tests/fixtures/tiny/qwen2, and the logits of the
      wrapped model on fixed ids, plus layer 0's merged q_proj W + (alpha/r)·B·A as PEFT's
      merge_and_unload computes it.
  python3 scripts/peft_reference.py logits BASE_DIR ADAPTER_DIR IDS_JSON
      Prints, as JSON, the logits (b, t, v) of BASE_DIR with the adapter in ADAPTER_DIR on the
      ids in IDS_JSON (a list of equal-length rows); used by tests/lora.rs when python3 and peft
      are installed.

Committed fixtures: torch 2.15 (CPU), transformers 5.24.0, peft 0.21.2, Python 3.11.7.
"""
import json
import sys
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "tests/fixtures/tiny/qwen2"
OUT = ROOT / "tests/fixtures/tiny/lora_peft"
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
IDS = [[1, 17, 42, 5, 88, 3, 60, 9], [1, 33, 2, 71, 14, 95, 26, 40]]


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids)).logits


def fixture():
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=6, lora_dropout=0.0, target_modules=MODULES, task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    # PEFT starts B at zero; random factors make the adapter's contribution visible.
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.data = torch.randn_like(p) * 0.2
    model.eval()
    model.save_pretrained(OUT)
    (OUT / "README.md").unlink(missing_ok=True)  # PEFT's model card template
    config_path = OUT / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "tests/fixtures/tiny/qwen2"  # not this machine's path
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    logits = logits_of(model, IDS)
    layer0 = model.base_model.model.model.layers[0].self_attn.q_proj
    merged = layer0.base_layer.weight + layer0.get_delta_weight("default")
    golden = {
        "description": "PEFT LoRA r=4 alpha=6 on tiny/qwen2; logits of the wrapped model",
        "ids": IDS,
        "logits": logits.tolist(),
        "merged_layer0_q_proj": merged.detach().tolist(),
    }
    (OUT / "golden.json").write_text(json.dumps(golden) + "\n")
    print(f"wrote {OUT}")


def logits(base_dir, adapter_dir, ids_json):
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    ids = json.loads(Path(ids_json).read_text())
    print(json.dumps(logits_of(model, ids).tolist()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["fixture"]:
        fixture()
    elif sys.argv[1:2] == ["logits"] and len(sys.argv) == 5:
        logits(*sys.argv[2:])
    else:
        sys.exit(__doc__)
