"""Max |difference| between srlm's and PyTorch's completion log-probs (JSON files from check.sh)."""
import json, sys
ours = json.load(open(sys.argv[1]))
peer = [json.loads(l) for l in open(sys.argv[2]) if '"logprobs"' in l][0]
assert ours["completion_ids"] == peer["completion_ids"], "tokenizations differ"
diff = max(abs(a - b) for a, b in zip(ours["logprobs"], peer["logprobs"]))
print(json.dumps({"what": "logprob_agreement", "dtype": sys.argv[3], "tokens": len(peer["logprobs"]), "max_abs_diff": diff}))
