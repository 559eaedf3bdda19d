#!/usr/bin/python3
"""Recomputes every radius of a run's certificates.h5 from what the file stores, written
independently of rguard's C++ (scipy's normal and beta distributions, numpy), and compares
them with the radii rguard wrote. Formulas: docs/certificates.md (A, B, C, D, Recall@K).

Usage: recompute_radii.py RUN/certificates.h5      exit status 0 when every radius agrees
Prints one line per point: how many queries and radii were checked, and the largest error.

The split of alpha between the mean's event and the level sets (and per level) is not read
from the file: it is derived from the point's own parameters (alpha, selection, radius,
level_statistic, ranks, levels, candidates) by the rule of docs/certificates.md ("Combining
certificates", "The confidence"), the file's alpha_* attributes must agree with it, and the
radii are recomputed with the derived values. With sampling: sequential each query is
recomputed at its own sample count (`samples`), which must be a look, with that look's alpha
from the documented schedule (Theorem S), checked against the file's alpha_looks.
"""
import math
import sys

import h5py
import numpy as np
from scipy import stats
from scipy.optimize import brentq

TOL = 1e-6  # relative (absolute below 1): two implementations of bisections and special functions


def bernstein_rho(n, alpha, f_norm):
    """Pinelis's Bernstein bound on ||F-hat - F|| with variance 1 - ||F||^2 (docs: Lemma 1')."""
    def t(v):
        log_term = math.log(2.0 / alpha)
        linear = 2.0 * log_term / (3.0 * n)
        return linear + math.sqrt(linear * linear + 2.0 * v * log_term / n)
    norm = min(max(f_norm, 0.0), 1.0)
    if t(1.0) >= norm:
        return t(1.0)
    # the largest v in [0, 1] with v <= 1 - (||F-hat|| - t(v))^2
    h = lambda v: 1.0 - (norm - t(v)) ** 2 - v
    return t(brentq(h, 0.0, 1.0, xtol=1e-15, rtol=1e-15))


def mcdiarmid_rho(n, alpha):
    return (1.0 + math.sqrt(2.0 * math.log(1.0 / alpha))) / math.sqrt(n)


def maurer_pontil(n, delta, variance):
    log_term = math.log(2.0 / delta)
    return math.sqrt(2.0 * max(variance, 0.0) * log_term / n) + 14.0 * log_term / (3.0 * (n - 1.0))


def cp_lower(k, n, alpha):
    if k <= 0 or n <= 0:
        return 0.0
    if k >= n:
        return alpha ** (1.0 / n)
    return stats.beta.ppf(alpha, k, n - k + 1)


def level_bound(floor, levels, p, shift):
    """floor + sum_i (t_i - t_{i-1}) Phi(Phi^-1(p_i) - shift), t_0 = floor (docs: Theorem D)."""
    below = np.concatenate([[floor], levels[:-1]])
    g = np.where(p <= 0, 0.0, np.where(p >= 1, 1.0, stats.norm.cdf(stats.norm.ppf(np.clip(p, 1e-300, 1)) - shift)))
    return floor + float(np.sum((levels - below) * g))


def level_radius(floor, levels, p, threshold, sigma):
    if not level_bound(floor, levels, p, 0.0) > threshold:
        return 0.0
    hi = sigma * (stats.norm.ppf(max(p)) + 40.0)
    return brentq(lambda r: level_bound(floor, levels, p, r / sigma) - threshold, 0.0, hi, xtol=1e-14, rtol=1e-13)


def probabilities(counts, n, alpha_each):
    return np.minimum.accumulate(np.array([cp_lower(int(c), n, alpha_each) for c in counts]))


def attr(attrs, name):
    value = attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def close(a, b):
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def ppf(x):
    """Phi^-1 with its limits: -inf at 0 and below, +inf at 1 and above (as rguard stores them;
    scipy gives NaN outside [0, 1], e.g. for n = 1 and alpha = 1e-300)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = stats.norm.ppf(np.clip(x, 0.0, 1.0))
    return np.where(x <= 0, -np.inf, np.where(x >= 1, np.inf, out))


def derive_split(g, name):
    """The alpha split of docs/certificates.md, from the point's own parameters:
    certificate D (level sets) is on iff selection > 0, and then radius is max or d (with
    radius a, b or c no selection samples are drawn; d without them is refused);
    alpha_mean = alpha_D = alpha / 2 with D, alpha_mean = alpha without;
    alpha_each = alpha_D / (ranks * levels) for the margin, alpha_D / (candidates * levels)
    for pairs. Checks that the file's alpha_* attributes and array shapes agree; returns
    (alpha_mean, alpha_each or None), or None (with a message printed) when they do not."""
    a = g.attrs

    def fail(message):
        print(f"point {name}: {message}")
        return None

    needed = ["alpha", "selection", "radius", "ranks", "alpha_mean_event"]
    missing = [key for key in needed if key not in a]
    if missing:
        return fail(f"the file lacks the attribute(s) {', '.join(missing)} that the alpha split is derived from")
    alpha, selection, choice, ranks = float(a["alpha"]), int(a["selection"]), attr(a, "radius"), int(attr(a, "ranks"))
    if selection > 0 and choice not in ("max", "d"):
        return fail(f"selection = {selection} with radius {choice!r}: radius a, b or c draws no selection samples "
                    "(docs/certificates.md, 'Combining certificates')")
    if selection == 0 and choice == "d":
        return fail("radius 'd' with selection = 0: certificate D needs the selection samples")
    level_sets = selection > 0
    alpha_mean = alpha / 2 if level_sets else alpha
    expect = {"alpha_mean_event": alpha_mean}
    alpha_each, divisor = None, None
    if level_sets:
        missing = [key for key in ("level_statistic", "levels") if key not in a]
        if missing:
            return fail(f"selection = {selection} but the file lacks the attribute(s) {', '.join(missing)} "
                        "that the per-level alpha is derived from")
        statistic, levels = attr(a, "level_statistic"), int(attr(a, "levels"))
        if statistic == "margin":
            statistics, what = ranks, "ranks"
        elif statistic == "pairs":
            if "candidates" not in a:
                return fail("level_statistic pairs but the file lacks the attribute candidates (M) that the "
                            "per-level alpha is derived from")
            statistics, what = int(attr(a, "candidates")), "candidates"
        else:
            return fail(f"unknown level_statistic {statistic!r}")
        alpha_level = alpha - alpha_mean
        divisor = float(statistics * levels)
        alpha_each = alpha_level / divisor
        expect["alpha_level_event"] = alpha_level
        expect["alpha_per_level"] = alpha_each
        rule = f"alpha_D = alpha/2 = {alpha_level!r} over {what} x levels = {statistics} x {levels} levels"
        # The arrays must have the shapes these parameters give, or the split would not be the one used.
        shapes = {"d_levels": statistics * levels, "d_counts": statistics * levels}
        if statistic == "margin":
            shapes["d_floors"] = ranks
            if ranks > 1:  # an empty row is not written: no d_excluded at ranks = 1
                shapes["d_excluded"] = ranks - 1
        else:
            shapes["d_candidates"] = statistics
        for key, columns in shapes.items():
            if key not in g:
                return fail(f"selection = {selection} but the file has no {key}")
            if g[key].ndim != 2 or g[key].shape[1] != columns:
                return fail(f"{key} has shape {g[key].shape}, but {what} = {statistics} and levels = {levels} "
                            f"give {columns} columns")
        if statistic == "margin":
            every = int(attr(a, "level_every")) if "level_every" in a else None
            if every is None:
                return fail("level_statistic margin but the file lacks the attribute level_every")
            samples = g["samples"][:] if "samples" in g else np.full(len(g["d_counted"]), int(a["n"]))
            for q, (n_q, counted) in enumerate(zip(samples, g["d_counted"][:, 0])):
                n_c = -(-int(n_q) // every)
                if int(counted) not in (0, n_c):
                    return fail(f"query {q}: d_counted is {int(counted)}, but n = {int(n_q)} with level_every = {every} "
                                f"counts n_c = {n_c} samples (0 when the skip rule held)")
    else:
        rule = "no certificate D (selection = 0): alpha is not split"
        present = [key for key in ("alpha_level_event", "alpha_per_level") if key in a]
        if present:
            return fail(f"selection = 0 (no certificate D), yet the file has {', '.join(present)}")
    # Sequential sampling (Theorem S): each query's alpha is its look's, split as above.
    looks = None
    if "sampling" in a and attr(a, "sampling") == "sequential":
        looks = derive_looks(a, alpha)
        if isinstance(looks, str):
            return fail(looks)
    if "recall_radius" in g and g["recall_radius"].shape[1] != ranks:
        return fail(f"recall_radius has shape {g['recall_radius'].shape}, but ranks = {ranks}")
    for key, value in expect.items():
        if key not in a:
            return fail(f"the file lacks {key} (the rule gives {value!r})")
        stored = float(attr(a, key))
        if not math.isclose(stored, value, rel_tol=1e-12, abs_tol=0.0):
            return fail(f"{key} = {attr(a, key)} in the file, but the documented split gives {value!r} "
                        f"(alpha = {alpha!r}; {rule}; docs/certificates.md, 'Combining certificates')")
    return alpha_mean, alpha_each, looks, divisor


def derive_looks(a, alpha):
    """{samples at a look: the alpha it spends}, derived from the documented rule
    (geometric_schedule: 0.3 of alpha at n, the other 0.7 shared by the earlier looks in
    proportion to their samples, each rounded down by 4 R eps) and checked against the file's alpha_looks; a message
    when they disagree."""
    for key in ("looks", "alpha_looks"):
        if key not in a:
            return f"sampling sequential but the file lacks the attribute {key}"
    sizes = [int(x) for x in attr(a, "looks").split(",")]
    stored = [float(x) for x in attr(a, "alpha_looks").split(",")]
    if sizes != sorted(set(sizes)) or sizes[-1] != int(a["n"]) or len(stored) != len(sizes):
        return f"looks {sizes} must increase to n = {int(a['n'])}, one alpha each (alpha_looks {stored})"
    slack = 1 - 4 * len(sizes) * 2.0**-52
    early = sum(sizes[:-1])
    rule = [alpha] if len(sizes) == 1 else [0.7 * alpha * (m / early) * slack for m in sizes[:-1]] + [0.3 * alpha * slack]
    for size, mine, theirs in zip(sizes, rule, stored):
        if not math.isclose(mine, theirs, rel_tol=1e-12, abs_tol=0.0):
            return f"alpha at the look at {size} is {theirs!r} in the file, but the documented schedule gives {mine!r}"
    if sum(stored) > alpha:
        return f"the looks spend {sum(stored)!r} > alpha = {alpha!r}"
    return dict(zip(sizes, rule))


def check_point(f, name):
    g = f["points"][name]
    a = g.attrs
    # Each point is certified against its own model's gallery (a sweep may train several).
    own = f["galleries"][attr(a, "gallery")]
    gallery = own["embedding"][:].astype(np.float64)
    labels = own["label"][:]
    sigma, n, alpha = float(a["sigma"]), int(a["n"]), float(a["alpha"])
    bound = attr(a, "bound")
    split = derive_split(g, name)
    if split is None:
        return False
    alpha_mean, alpha_each, looks, divisor = split
    level_sets = alpha_each is not None
    samples = g["samples"][:] if "samples" in g else None
    if looks is not None and samples is None:
        print(f"point {name}: sampling sequential but no per-query samples")
        return False
    means = g["mean_embedding"][:]
    self_rows = g["query_gallery_index"][:]
    query_labels = g["query_label"][:]
    stored = {k: g[k][:] for k in ("radius_a", "radius_b", "radius_c", "radius_d", "radius", "abstain", "correct")}
    ranks = g["recall_radius"][:] if "recall_radius" in g else None
    squares = g["sum_squares"][:] if bound == "directional" else None
    worst, checked = 0.0, 0
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    k = unit.shape[1]
    for q in range(len(means)):
        if looks is not None:  # this query's look: its n and its alpha (Theorem S)
            n = int(samples[q])
            if n not in looks:
                print(f"point {name} query {q}: {n} samples is no look of {sorted(looks)}")
                return False
            alpha_mean = looks[n] / 2 if level_sets else looks[n]
            alpha_each = (looks[n] - alpha_mean) / divisor if level_sets else None
        f_hat = means[q]
        f_norm = float(np.linalg.norm(f_hat))
        dot = unit @ f_hat
        others = np.array([j for j in range(len(unit)) if j != self_rows[q]])
        pos = others[labels[others] == query_labels[q]]
        neg = others[labels[others] != query_labels[q]]
        dist2 = f_norm ** 2 - 2 * dot + 1.0
        p_main = int(pos[np.argmin(dist2[pos])])
        if bound == "directional":
            s1 = f_hat * n
            tri = np.zeros((k, k))
            tri[np.triu_indices(k)] = squares[q]
            s2 = tri + np.triu(tri, 1).T
            cov = (s2 - np.outer(s1, s1) / n) / (n - 1)
            delta = alpha_mean / max(1.0, len(pos) * len(neg) + len(pos) + len(neg))
            rho = math.inf
        else:
            cov, delta = None, None
            rho = bernstein_rho(n, alpha_mean, f_norm) if bound == "bernstein" else mcdiarmid_rho(n, alpha_mean)

        def pair_b(p):
            """R_B of each pair (p, n) for a unit gallery (threshold 1/2), docs Lemma 2 / Theorem B."""
            w = unit[p] - unit[neg]
            c = np.linalg.norm(w, axis=1)
            proj = np.clip((dot[p] - dot[neg]) / c, -f_norm, f_norm)
            if cov is None:
                dev = np.full(len(neg), rho)
            else:
                u = w / c[:, None]
                dev = np.array([maurer_pontil(n, delta, float(x @ cov @ x)) for x in u])
            return sigma * ppf(0.5 + 0.5 * (proj - dev))

        b_pairs = pair_b(p_main)
        radius_b = float(np.min(b_pairs))
        d_pos, d_neg = math.sqrt(max(dist2[p_main], 0)), float(np.sqrt(np.maximum(dist2[neg], 0)).min())
        radius_a = sigma * math.sqrt(math.pi / 2) * ((d_neg - rho) - (d_pos + rho)) / 2 if cov is None else -math.inf
        if cov is None:
            item = np.full(len(unit), rho)
        else:
            item = np.array([maurer_pontil(n, delta, float(e @ cov @ e)) for e in unit])
        q_pos = 0.5 * (1 + dot[p_main] - item[p_main])
        q_neg = float(np.max(0.5 * (1 + dot[neg] + item[neg])))
        radius_c = 0.5 * sigma * (float(ppf(q_pos)) - float(ppf(q_neg)))

        radius_d, d_rank = -math.inf, None
        if level_sets and attr(a, "level_statistic") == "pairs":
            p_sel = int(g["d_positive"][q][0])
            cands = g["d_candidates"][q].astype(int)
            m_count = len(cands)
            levels = g["d_levels"][q].reshape(m_count, -1)
            counts = g["d_counts"][q].reshape(m_count, -1)
            d_pairs = pair_b(p_sel)
            for m, cand in enumerate(cands):
                if cand < 0:
                    continue
                idx = int(np.searchsorted(neg, cand))
                d_pairs[idx] = max(d_pairs[idx], level_radius(-1.0, levels[m], probabilities(counts[m], n, alpha_each), 0.0, sigma))
            d_rank = [math.inf if len(d_pairs) <= r else float(np.partition(d_pairs, r)[r]) for r in range(ranks.shape[1])]
        elif level_sets:
            # V_k = <f, e_p> - 1/2 - max over the pool minus the k - 1 excluded of (<f, e_n> - 1/2)
            p_sel = int(g["d_positive"][q][0])
            floors = g["d_floors"][q]
            levels = g["d_levels"][q].reshape(len(floors), -1)
            counts = g["d_counts"][q].reshape(len(floors), -1)
            outside, pool = math.inf, set()
            # d_pool lists the pruned pool, padded with -1; all -1: no pruning (pool >= negatives).
            pruned = "d_pool" in g and bool(np.any(g["d_pool"][q] >= 0))
            if pruned:
                pool = set(int(x) for x in g["d_pool"][q] if x >= 0)
                if len(pool) < len(neg):
                    b_sel = pair_b(p_sel)
                    outside = min(float(b_sel[i]) for i, j in enumerate(neg) if int(j) not in pool)
            counted = int(g["d_counted"][q][0])  # every level_every-th main sample
            # The floors are what V_k can never go below: min over the pool minus T_k of -||e_p - e_n||.
            excluded = [int(x) for x in g["d_excluded"][q] if x >= 0] if "d_excluded" in g else []
            in_pool = [int(j) for j in neg if not pruned or int(j) in pool]
            for r in range(len(floors)):
                rest = [j for j in in_pool if j not in excluded[:r]]
                floor = min([0.0] + [-float(np.linalg.norm(unit[p_sel] - unit[j])) for j in rest])
                if not close(floor, float(floors[r])):
                    print(f"point {name} query {q}: floor of V_{r + 1} recomputed {floor!r}, stored {floors[r]!r}")
                    return False
            d_rank = [math.inf if len(neg) <= r else
                      min(outside, level_radius(floors[r], levels[r], probabilities(counts[r], counted, alpha_each), 0.0, sigma))
                      for r in range(len(floors))]
        if d_rank is not None:
            radius_d = d_rank[0]

        choice = attr(a, "radius")
        chosen = {"a": radius_a, "b": radius_b, "c": radius_c, "d": radius_d}.get(choice, max(radius_a, radius_b, radius_c, radius_d))
        correct = bool(stored["correct"][q])
        radius = chosen if chosen > 0 and correct else 0.0
        mine = {"radius_a": radius_a, "radius_b": radius_b, "radius_c": radius_c, "radius_d": radius_d, "radius": radius}
        for key, value in mine.items():
            theirs = float(stored[key][q])
            if not close(value, theirs):
                print(f"point {name} query {q}: {key} recomputed {value!r}, stored {theirs!r}")
                return False
            if math.isfinite(value):
                worst = max(worst, abs(value - theirs))
            checked += 1
        if ranks is not None:
            expect = []
            for r in range(ranks.shape[1]):
                value = radius if r == 0 else expect[-1]
                if r > 0 and choice in ("max", "b"):
                    value = max(value, math.inf if len(b_pairs) <= r else float(np.partition(b_pairs, r)[r]))
                if r > 0 and choice in ("max", "d") and d_rank is not None:
                    value = max(value, d_rank[r])
                expect.append(value)
                if not close(value, float(ranks[q][r])):
                    print(f"point {name} query {q}: recall_radius@{r + 1} recomputed {value!r}, stored {ranks[q][r]!r}")
                    return False
                checked += 1
    print(f"point {name}: {len(means)} queries, {checked} radii recomputed, largest difference {worst:.3g}")
    return True


def main():
    with h5py.File(sys.argv[1], "r") as f:
        ok = all(check_point(f, name) for name in f["points"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
