"""PyTorch's GFLOP/s on the shapes and layouts of `srlm bench matmul` (f32 and bf16), one JSON
line per product, in the same format.  Usage: bench_matmul.py [SHAPES] [LAYOUTS] [RUNS]"""
import json, sys, time
import torch

shapes = (sys.argv[1] if len(sys.argv) > 1 else
          "3200x896x896,3200x896x4864,3200x4864x896,16x896x896,16x896x151936").split(",")
layouts = (sys.argv[2] if len(sys.argv) > 2 else "nt,nn,tn").split(",")
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
dtypes = (sys.argv[4] if len(sys.argv) > 4 else "f32,bf16").split(",")

def operands(layout, m, k, n, dt):
    r = lambda *s: torch.randn(*s).to(dt)
    if layout == "nt": return r(m, k), r(n, k).t()
    if layout == "nn": return r(m, k), r(k, n)
    if layout == "tn": return r(k, m).t(), r(k, n)
    raise SystemExit(f"layout {layout!r} is not one of nt, nn, tn")

with torch.no_grad():
    for shape in shapes:
        m, k, n = map(int, shape.split("x"))
        for layout in layouts:
            for name in dtypes:
                dt = {"f32": torch.float32, "bf16": torch.bfloat16}[name]
                a, b = operands(layout, m, k, n, dt)
                a @ b
                best = float("inf")
                cpu = time.process_time()
                for _ in range(runs):
                    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
                cpu = (time.process_time() - cpu) / runs
                print(json.dumps({"impl": "torch", "what": "matmul", "dtype": name, "shape": shape,
                                  "layout": layout, "seconds": best,
                                  "gflops": round(2 * m * k * n / best / 1e9, 1),
                                  "gflop_per_cpu_s": round(2 * m * k * n / cpu / 1e9, 1)}), flush=True)
