"""Noisy images per second through the backbone in a run's sampling stage, from its
manifest.json (stage "samples", detail "Q queries x N samples (+S selection), ..."): what
bench/ scripts compare. Usage: FILE [POINT]"""
import json
import re
import sys

stages = json.load(open(sys.argv[1]))["stages"]
point = sys.argv[2] if len(sys.argv) > 2 else None
for s in stages:
    if s["stage"] == "samples" and s["status"] == "computed" and (point is None or s["point"] == point):
        m = re.match(r"(\d+) queries x (\d+) samples(?: \(\+(\d+) selection\))?", s["detail"])
        q, n, selection = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        print(q * (n + selection) / s["seconds"])
        break
else:
    sys.exit(f"{sys.argv[1]}: no computed samples stage")
