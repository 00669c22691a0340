#!/usr/bin/env bash
# The GPU check (issue 13), one device call of at most ~9 minutes, from the repo root:
#   device run, carry [".gpu"], command `bash scripts/gpu/check.sh`, timeout_s 590
# Needs .gpu/ (built here by scripts/gpu/build.sh): bin.tar.xz (srlm + cuda_parity), build_root,
# and qwen-src/ (config.json + tokenizer files of Qwen2.5-0.5B, from a CPU build's `srlm export`:
#   srlm export --model ~/.cache/srlm-models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --out /tmp/q
#   mkdir -p .gpu/qwen-src && cp /tmp/q/*.json .gpu/qwen-src/). Steps, most
# important first, each cut at its own limit and at the call's deadline:
#   CUDA tests; group generation G = 16, 64, 256 × 512 tokens beside transformers `generate`,
#   and 16 groups of 16 in flight (continuous batching);
#   a learner step on 16 × 1,024 tokens beside a PyTorch step; weight-sync seconds;
#   20 GRPO steps of the tiny default on CUDA; 3 GRPO steps with the learner on the CPU and a
#   generator on cuda:0 (Qwen2.5-0.5B shapes).
# Writes JSON lines to $OUT/bench.jsonl and logs beside it (copy them to scripts/gpu/results/).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
DEADLINE=$((SECONDS + ${SRLM_CHECK_SECONDS:-560}))
exec > >(tee -a "$OUT/check.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
LIB=$(python3 -c "import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],'cu13','lib'))")
export LD_LIBRARY_PATH=$LIB:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
tar xJf .gpu/bin.tar.xz -C .gpu
ldd .gpu/srlm | grep "not found" && { echo "missing CUDA libraries (looked in $LIB)"; ls "$LIB"; }
# Test binaries find their fixtures at the path they were built in.
mkdir -p "$(dirname "$(cat .gpu/build_root)")" && ln -sfn "$PWD" "$(cat .gpu/build_root)"
S=.gpu/srlm; M=/tmp/qwen-rand; J="$OUT/bench.jsonl"

# step NAME LIMIT CMD...: runs CMD under min(LIMIT, time left), says how it ended.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE - SECONDS))
  if ((left < 15)); then echo "== $name: skipped, $left s left" >&2; return 1; fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit}s, t=${SECONDS}s)" >&2
  local t0=$SECONDS; timeout "$limit" bash -c '"$@"' _ "$@"; local rc=$?
  echo "== $name: rc $rc in $((SECONDS - t0))s" >&2
  return $rc
}
# Peak GPU memory (MiB, nvidia-smi every 100 ms) while CMD runs, as a JSON line.
peak() {
  local label=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem.log & local pid=$!
  "$@"; local rc=$?
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
  local line="{\"what\":\"gpu_peak\",\"run\":\"$label\",\"peak_mib\":$(sort -n /tmp/mem.log | tail -1)}"
  echo "$line" >> "$J"; echo "$line" >&2
  return $rc
}

export -f peak; export J
python3 scripts/gpu/make_random_model.py .gpu/qwen-src $M bfloat16 > /tmp/make_model.log 2>&1 &
MAKE=$!
step cuda_parity 150 .gpu/cuda_parity --test-threads 1 > "$OUT/cuda_parity.log" 2>&1; tail -15 "$OUT/cuda_parity.log"
wait $MAKE; cat /tmp/make_model.log

for G in 16 64 256; do
  step "srlm gen G=$G" 120 peak "srlm_gen_$G" $S bench generate --model $M --device cuda:0 --dtype bf16 --n $G --new-tokens 512 --runs 1 \
    | sed "s/^{/{\"arch\":\"qwen\",/" | tee -a "$J"
  step "torch gen G=$G" 100 python3 scripts/gpu/peer_gpu.py $M $G 512 bf16 2>/dev/null | sed "s/^{/{\"arch\":\"qwen\",/" | tee -a "$J"
done
# 256 rows in flight as 16 groups of 16 (continuous batching, as a generator runs them).
step "srlm gen 16 groups x 16" 120 peak "srlm_gen_16x16" $S bench generate --model $M --device cuda:0 --dtype bf16 --n 16 --groups 16 \
  --new-tokens 512 --runs 1 | sed "s/^{/{\"arch\":\"qwen\",/" | tee -a "$J"
# 16 × 1,024 tokens: the chat prompt (68 tokens) + 956 completion tokens.
step "torch train bf16" 90 python3 scripts/gpu/peer_train_gpu.py $M 16 956 bf16 2 2>/dev/null | tee -a "$J"
for dt in bf16 f32; do
  step "srlm train $dt" 120 peak "srlm_train_$dt" $S bench train --model $M --device cuda:0 --dtype $dt --batch 16 --new-tokens 956 \
    --micro-batch 4 --steps 2 --warmup 1 | tee -a "$J"
done
step "weight sync" 90 bash -c "$S bench sync --model $M --device cpu --dtype f32 --to cuda:0 --runs 3; \
  $S bench sync --model $M --device cpu --dtype f32 --to cuda:0 --to-dtype bf16 --runs 3" | tee -a "$J"
step "sampler top-p G=64" 60 $S bench generate --model $M --device cuda:0 --dtype bf16 --n 64 --new-tokens 256 --top-p 0.95 \
  --temperature 0.6 | tee -a "$J"
step "tiny default on cuda, 20 GRPO steps" 150 $S train --config scripts/gpu/tiny_cuda.toml --device cuda:0 > "$OUT/runs.log" 2>&1
tail -8 "$OUT/runs.log"; cat /tmp/srlm-run-tiny-cuda/run-stage-1.json 2>/dev/null | tr -d '\n ' | tee -a "$J"; echo
step "split learner cpu + generator cuda:0" 150 $S train --config scripts/gpu/qwen_split_grpo.toml >> "$OUT/runs.log" 2>&1
tail -6 "$OUT/runs.log"; cat /tmp/srlm-run-split/run-stage-0.json 2>/dev/null | tr -d '\n ' | tee -a "$J"; echo
echo "== done at t=${SECONDS}s"
