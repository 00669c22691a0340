#!/usr/bin/env bash
# Learner throughput (forward + backward + AdamW on a G × (prompt + N) batch): the PyTorch peer
# and srlm alternated ROUNDS times in one run, for SmolLM2 and Qwen 0.5B, so the ratio is read
# under the same machine load. Each round runs srlm twice: the whole batch as one micro-batch on
# all cores, and two half-batch micro-batches in two lanes (`--lanes 2`, one core each).
# BLAS=1 also runs srlm built with --features blas.
# Usage: scripts/bench_train.sh [G] [N] [ROUNDS]   (pip install torch transformers gguf accelerate;
#        the peer times generation first, then its training step).
set -euo pipefail
cd "$(dirname "$0")/.."
G=${1:-16}; N=${2:-128}; ROUNDS=${3:-2}
MODELS=${SRLM_MODELS:-$HOME/.cache/srlm-models}
PEER=${SRLM_PEER:-../shared/bench/peer_torch.py}
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
cargo build --release --quiet && cp target/release/srlm "$BIN/srlm"
if [ "${BLAS:-0}" = 1 ]; then
  cargo build --release --quiet --features blas && cp target/release/srlm "$BIN/srlm-blas"
fi
for f in smollm2-135m-instruct-q4_1.gguf qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; do
  for _ in $(seq "$ROUNDS"); do
    python3 "$PEER" "$MODELS" "$f" "$G" "$N" 2>/dev/null | grep '"train"' || echo '{"peer": "torch", "what": "train", "model": "'"$f"'", "failed": true}'
    "$BIN/srlm" bench train --model "$MODELS/$f" --batch "$G" --new-tokens "$N" --steps 3
    "$BIN/srlm" bench train --model "$MODELS/$f" --batch "$G" --new-tokens "$N" --steps 3 --micro-batch $(( (G + 1) / 2 )) --lanes 2
    if [ -x "$BIN/srlm-blas" ]; then
      "$BIN/srlm-blas" bench train --model "$MODELS/$f" --batch "$G" --new-tokens "$N" --steps 3
    fi
  done
done
