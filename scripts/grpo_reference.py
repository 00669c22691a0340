"""Golden values for the GRPO loss: an independent PyTorch implementation written from TRL's
GRPOTrainer definitions (loss types grpo/bnpo/dr_grpo/dapo, token- or sequence-level importance
ratios, clip-higher, truncated IS cap, k3 KL with beta).

Writes tests/fixtures/grpo_golden.json: the inputs, and for every case the loss and
d loss / d (current log-probs). Run: python3 scripts/grpo_reference.py
"""
import json
import pathlib

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/grpo_golden.json"

B, T = 5, 7
MAX_COMPLETION_LEN = 8
EPS_LOW, EPS_HIGH = 0.2, 0.28


def inputs():
    rng = np.random.default_rng(20250611)
    # Completion tokens start after a prompt of varying length and end at varying lengths;
    # row 4 is a truncated completion that has been masked out entirely.
    starts = [1, 2, 0, 3, 0]
    ends = [7, 5, 4, 7, 6]
    mask = np.zeros((B, T))
    for i, (s, e) in enumerate(zip(starts, ends)):
        mask[i, s:e] = 1.0
    mask[4] = 0.0
    behaviour = -rng.uniform(0.2, 3.0, size=(B, T))
    # Per-row drift so that sequence-level ratios leave the clip range in both directions.
    drift = np.array([0.5, -0.45, 0.05, 0.3, 0.1])[:, None]
    current = behaviour + drift + rng.uniform(-0.6, 0.6, size=(B, T))
    reference = behaviour + rng.uniform(-0.5, 0.5, size=(B, T))
    advantages = np.array([1.2, -0.7, 0.4, -1.1, 0.9])
    entropies = rng.uniform(0.5, 2.5, size=(B, T))
    return dict(current=current, behaviour=behaviour, reference=reference, mask=mask,
                advantages=advantages, entropies=entropies)


def loss_and_grad(x, loss_type, level, beta, cap, global_tokens):
    cur = torch.tensor(x["current"], requires_grad=True)
    old = torch.tensor(x["behaviour"])
    ref = torch.tensor(x["reference"])
    mask = torch.tensor(x["mask"])
    adv = torch.tensor(x["advantages"]).unsqueeze(1)

    log_ratio = cur - old
    if level == "token":
        log_w = log_ratio
    else:
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(log_w)
    coef_2 = torch.clamp(coef_1, 1 - EPS_LOW, 1 + EPS_HIGH)
    if cap is not None:
        coef_1 = torch.clamp(coef_1, max=cap)
    per_token = -torch.min(coef_1 * adv, coef_2 * adv)
    if beta != 0.0:
        kl = torch.exp(ref - cur) - (ref - cur) - 1
        per_token = per_token + beta * kl
    per_token = per_token * mask  # broadcasts (B, 1) sequence losses over tokens
    if loss_type == "grpo":
        loss = (per_token.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = per_token.sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = per_token.sum() / (B * MAX_COMPLETION_LEN)
    elif loss_type == "dapo":
        loss = per_token.sum() / global_tokens
    else:
        raise ValueError(loss_type)
    loss.backward()

    r = coef_1.detach().expand(B, T) if cap is None else torch.exp(log_w).detach().expand(B, T)
    n = mask.sum()
    stats = dict(
        ratio_mean=float((r * mask).sum() / n),
        clip_low=float((((r < 1 - EPS_LOW) & (adv < 0)) * mask).sum() / n),
        clip_high=float((((r > 1 + EPS_HIGH) & (adv > 0)) * mask).sum() / n),
    )
    return float(loss.detach()), cur.grad.tolist(), stats


def main():
    x = inputs()
    global_tokens = float(x["mask"].sum()) + 9.0  # as if other micro-batches held 9 more tokens
    cases = []
    for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo"]:
        for level in ["token", "sequence"]:
            for beta in [0.0, 0.04]:
                for cap in [None, 1.5] if (level, beta) == ("token", 0.0) else [None]:
                    loss, grad, stats = loss_and_grad(x, loss_type, level, beta, cap, global_tokens)
                    cases.append(dict(loss_type=loss_type, ratio_level=level, beta=beta, ratio_cap=cap,
                                      loss=loss, grad=grad, **stats))
    golden = dict(
        inputs={k: v.tolist() for k, v in x.items()},
        epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, max_completion_len=MAX_COMPLETION_LEN,
        global_tokens=global_tokens, cases=cases,
    )
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")
    for c in cases:
        print(c["loss_type"], c["ratio_level"], c["beta"], c["ratio_cap"], round(c["loss"], 6),
              "clip", round(c["clip_low"], 3), round(c["clip_high"], 3))


if __name__ == "__main__":
    main()
