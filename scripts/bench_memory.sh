#!/usr/bin/env bash
# Peak resident memory and wall time of a short real-model GRPO run under different glibc malloc
# settings, alternated ROUNDS times in one run (the machine's load is shared and noisy). Prints
# one JSON line per run. The recipe's out_dir is replaced by a temporary folder.
# Run it alone: each run serves metrics on the recipe's port, as srlm train does.
# Usage: scripts/bench_memory.sh [RECIPE] [GRPO_STEPS] [ROUNDS]
#   SETTINGS="default mmap1m arena2" picks the variants (GLIBC_TUNABLES of each below).
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${1:-configs/grpo_boxed_fixed10_lora_gsm8k_cpu_qwen2.5-coder-0.5b.toml}
STEPS=${2:-4}; ROUNDS=${3:-1}
SETTINGS=${SETTINGS:-"default mmap1m"}
BIN=${SRLM_BIN:-target/release/srlm}
[ -x "$BIN" ] || cargo build --release --quiet
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
tunables() {
  case "$1" in
    default) echo "" ;;
    mmap1m) echo "glibc.malloc.mmap_threshold=1048576" ;;
    arena2) echo "glibc.malloc.arena_max=2" ;;
    *) echo "unknown setting $1" >&2; exit 2 ;;
  esac
}
for round in $(seq "$ROUNDS"); do
  for s in $SETTINGS; do
    out="$TMP/$s-$round"
    start=$(date +%s.%N)
    GLIBC_TUNABLES=$(tunables "$s") /usr/bin/time -v "$BIN" train --config "$RECIPE" --out "$out" --grpo-steps "$STEPS" \
      > "$TMP/log" 2> "$TMP/err" || { tail -5 "$TMP/err" >&2; exit 1; }
    end=$(date +%s.%N)
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/err")
    steps=$(grep -c "^grpo step" "$TMP/err" || true)
    printf '{"bench": "memory", "setting": "%s", "round": %d, "recipe": "%s", "grpo_steps": %d, "peak_rss_gb": %.2f, "wall_s": %.1f}\n' \
      "$s" "$round" "$RECIPE" "$steps" "$(echo "$rss_kb / 1048576" | bc -l)" "$(echo "$end - $start" | bc -l)"
    rm -rf "$out"
  done
done
