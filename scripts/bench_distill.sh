#!/usr/bin/env bash
# Teacher sampling: per-problem groups (the binary before 7e712ee) vs batches of problems (after),
# same problems, same machine, one after the other. OLD and NEW name the two binaries.
set -e
cd "$(dirname "$0")/.."
M=~/.cache/srlm-models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
i=0
for b in ${OLD:-/tmp/srlm-old} ${NEW:-target/release/srlm}; do
  i=$((i+1))
  start=$(date +%s.%N)
  CANDLE_NUM_THREADS=2 $b distill --teacher $M --data ../shared/data/gsm8k/train.jsonl --limit 16 --n 4 --max-new-tokens 128 --temperature 0.8 --out /tmp/bench-traces-$i.jsonl 2>&1 | tail -1
  end=$(date +%s.%N)
  echo "$b: $(echo "$end - $start" | bc) s"
done
