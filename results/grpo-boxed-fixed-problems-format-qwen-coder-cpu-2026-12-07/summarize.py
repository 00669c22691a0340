import json
steps=json.load(open('steps-stage-0.json'))
rows=[json.loads(l) for l in open('rollouts.jsonl')]
tr=[dict(s['rewards'])['total'] for s in steps]; sa=[s['sampled_reward'] for s in steps]
f=lambda v:(sum(v[:10])/10,sum(v[-10:])/10)
print('learner steps',len(steps),'groups',len(rows),'dropped',sum(1 for r in rows if r.get('dropped')))
if len(steps)>=20:
    a,b=f(tr); print('trained | %.3f | %.3f | %+.3f'%(a,b,b-a))
    a,b=f(sa); print('sampled | %.3f | %.3f | %+.3f'%(a,b,b-a))
print('per-step trained:',' '.join('%.2f'%x for x in tr))
print('per-step sampled:',' '.join('%.2f'%x for x in sa))
# Per problem, per epoch (prompt_id // 10 is the epoch, prompt_id % 10 the problem).
m={}
for r in rows:
    c=r['completions']; m[(r['prompt_id']//10, r['prompt_id']%10)]=sum(x['total'] for x in c)/len(c)
for e in range(5):
    v=[m.get((e,p)) for p in range(10)]
    if all(x is not None for x in v): print('epoch',e+1,' '.join('%.2f'%x for x in v),'mean %.3f'%(sum(v)/10))
    else: print('epoch',e+1,'partial',' '.join('-' if x is None else '%.2f'%x for x in v))
# Per epoch over the 80 completions: right answers (accuracy_boxed), boxed (format_boxed), mean characters.
for e in range(5):
    c=[x for r in rows if r['prompt_id']//10==e for x in r['completions']]
    if len(c)==80:
        print('epoch',e+1,'right',int(sum(x['rewards']['accuracy_boxed'] for x in c)),'boxed',int(sum(x['rewards']['format_boxed'] for x in c)),
              'no box',80-int(sum(x['rewards']['format_boxed'] for x in c)),'chars %.0f'%(sum(len(x['completion']) for x in c)/80))
