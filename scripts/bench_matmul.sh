#!/usr/bin/env bash
# GFLOP/s of the model's matrix products: candle's gemm and the system BLAS (`srlm bench matmul`
# built with --features blas), then PyTorch f32 and bf16 (scripts/bench_matmul.py), twice, interleaved.
# Usage: scripts/bench_matmul.sh [SHAPES] [LAYOUTS]   (needs: apt-get install libopenblas-dev; pip install torch)
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=${1:-3200x896x896,3200x896x4864,3200x4864x896,16x896x896,16x896x151936}
LAYOUTS=${2:-nt,nn,tn}
cargo build --release --quiet --features blas
for round in 1 2; do
  ./target/release/srlm bench matmul --shapes "$SHAPES" --layouts "$LAYOUTS"
  python3 scripts/bench_matmul.py "$SHAPES" "$LAYOUTS"
done
