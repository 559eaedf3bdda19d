"""The tables of bench/certificate_d.sh: certified Recall@1 per radius and samples/s for each
variant (median of its two runs), from the run folders it wrote.
Usage: certificate_d.py RUN_NAME WORK VARIANT..."""
import csv
import json
import re
import statistics
import sys

run_name, work, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
prefix = "qs" if run_name == "quickstart" else "sa"


def folder(variant, repeat):
    return f"{work}/{prefix}-{variant.replace(' ', '')}-{repeat}/{run_name}"


def rates(manifest):
    """point -> noisy images per second of its sampling stage."""
    out = {}
    for s in json.load(open(manifest))["stages"]:
        if s["stage"] == "samples" and s["status"] == "computed":
            m = re.match(r"(\d+) queries x (\d+) samples(?: \(\+(\d+) selection\))?", s["detail"])
            out[s["point"] or "main"] = int(m.group(1)) * (int(m.group(2)) + int(m.group(3) or 0)) / s["seconds"]
    return out


def certified(metrics):
    """point -> radius -> certified Recall@1."""
    out = {}
    for row in csv.DictReader(open(metrics)):
        if row["measure"] == "certified_recall" and row["k"] == "1":
            out.setdefault(row["point"], {})[float(row["radius"])] = float(row["value"])
    return out


table = {}
for v in variants:
    runs = [folder(v, r) for r in (1, 2)]
    recall = certified(f"{runs[0]}/metrics.csv")
    per_run = [rates(f"{r}/manifest.json") for r in runs]
    for point in recall:
        rate = statistics.median(pr[point] for pr in per_run if point in pr) if any(point in pr for pr in per_run) else float("nan")
        table.setdefault(point, []).append((v, recall[point], rate))
for point, rows in table.items():
    radii = sorted(rows[0][1])
    print(f"\n{run_name}, point {point}: certified Recall@1 at each radius, and samples/s")
    print(f"| variant | " + " | ".join(f"r = {r:g}" for r in radii) + " | samples/s | vs mean-only |")
    print("|---|" + "---|" * (len(radii) + 2))
    base = rows[0][2]
    for v, recall, rate in rows:
        print(f"| {v} | " + " | ".join(f"{recall[r]:.2f}" for r in radii) + f" | {rate:,.0f} | {rate / base:.2f} |")
