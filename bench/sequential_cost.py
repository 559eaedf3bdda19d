#!/usr/bin/env python3
"""What Theorem S costs in radius: a look that spends alpha_r < alpha against fixed n.

  python3 bench/sequential_cost.py

For the default schedule (geometric_schedule(1000, 1.5, 100000, alpha, 0.3, 10000): growth 1.5
to 25,629, then a look every 10,000 samples to 85,629, and n: sixteen looks, 0.3 of alpha at n,
the rest shared by the fifteen early looks in proportion to their samples) it
prints, at the look at n, at the last early look and at one near 8000 samples, (1) sigma * Phi^-1 of the Clopper-Pearson bound (Cohen et al.'s radius,
the shape of certificate D's levels) and (2) the Bernstein rho of the mean (certificates
A/B/C), each against the fixed-n value at the same sample count. scipy's beta.ppf, and the
rho formula of core/src/stats/concentration.cpp (Pinelis's Bernstein at v = 1 - ||F||^2).
"""
import math

from scipy.optimize import brentq
from scipy.special import betaln
from scipy.stats import beta, norm


def cp_lower(k, n, alpha):
    return 0.0 if k == 0 else beta.ppf(alpha, k, n - k + 1)


def mixture_cs_lower(k, n, alpha, a=1.0, b=1.0):
    """The time-uniform alternative: the lower end of the beta-binomial mixture confidence
    sequence {p : M_n(p) < 1/alpha}, M_n(p) = B(k + a, n - k + b) / (B(a, b) p^k (1-p)^(n-k)),
    a nonnegative martingale under p (Robbins 1970; Howard et al. 2021), valid at every n at
    once by Ville's inequality. Below k/n, M_n grows as p falls: the root of log M = log 1/alpha."""
    log_mix = betaln(k + a, n - k + b) - betaln(a, b)
    def excess(p):
        return log_mix - k * math.log(p) - (n - k) * math.log1p(-p) - math.log(1 / alpha)
    return brentq(excess, 1e-300, k / n)


def bernstein_rho(n, alpha, f_norm):
    # t(v) at v = 1 - ||F||^2 with ||F|| = f_norm (the fixed point, ignoring the slack).
    log_term = math.log(2 / alpha)
    linear = 2 * log_term / (3 * n)
    v = 1 - f_norm**2
    return linear + math.sqrt(linear**2 + 2 * v * log_term / n)


def schedule(first, growth, n, max_step):
    """geometric_schedule's looks (core/src/stats/sequential.cpp): first * growth^j rounded
    up until a step would pass max_step, then every max_step samples, the last at n; a look
    within sqrt(growth) of n (capped: within max_step / 2) merged into it."""
    looks, size, capped = [], float(first), False
    while (size + max_step / 2 < n) if capped else (size * math.sqrt(growth) < n):
        if math.ceil(size) >= n:
            break
        if not looks or math.ceil(size) > looks[-1]:
            looks.append(math.ceil(size))
        capped = max_step > 0 and size * (growth - 1) > max_step
        size = size + max_step if capped else size * growth
    return looks + [n]


def main():
    alpha, sigma = 0.001, 0.25
    looks = schedule(1000, 1.5, 100000, 10000)
    early = sum(looks[:-1])
    share = {m: alpha * 0.3 if m == looks[-1] else alpha * 0.7 * m / early for m in looks}
    shown = (looks[-1], looks[-2], min(looks, key=lambda m: abs(m - 8000)))
    print(f"alpha = {alpha}, sigma = {sigma}; looks {looks}; alpha at " +
          ", ".join(f"{m}: {share[m]:.3g}" for m in shown))
    def radius_table(title, names, ours, theirs):
        # sigma Phi^-1 of two lower bounds on the same counts, at the look at n and an early look.
        print(title)
        print(f"{'m':>7} {'p-hat':>6} {names[0]:>16} {names[1]:>16} {'change':>8}")
        for m in shown:
            for p_hat in (0.9, 0.99, 0.999):
                k = round(p_hat * m)
                a, b = (sigma * norm.ppf(bound(k, m, share[m])) for bound in (ours, theirs))
                print(f"{m:>7} {p_hat:>6} {a:>16.4f} {b:>16.4f} {100 * (b / a - 1):>7.1f}%")

    radius_table("\nClopper-Pearson radius sigma * Phi^-1(p_lower), p-hat = k/m; fixed n against the look:",
                 ("fixed (alpha)", "look (alpha_r)"), lambda k, m, share: cp_lower(k, m, alpha), cp_lower)
    radius_table("\nThe time-uniform alternative at the same counts (beta-binomial mixture confidence sequence,\n"
                 "valid at every n at once) against Theorem S's union over the sixteen looks:",
                 ("union (alpha_r)", "mixture CS"), cp_lower, lambda k, m, share: mixture_cs_lower(k, m, alpha))
    print("\nBernstein rho of the mean (smaller is better), ||F|| = 0.93 (the quickstart's median):")
    print(f"{'m':>7} {'fixed (alpha/2)':>16} {'look':>10} {'change':>8}")
    # The certifier gives the mean event half of its alpha (docs/certificates.md).
    for m in shown:
        fixed = bernstein_rho(m, alpha / 2, 0.93)
        look = bernstein_rho(m, share[m] / 2, 0.93)
        print(f"{m:>7} {fixed:>16.5f} {look:>10.5f} {100 * (look / fixed - 1):>7.1f}%")


if __name__ == "__main__":
    main()
