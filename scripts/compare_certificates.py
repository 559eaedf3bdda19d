#!/usr/bin/env python3
"""Compares two certificates.h5 files dataset by dataset: the largest change of every float
array (absolute, and relative to the old value), and exact equality of everything else.

  python3 scripts/compare_certificates.py OLD/certificates.h5 NEW/certificates.h5 [--rtol R]

Exit 0 when both hold the same datasets with the same shapes and types, every non-float
array and attribute is equal, infinities and NaNs sit at the same places, and no finite
float moved by more than R relative to max(|old|, 1e-300) (default 1e-9: last digits only);
1 otherwise. Float attributes (a point's rho) are held to the same tolerance. A gallery is
stored under its content key (/galleries/<key>, named by each point's `gallery` attribute);
keys are identities, not results, so old and new galleries are paired through the points
(each old key must map to one new key) and their contents compared. Used to show that
replacing a numerical routine or the content hash changed certificates only in their last
digits (docs/certificates.md, "Floating point").
"""
import argparse
import sys

import h5py
import numpy as np


def datasets(group, prefix=""):
    found = {}
    for name, item in group.items():
        path = f"{prefix}/{name}"
        if isinstance(item, h5py.Group):
            found.update(datasets(item, path))
        else:
            found[path] = item
    return found


def attr_differences(a, b, rtol, keys):
    """What differs between two attribute sets; `keys` collects gallery key pairs."""
    if set(a.keys()) != set(b.keys()):
        return [f"attributes {sorted(set(a.keys()) ^ set(b.keys()))} in one file only"]
    found = []
    for name in a.keys():
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if name == "gallery":
            keys.setdefault(str(a[name]), set()).add(str(b[name]))
        elif x.dtype.kind == "f" and y.dtype.kind == "f" and x.shape == y.shape:
            if not np.allclose(x, y, rtol=rtol, atol=0, equal_nan=True):
                found.append(f"attribute {name}: {a[name]} -> {b[name]}")
        elif not np.array_equal(x, y):
            found.append(f"attribute {name}: {a[name]} -> {b[name]}")
    return found


def group_attrs(group, prefix=""):
    found = {prefix or "/": group.attrs}
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            found.update(group_attrs(item, f"{prefix}/{name}"))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rtol", type=float, default=1e-9)
    args = parser.parse_args()
    failures = []
    with h5py.File(args.old, "r") as old, h5py.File(args.new, "r") as new:
        keys = {}
        ga, gb = group_attrs(old), group_attrs(new)
        for path in sorted(set(ga) & set(gb)):
            if not path.startswith("/galleries/"):
                failures += [f"{path}: {d}" for d in attr_differences(ga[path], gb[path], args.rtol, keys)]
        renamed = {}
        for old_key, new_keys in keys.items():
            if len(new_keys) != 1:
                failures.append(f"gallery {old_key}: paired with {len(new_keys)} new galleries {sorted(new_keys)}")
            renamed[old_key] = sorted(new_keys)[0]
        if len(set(renamed.values())) != len(renamed):
            failures.append("two old galleries paired with one new gallery")

        def rename(path):
            parts = path.split("/")
            if len(parts) > 2 and parts[1] == "galleries" and parts[2] in renamed:
                parts[2] = renamed[parts[2]]
            return "/".join(parts)

        a = {rename(path): item for path, item in datasets(old).items()}
        b = datasets(new)
        for path in sorted(set(a) ^ set(b)):
            failures.append(f"{path}: only in {'the old' if path in a else 'the new'} file")
        rows = []
        for path in sorted(set(a) & set(b)):
            x, y = a[path][()], b[path][()]
            failures += [f"{path}: {d}" for d in attr_differences(a[path].attrs, b[path].attrs, args.rtol, keys)]
            if np.shape(x) != np.shape(y) or np.asarray(x).dtype != np.asarray(y).dtype:
                failures.append(f"{path}: shape or type {np.shape(x)} {np.asarray(x).dtype} -> {np.shape(y)} {np.asarray(y).dtype}")
                continue
            x, y = np.asarray(x), np.asarray(y)
            if x.dtype.kind != "f":
                if not np.array_equal(x, y):
                    failures.append(f"{path}: {np.count_nonzero(x != y)} of {x.size} values differ (not floats: must be equal)")
                continue
            if not np.array_equal(np.isnan(x), np.isnan(y)) or not np.array_equal(np.where(np.isinf(x), x, 0), np.where(np.isinf(y), y, 0)):
                failures.append(f"{path}: NaN or infinity at different places")
                continue
            finite = np.isfinite(x)
            if not finite.any():
                continue
            dx = np.abs(x[finite].astype(np.float64) - y[finite].astype(np.float64))
            rel = dx / np.maximum(np.abs(x[finite].astype(np.float64)), 1e-300)
            changed = int(np.count_nonzero(dx))
            rows.append((path, x.size, changed, float(dx.max()), float(rel.max())))
            if rel.max() > args.rtol:
                failures.append(f"{path}: moved by {rel.max():.3g} relative (more than --rtol {args.rtol:g})")
    moved = sum(1 for k, v in renamed.items() if k != v)
    print(f"galleries: {len(renamed)} paired through the points' gallery attribute, {moved} under a new key")
    print(f"{'dataset':<48} {'values':>8} {'changed':>8} {'max |diff|':>11} {'max rel':>10}")
    for path, size, changed, absdiff, reldiff in rows:
        print(f"{path:<48} {size:>8} {changed:>8} {absdiff:>11.3g} {reldiff:>10.3g}")
    for failure in failures:
        print(f"compare_certificates: {failure}", file=sys.stderr)
    print("same up to the last digits" if not failures else f"{len(failures)} difference(s) beyond the last digits")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
