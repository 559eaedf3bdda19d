"""Reads a sample_efficiency run's metrics.csv and prints, per sigma and radius, the certified
Recall@1 of McDiarmid at the largest n and of each variance-adaptive bound (bernstein,
directional) at each n, and the smallest n at which that bound matches or beats McDiarmid
(the sample saving). Usage: metrics.csv"""
import csv
import sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
# point names look like "noise.sigma=0.25,certifier.bound=bernstein,certifier.n=25000"
table = defaultdict(dict)  # (sigma, bound, n) -> {radius: value}
for r in rows:
    if not r["metric"].startswith("certified_recall@"):
        continue
    keys = dict(kv.split("=") for kv in r["point"].split(","))
    key = (float(keys["noise.sigma"]), keys["certifier.bound"], int(keys["certifier.n"]))
    table[key][float(r["metric"].split("@")[1])] = float(r["value"])

for sigma in sorted({k[0] for k in table}):
    reference_n = max(k[2] for k in table if k[0] == sigma and k[1] == "mcdiarmid")
    reference = table[(sigma, "mcdiarmid", reference_n)]
    for bound in ("bernstein", "directional"):
        ns = sorted({k[2] for k in table if k[0] == sigma and k[1] == bound})
        if not ns:
            continue
        print(f"\nsigma = {sigma}, {bound}: certified Recall@1 (100 queries, alpha = 0.001)")
        print("| radius | McDiarmid n = {:,} | ".format(reference_n) + " | ".join(f"n = {n:,}" for n in reversed(ns)) +
              " | fewest samples for >= McDiarmid | saving |")
        print("|---" * (len(ns) + 4) + "|")
        savings = []
        for radius in sorted(reference):
            ref = reference[radius]
            if ref == 0 and all(table[(sigma, bound, n)][radius] == 0 for n in ns):
                continue
            values = [table[(sigma, bound, n)][radius] for n in reversed(ns)]
            enough = [n for n in ns if table[(sigma, bound, n)][radius] >= ref]
            need = min(enough) if enough else None
            if ref > 0 and need is not None:
                savings.append(reference_n / need)
            saving = "-" if ref == 0 else "none" if need is None else f"{reference_n / need:.0f}x"
            print(f"| {radius:g} | {ref:.2f} | " + " | ".join(f"{v:.2f}" for v in values) +
                  f" | {'' if need is None else f'{need:,}'} | {saving} |")
        if savings:
            print(f"{bound}: saving at every radius with McDiarmid R@1 > 0: at least {min(savings):.0f}x"
                  f" (the smallest n tried is {min(ns):,}, so this is a lower bound)")
