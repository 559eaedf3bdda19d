"""Average certified radius per sweep point of a run, and its difference to a reference
point on the same queries with the paired standard error (the per-query differences'
spread over sqrt(queries)). A query's radius counts when it is certified and correct,
else 0, as in `rguard report`. Usage:
  acr_difference.py RUN_FOLDER [--reference SUBSTRING] [--group SUBSTRING ...]
Points are compared with the reference point whose name shares the --group item
(e.g. noise.sigma=0.25) and contains --reference (default objective=noise)."""
import argparse
import csv
import math
import statistics
import sys
from collections import defaultdict


def radii(run):
    by_point = defaultdict(dict)
    with open(f"{run}/certificates.csv") as f:
        for r in csv.DictReader(f):
            ok = r["abstain"] == "0" and r["correct"] == "1"
            by_point[r["point"]][r["query_id"]] = float(r["radius"]) if ok else 0.0
    return by_point


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("--reference", default="objective=noise")
    p.add_argument("--group", nargs="*", default=["noise.sigma=0.25", "noise.sigma=0.5"])
    a = p.parse_args()
    points = radii(a.run)
    print("| point | queries | ACR | s.e. | vs. reference | paired s.e. |\n|---|---|---|---|---|---|")
    for group in a.group:
        members = [name for name in points if group in name.split(",")]
        refs = [name for name in members if a.reference in name]
        if len(refs) != 1:
            sys.exit(f"acr_difference.py: {len(refs)} points of group {group} contain '{a.reference}', expected 1")
        ref = points[refs[0]]
        for name in members:
            r = points[name]
            values = list(r.values())
            acr = statistics.mean(values)
            se = statistics.stdev(values) / math.sqrt(len(values))
            diff = [r[q] - ref[q] for q in r if q in ref]
            if len(diff) != len(r):
                sys.exit(f"acr_difference.py: {name} and {refs[0]} certified different queries")
            d = statistics.mean(diff) / statistics.mean(ref.values())
            d_se = statistics.stdev(diff) / math.sqrt(len(diff)) / statistics.mean(ref.values())
            print(f"| {name} | {len(values)} | {acr:.4f} | {se:.4f} | {d:+.0%} | {d_se:.0%} |")


main()
