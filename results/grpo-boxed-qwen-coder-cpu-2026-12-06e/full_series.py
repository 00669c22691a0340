# Run in this folder: python3 full_series.py (the figures BENCHMARKS.md quotes for the ninth run).
import json, re, random
# Steps 1-5 ran in the first attempt (its steps file was never written: it died before the
# stage's end); their trained-batch reward is in train.log, their sampled groups in rollouts.jsonl.
log=open('train-attempt-1.log').read()
first=[(int(m.group(1)),float(m.group(2))) for m in re.finditer(r'grpo step\s+(\d+)/40.*?reward ([\d.]+)',log)][:5]
steps=json.load(open('steps-stage-0.json'))
trained=[r for _,r in first]+[dict(s['rewards'])['total'] for s in steps]
rows=[json.loads(l) for l in open('rollouts.jsonl')]
rows=rows[:17]+rows[21:]   # rows 17-20: the first attempt's groups after checkpoint 5, sampled again (21-24)
mean=lambda r: sum(c['total'] for c in r['completions'])/len(r['completions'])
# Sampled reward per learner step: groups logged with step k (0-based) reach learner step k+1.
sampled=[]
for k in range(20):
    g=[mean(r) for r in rows if r['step']==k]
    sampled.append(sum(g)/len(g))
js=[s['sampled_reward'] for s in steps]
print('sampled from rollouts vs steps json (steps 6-20) max diff %.2e'%max(abs(a-b) for a,b in zip(sampled[5:],js)))
f=lambda v:(sum(v[:10])/10,sum(v[-10:])/10)
print('learner steps',len(trained))
a,b=f(trained); print('trained batch | %.3f | %.3f | %+.3f'%(a,b,b-a))
a,b=f(sampled); print('sampled per step | %.3f | %.3f | %+.3f'%(a,b,b-a))
print('per-step trained:',' '.join('%.2f'%x for x in trained))
print('per-step sampled:',' '.join('%.2f'%x for x in sampled))
g=[mean(r) for r in rows]
print('groups',len(g),'dropped',sum(1 for r in rows if r.get('dropped')),'all-right',sum(1 for x in g if x==1.0),'all-wrong',sum(1 for x in g if x==0.0))
for n in (10,20,40):
    a=sum(g[:n])/n; b=sum(g[-n:])/n; print('groups first/last %d: %.3f %.3f %+.3f'%(n,a,b,b-a))
def slope(v):
    n=len(v); xm=(n-1)/2; ym=sum(v)/n
    return sum((i-xm)*(y-ym) for i,y in enumerate(v))/sum((i-xm)**2 for i in range(n))
s=slope(g); rise=s*(len(g)-1)
rng=random.Random(0); perm=0
for _ in range(20000):
    h=g[:]; rng.shuffle(h)
    if slope(h)>=s: perm+=1
print('least-squares rise over the run %+.3f, one-sided permutation p = %.3f'%(rise,perm/20000))
json.dump({'trained_reward_per_learner_step':trained,'sampled_reward_per_learner_step':sampled,'per_group_mean_reward':g},open('all-20-steps.json','w'),indent=1)
