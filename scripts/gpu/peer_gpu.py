"""The PyTorch + transformers peer on the GPU: the workload of ../shared/bench/peer_torch.py
(one GSM8K chat prompt, G sampled completions of exactly N tokens, T = 1), plus the per-token
log-probs of one fixed completion for the CUDA agreement check.
Usage: peer_gpu.py MODEL_DIR G N dtype [RAW_PROMPT COMPLETION_TEXT] ; prints JSON lines.
SRLM_PEER_RUNS (default 1) timed runs after a 16-token warm-up; the best is reported.
"""
import json, os, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer

d, G, N, dt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runs = int(os.environ.get("SRLM_PEER_RUNS", "1"))
dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dt]
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype).cuda().eval()
q = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
     "How many clips did Natalia sell altogether in April and May?")
prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
ids = tok(prompt, return_tensors="pt").to("cuda")

def gen(n):
    with torch.no_grad():
        torch.cuda.synchronize(); t = time.perf_counter()
        model.generate(**ids, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, num_return_sequences=G,
                       max_new_tokens=n, min_new_tokens=n, pad_token_id=tok.pad_token_id or 0)
        torch.cuda.synchronize(); return time.perf_counter() - t

gen(min(N, 16))
torch.cuda.reset_peak_memory_stats()
best = min(gen(N) for _ in range(runs))
print(json.dumps({"peer": "torch", "what": "gen", "device": torch.cuda.get_device_name(), "dtype": dt, "G": G,
                  "N": N, "seconds": round(best, 3), "tokens_per_s": round(G * N / best, 1),
                  "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "torch": torch.__version__}), flush=True)
if len(sys.argv) > 6:
    p = tok(sys.argv[5], add_special_tokens=False)["input_ids"]
    c = tok(sys.argv[6], add_special_tokens=False)["input_ids"]
    x = torch.tensor([p + c], device="cuda")
    with torch.no_grad():
        lp = torch.log_softmax(model(x).logits.float()[0, :-1], -1).gather(-1, x[0, 1:, None]).squeeze(-1)
    print(json.dumps({"peer": "torch", "what": "logprobs", "dtype": dt, "prompt_ids": p, "completion_ids": c,
                      "logprobs": lp[len(p) - 1:].tolist()}), flush=True)
