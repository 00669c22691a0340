# The figures BENCHMARKS.md quotes for the GRPO runs on ten fixed problems over several epochs
# (sixth to tenth boxed runs): python3 results/summarize_fixed_problems.py RESULTS_FOLDER
# Reads rollouts.jsonl and the steps file of its GRPO stage (steps-stage-N.json; N is 1 after an
# SFT stage) in that folder; prompt_id // 10 is the epoch, prompt_id % 10 the problem.
import json, os, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(d, 'rollouts.jsonl'))]
steps = json.load(open(os.path.join(d, 'steps-stage-%d.json' % rows[0]['stage'])))
tr = [dict(s['rewards'])['total'] for s in steps]; sa = [s['sampled_reward'] for s in steps]
f = lambda v: (sum(v[:10]) / 10, sum(v[-10:]) / 10)
print('learner steps', len(steps), 'groups', len(rows), 'dropped', sum(1 for r in rows if r.get('dropped')))
if len(steps) >= 20:
    a, b = f(tr); print('trained | %.3f | %.3f | %+.3f' % (a, b, b - a))
    a, b = f(sa); print('sampled | %.3f | %.3f | %+.3f' % (a, b, b - a))
print('per-step trained:', ' '.join('%.2f' % x for x in tr))
print('per-step sampled:', ' '.join('%.2f' % x for x in sa))
epochs = max(r['prompt_id'] for r in rows) // 10 + 1
m = {}
for r in rows:
    c = r['completions']; m[(r['prompt_id'] // 10, r['prompt_id'] % 10)] = sum(x['total'] for x in c) / len(c)
for e in range(epochs):
    v = [m.get((e, p)) for p in range(10)]
    if all(x is not None for x in v): print('epoch', e + 1, ' '.join('%.2f' % x for x in v), 'mean %.3f' % (sum(v) / 10))
    else: print('epoch', e + 1, 'partial', ' '.join('-' if x is None else '%.2f' % x for x in v))
# Per epoch over the 80 completions: right answers, mean characters, and what the other reward
# terms saw (format_boxed: boxed ones; overlong: cut at the limit and penalised in the buffer).
terms = rows[0]['completions'][0]['rewards']
if len(terms) > 1:
    for e in range(epochs):
        c = [x for r in rows if r['prompt_id'] // 10 == e for x in r['completions']]
        if len(c) != 80:
            continue
        line = ['epoch', e + 1, 'right', int(sum(x['rewards']['accuracy_boxed'] for x in c))]
        if 'format_boxed' in terms:
            boxed = int(sum(x['rewards']['format_boxed'] for x in c))
            line += ['boxed', boxed, 'no box', 80 - boxed]
        if 'overlong' in terms:
            o = [x['rewards']['overlong'] for x in c]
            line += ['cut', sum(1 for v in o if v <= -1.0), 'in buffer', sum(1 for v in o if -1.0 < v < 0.0),
                     'overlong mean %.3f' % (sum(o) / 80)]
        print(*line, 'chars %.0f' % (sum(len(x['completion']) for x in c) / 80))
