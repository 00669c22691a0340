#!/bin/bash
# Steps per minute of the embedded default's GRPO stage with 0, 1 and 2 remote generator workers
# (`srlm worker` processes on 127.0.0.1) beside one local generator, side by side in one run.
# Usage: scripts/bench_cluster.sh [STEPS] [ROUNDS]     (release build; prints one JSON line per run)
set -euo pipefail
steps=${1:-60}
rounds=${2:-1}
cd "$(dirname "$0")/.."
cargo build --release --quiet
srlm=${CARGO_TARGET_DIR:-target}/release/srlm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# GRPO only (the SFT stage would be the same for every row), no metrics port, same seed.
$srlm train --print-default | sed -e 's/stages = \["sft", "grpo"\]/stages = ["grpo"]/' \
    -e 's/^\[runtime\]/[runtime]\nmetrics_addr = ""/' > "$work/grpo.toml"
port=$((20000 + RANDOM % 20000))
for round in $(seq "$rounds"); do
  for remote in 0 1 2; do
    out="$work/out-$round-$remote"
    port=$((port + 1))
    $srlm train --config "$work/grpo.toml" --out "$out" --grpo-steps "$steps" --listen "127.0.0.1:$port" \
        --local-generators 1 > "$work/learner.log" 2>&1 &
    learner=$!
    for w in $(seq "$remote"); do
      $srlm worker --connect "127.0.0.1:$port" --role generator > "$work/worker-$w.log" 2>&1 &
    done
    wait "$learner"
    wait
    python3 - "$out/run-stage-0.json" "$remote" "$round" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"round": int(sys.argv[3]), "remote_generators": int(sys.argv[2]), "local_generators": 1,
                  "steps": r["steps"], "elapsed_s": round(r["elapsed_s"], 2),
                  "steps_per_min": round(60 * r["steps"] / r["elapsed_s"], 1),
                  "groups_generated_remote": r["remote"]["groups_generated"],
                  "weight_transfers": r["remote"]["weight_transfers"],
                  "weight_transfer_s": round(r["remote"]["weight_transfer_s"], 3),
                  "learner_busy": round(r["learner_busy_s"] / r["elapsed_s"], 3)}))
PY
  done
done
