#!/usr/bin/env python3
"""Summarize logs/*.json: per model+format, result, failing checks, attention found/decomposed/skipped,
attention cores lowered/refused with reasons."""
import json, os, sys, glob, collections
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
L = os.path.join(os.environ.get("HELDOUT_DIR", os.path.join(ROOT, ".torchgraph", "heldout")), "logs")
rows = []
for j in sorted(glob.glob(f"{L}/*.json")):
    base = os.path.basename(j)[:-5]
    mid, fmt = base.split(".", 1)
    try:
        d = json.load(open(j))
    except Exception:
        txt = open(f"{L}/{base}.txt").read().strip().splitlines()
        err = [l for l in txt if l.startswith("torchgraph:") and "(" not in l[-8:]] or txt[-1:]
        print(f"{mid}\t{fmt}\tERROR\t{err[-1] if err else ''}")
        continue
    a = d.get("attention", {})
    low = d["graphs"]["fused"].get("lowering", {})
    cores = low.get("attentionCores", [])
    lowered = sum(1 for c in cores if c.get("lowered"))
    refused = [c.get("reason", "") for c in cores if not c.get("lowered")]
    fails = [f"{c['name']}: {c['detail']}" for c in d["checks"] if not c["passed"]]
    skipped = a.get("skipped", [])
    sk = collections.Counter(json.dumps(s) if not isinstance(s, str) else s for s in skipped)
    rc = collections.Counter(refused)
    print(f"{mid}\t{fmt}\t{'PASS' if d['passed'] else 'FAIL'}\tattn found={a.get('found')} decomposed={a.get('decomposed')} "
          f"cores lowered={lowered}/{len(cores)} diff_unfused={d['runs']['unfused'].get('maxAbsDiff')} diff_fused={d['runs']['fused'].get('maxAbsDiff')}")
    for f in fails: print(f"    FAILCHECK {f}")
    for s, n in sk.items(): print(f"    SKIPPED x{n}: {s}")
    for s, n in rc.items(): print(f"    REFUSED x{n}: {s}")
