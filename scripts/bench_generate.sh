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
  # The peer goes on to a training step after generation: stop it once its "gen" line is out.
  out=$(mktemp); python3 "$PEER" "$MODELS" "$f" "$G" "$N" >"$out" 2>/dev/null & pid=$!
  until grep -q '"gen"' "$out" || ! kill -0 "$pid" 2>/dev/null; do sleep 1; done
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  grep '"gen"' "$out" || echo '{"peer": "torch", "what": "gen", "model": "'"$f"'", "failed": true}'; rm -f "$out"
done
