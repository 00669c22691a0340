"""Golden values for srlm's AdamW: torch.optim.AdamW (two parameter groups: matrices with weight
decay, biases and norms without), torch.nn.utils.clip_grad_norm_, and LambdaLR with
transformers' warmup + cosine schedule, on fixed gradients.

Writes tests/fixtures/optim_golden.json. Run: python3 scripts/optim_reference.py
"""
import json
import math
import pathlib

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/optim_golden.json"
LR, WD, BETAS, EPS, MAX_NORM = 0.01, 0.1, (0.9, 0.999), 1e-8, 1.0
WARMUP, TOTAL = 2, 6
SHAPES = {
    "model.layers.0.mlp.up_proj.weight": (3, 4),
    "model.layers.0.self_attn.q_proj.bias": (4,),
    "model.norm.weight": (4,),
}


def cosine_with_warmup(step):
    if step < WARMUP:
        return step / max(1, WARMUP)
    progress = (step - WARMUP) / max(1, TOTAL - WARMUP)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def main():
    rng = np.random.default_rng(7)
    init = {n: rng.normal(size=s) for n, s in SHAPES.items()}
    # Gradient scales: small steps stay under the clipping threshold, large ones are clipped.
    scales = [0.05, 0.1, 3.0, 0.08, 10.0, 0.2]
    grads = [{n: (rng.normal(size=s) * k) for n, s in SHAPES.items()} for k in scales]

    params = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in init.items()}
    decay = [p for n, p in params.items() if n.endswith("weight") and p.dim() >= 2]
    no_decay = [p for n, p in params.items() if not (n.endswith("weight") and p.dim() >= 2)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=EPS, foreach=False,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup)
    steps = []
    for g in grads:
        for n, p in params.items():
            p.grad = torch.tensor(g[n], dtype=torch.float64)
        norm = float(torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM))
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        steps.append(dict(grads={n: v.tolist() for n, v in g.items()}, grad_norm=norm, lr=lr,
                          params={n: p.detach().tolist() for n, p in params.items()}))
    golden = dict(lr=LR, weight_decay=WD, beta1=BETAS[0], beta2=BETAS[1], eps=EPS, max_grad_norm=MAX_NORM,
                  warmup_steps=WARMUP, total_steps=TOTAL, init={n: v.tolist() for n, v in init.items()},
                  steps=steps)
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}: norms", [round(s["grad_norm"], 3) for s in steps], "lrs", [s["lr"] for s in steps])


if __name__ == "__main__":
    main()
