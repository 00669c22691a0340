# How mixed10.jsonl was made: the first 10 groups of the ninth run (results/grpo-boxed-qwen-coder-cpu-2026-12-06e)
# that the learner trained (rewards differed within the group), in sampling order, mapped back to GSM8K train rows.
# Run in this folder: python3 pick_problems.py ../grpo-boxed-qwen-coder-cpu-2026-12-06e/rollouts.jsonl TRAIN.jsonl
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = rows[:17] + rows[21:]  # rows 17-20: groups sampled again after the ninth run's resume
train = [json.loads(l) for l in open(sys.argv[2])]
picked = []
for r in (r for r in rows if not r.get('dropped')):
    match = [t for t in train if t['question'] in r['prompt']]
    assert len(match) == 1
    picked.append(match[0])
    if len(picked) == 10:
        break
with open('mixed10.jsonl', 'w') as f:
    for t in picked:
        f.write(json.dumps(t) + '\n')
