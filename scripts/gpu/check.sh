#!/usr/bin/env bash
# The GPU check, run on a lent GPU machine from the repo root (see BENCHMARKS.md, "GPU"):
# CUDA tests against the CPU references, srlm-vs-PyTorch log-prob agreement on the GPU, and
# group-generation throughput beside the PyTorch peer, for Qwen 0.5B and SmolLM2 shapes.
# Needs .gpu/ (carried): bin.tar.xz (srlm + cuda_parity test binary, built by scripts/gpu/build.sh)
# and {qwen,smol}-src/ (config.json + tokenizer files). Writes JSON lines to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
LIB=$(python3 -c "import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],'cu13','lib'))")
export LD_LIBRARY_PATH=$LIB:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
tar xJf .gpu/bin.tar.xz -C .gpu
ldd .gpu/srlm | grep "not found" && { echo "missing CUDA libraries (looked in $LIB)"; ls "$LIB"; }
# Test binaries find their fixtures at the path they were built in.
mkdir -p "$(dirname "$(cat .gpu/build_root)")" && ln -sfn "$PWD" "$(cat .gpu/build_root)"
.gpu/cuda_parity --test-threads 1 2>&1 | tee "$OUT/cuda_parity.log" | tail -12
PROMPT=$'<|im_start|>user\nWhat is 7 + 5?<|im_end|>\n<|im_start|>assistant\n'
COMPLETION="7 + 5 equals 12, because counting five more from seven gives twelve."
for m in qwen smol; do
  python3 scripts/gpu/make_random_model.py .gpu/$m-src /tmp/$m-rand bfloat16 || continue
  for dt in bf16 f32; do
    for G in 16 64; do
      .gpu/srlm bench generate --model /tmp/$m-rand --device cuda:0 --dtype $dt --n $G --new-tokens 128 --runs 2 \
        | sed "s/^{/{\"dtype\":\"$dt\",\"arch\":\"$m\",/" | tee -a "$OUT/bench.jsonl"
      python3 scripts/gpu/peer_gpu.py /tmp/$m-rand $G 128 $dt "$PROMPT" "$COMPLETION" 2>/dev/null \
        | sed "s/^{/{\"arch\":\"$m\",/" | tee -a "$OUT/bench.jsonl" > "$OUT/peer_${m}_${dt}_$G.jsonl"
    done
    .gpu/srlm logprobs --model /tmp/$m-rand --device cuda:0 --dtype $dt --prompt "$PROMPT" --completion "$COMPLETION" \
      --json > "$OUT/ours_${m}_$dt.json" \
      && python3 scripts/gpu/compare_logprobs.py "$OUT/ours_${m}_$dt.json" "$OUT/peer_${m}_${dt}_16.jsonl" "$m $dt" \
      | tee -a "$OUT/bench.jsonl"
  done
done
