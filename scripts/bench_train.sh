#!/usr/bin/env bash
# Learner throughput (forward + backward + AdamW on a G × (prompt + N) batch), the PyTorch peer
# first, then srlm with candle's gemm and with the system BLAS, in one run, for SmolLM2 and Qwen 0.5B.
# Usage: scripts/bench_train.sh [G] [N]   (needs: apt-get install libopenblas-dev;
#        pip install torch transformers gguf accelerate). The peer also times generation first.
set -euo pipefail
cd "$(dirname "$0")/.."
G=${1:-16}; N=${2:-128}
MODELS=${SRLM_MODELS:-$HOME/.cache/srlm-models}
PEER=${SRLM_PEER:-../shared/bench/peer_torch.py}
BIN=$(mktemp -d)
cargo build --release --quiet && cp target/release/srlm "$BIN/srlm-candle"
cargo build --release --quiet --features blas && cp target/release/srlm "$BIN/srlm-blas"
for f in smollm2-135m-instruct-q4_1.gguf qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; do
  python3 "$PEER" "$MODELS" "$f" "$G" "$N" 2>/dev/null | grep '"train"' || echo '{"peer": "torch", "what": "train", "model": "'"$f"'", "failed": true}'
  "$BIN/srlm-candle" bench train --model "$MODELS/$f" --batch "$G" --new-tokens "$N"
  "$BIN/srlm-blas" bench train --model "$MODELS/$f" --batch "$G" --new-tokens "$N"
done
rm -rf "$BIN"
