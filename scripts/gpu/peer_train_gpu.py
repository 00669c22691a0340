"""The PyTorch peer of `srlm bench train` on the GPU: one learner step on G sequences of the GSM8K
chat prompt + N pseudo-random completion tokens; −mean completion log-prob (srlm's `--loss nll`),
backward, torch AdamW. Master weights and AdamW moments f32, compute in bf16 autocast (what
TRL/verl-style trainers do), or plain f32 with dtype f32.
Usage: peer_train_gpu.py MODEL_DIR G N dtype [steps] ; prints one JSON line.
"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer

d, G, N, dt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
steps = int(sys.argv[5]) if len(sys.argv) > 5 else 2
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).cuda().train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
q = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
     "How many clips did Natalia sell altogether in April and May?")
prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
p = tok(prompt, add_special_tokens=False)["input_ids"]
g = torch.Generator().manual_seed(0)
comp = torch.randint(0, model.config.vocab_size, (G, N), generator=g)
x = torch.cat([torch.tensor(p).repeat(G, 1), comp], 1).cuda()
P = len(p)

def step():
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dt == "bf16"):
        logits = model(x).logits[:, P - 1:-1].float()
    lp = torch.log_softmax(logits, -1).gather(-1, x[:, P:, None]).squeeze(-1)
    loss = -lp.mean()
    loss.backward()
    opt.step(); opt.zero_grad(set_to_none=True)
    return loss.item()

step()
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
for _ in range(steps):
    loss = step()
torch.cuda.synchronize()
s = (time.perf_counter() - t) / steps
params = sum(q.numel() for q in model.parameters())
tokens = G * (P + N)
print(json.dumps({"peer": "torch", "what": "train", "dtype": dt, "G": G, "seq": P + N, "seconds": round(s, 3),
                  "tokens_per_s": round(tokens / s, 1), "params": params,
                  "mfu_989": round(6 * params * tokens / s / 989e12, 4),
                  "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "loss": loss,
                  "torch": torch.__version__}), flush=True)
