#!/usr/bin/env bash
# Group-generation throughput, srlm beside the PyTorch + transformers peer, in one run.
# Usage: scripts/bench_generate.sh [G] [N]   (needs: pip install torch transformers gguf accelerate)
set -euo pipefail
cd "$(dirname "$0")/.."
G=${1:-16}; N=${2:-128}
MODELS=${SRLM_MODELS:-$HOME/.cache/srlm-models}
PEER=${SRLM_PEER:-../shared/bench/peer_torch.py}
cargo build --release --quiet
for f in smollm2-135m-instruct-q4_1.gguf qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; do
  ./target/release/srlm bench generate --model "$MODELS/$f" --n "$G" --new-tokens "$N"
  python3 "$PEER" "$MODELS" "$f" "$G" "$N" 2>/dev/null | grep '"gen"'
done
