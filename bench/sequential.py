#!/usr/bin/env python3
"""Summarises bench/sequential.sh: per variant, main samples drawn, wall time, certified
Recall@K at each radius, ACR, and the samples per query against its certified radius.

  python3 bench/sequential.py WORK TIMES VARIANT...   (WORK/VARIANT/<pipeline>/ holds each run,
  TIMES a line "VARIANT SECONDS" per variant)
"""
import csv
import glob
import sys


def run_folder(work, variant):
    """The one run folder under WORK/VARIANT (named by the pipeline)."""
    found = [f.rsplit("/", 1)[0] for f in glob.glob(f"{work}/{variant}/**/certificates.csv", recursive=True)]
    if len(found) != 1:
        sys.exit(f"sequential.py: expected one run under {work}/{variant}, found {found}")
    return found[0]


def main():
    work, times_file, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
    times = dict(line.split() for line in open(times_file))
    rows = {}
    for v in variants:
        folder = run_folder(work, v)
        certs = list(csv.DictReader(open(f"{folder}/certificates.csv")))
        metrics = list(csv.DictReader(open(f"{folder}/metrics.csv")))
        recall = {(int(m["k"]), float(m["radius"])): float(m["value"]) for m in metrics if m["measure"] == "certified_recall"}
        acr = next(float(m["value"]) for m in metrics if m["metric"] == "average_certified_radius")
        rows[v] = (certs, recall, acr)
    base = variants[0]
    base_samples = sum(int(c["n"]) for c in rows[base][0])
    radii = sorted({r for _, r in rows[base][1]})
    print(f"{'variant':<28} {'samples':>11} {'fewer':>7} {'seconds':>8} {'ACR':>7}  certified R@1 at r = " +
          " ".join(f"{r:g}" for r in radii))
    for v in variants:
        certs, recall, acr = rows[v]
        samples = sum(int(c["n"]) for c in certs)
        print(f"{v:<28} {samples:>11,} {base_samples / samples:>6.2f}x {float(times[v]):>8.1f} {acr:>7.4f}  " +
              " ".join(f"{recall.get((1, r), float('nan')):.2f}" for r in radii))
    print(f"\nlargest drop against {base} over certified R@1/2/4/8 at every radius:")
    for v in (v for v in variants[1:] if "grid" in v or "replay" in v):  # the one-target runs stop short of the rest
        drops = {cell: rows[v][1].get(cell, 0.0) - value for cell, value in rows[base][1].items()}
        worst = min(drops.values())
        cells = ", ".join(f"R@{k} at {r:g}" for (k, r), d in sorted(drops.items()) if d <= worst + 1e-9)
        print(f"  {v}: {worst:+.2f} ({cells})")
    for k in (2, 4, 8):
        print(f"\ncertified R@{k}: " + " | ".join(
            f"{v}: " + " ".join(f"{rows[v][1].get((k, r), float('nan')):.2f}" for r in radii) for v in variants))
    print("\nwhere the samples went (queries by samples drawn; median certified radius of each group):")
    for v in variants[2:]:
        certs = rows[v][0]
        groups = {}
        for c in certs:
            groups.setdefault(int(c["n"]), []).append(float(c["radius"]))
        parts = []
        for n in sorted(groups):
            radius = sorted(groups[n])[len(groups[n]) // 2]
            parts.append(f"{n}: {len(groups[n])} (r {radius:.3f})")
        print(f"  {v}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
