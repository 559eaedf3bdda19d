"""Samples per second of a run's sampling stage, from its manifest.json (stage "samples",
detail "Q queries x N samples, ..."): what bench/ scripts compare. Usage: FILE [POINT]"""
import json
import re
import sys

stages = json.load(open(sys.argv[1]))["stages"]
point = sys.argv[2] if len(sys.argv) > 2 else None
for s in stages:
    if s["stage"] == "samples" and s["status"] == "computed" and (point is None or s["point"] == point):
        q, n = map(int, re.match(r"(\d+) queries x (\d+) samples", s["detail"]).groups())
        print(q * n / s["seconds"])
        break
else:
    sys.exit(f"{sys.argv[1]}: no computed samples stage")
