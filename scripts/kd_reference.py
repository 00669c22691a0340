#!/usr/bin/env python3
"""PyTorch reference for srlm's distillation KL (src/learner/kd.rs::chunk_kl).

Writes tests/fixtures/kd_reference.json: seeded random student and teacher logits (6 rows,
vocab 11, one row with a large spread), and for temperatures 1 and 2 and both directions the
per-row KL and the gradient of sum(w · KL) with respect to the student logits, computed with
torch.nn.functional.kl_div on log_softmax(logits / T).

  forward: KL(teacher || student) = sum p_t (log p_t - log p_s)
  reverse: KL(student || teacher) = sum p_s (log p_s - log p_t)

Usage: python3 scripts/kd_reference.py   (torch 2.15 CPU, Python 3.11.7 for the committed file)
"""
import json
from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/kd_reference.json"


def main():
    g = torch.Generator().manual_seed(7)
    student = torch.randn(6, 11, generator=g, dtype=torch.float64) * 2
    teacher = torch.randn(6, 11, generator=g, dtype=torch.float64) * 2
    student[3] *= 8  # a peaked row: checks the max-shift
    w = torch.rand(6, generator=g, dtype=torch.float64)
    cases = []
    for temperature in (1.0, 2.0):
        for direction in ("forward", "reverse"):
            s = student.clone().requires_grad_(True)
            log_s = F.log_softmax(s / temperature, dim=-1)
            log_t = F.log_softmax(teacher / temperature, dim=-1)
            if direction == "forward":
                kl = F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(-1)
            else:
                kl = F.kl_div(log_t, log_s, log_target=True, reduction="none").sum(-1)
            (kl * w).sum().backward()
            cases.append({
                "temperature": temperature,
                "direction": direction,
                "kl": kl.detach().tolist(),
                "grad": s.grad.tolist(),
            })
    OUT.write_text(json.dumps({
        "student": student.tolist(),
        "teacher": teacher.tolist(),
        "weights": w.tolist(),
        "cases": cases,
    }) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
