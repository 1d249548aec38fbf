"""Statistics for claims of the form "method A beats method B": paired differences over seeds with a
Student-t confidence interval, and reading a training curve at a matched level of another metric."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean of ``a_i - b_i`` (run i of both methods shares seed i) with its two-sided Student-t interval.

    With d_i = a_i - b_i, n seeds: mean d̄, s = stdev(d) (n - 1 in the denominator),
    CI = d̄ ± t_{(1+confidence)/2, n-1} · s / √n. ``excludes_zero`` is the claim the interval supports.
    Fewer than 2 pairs: no interval (``low``/``high`` are None).
    """
    if len(a) != len(b):
        raise ValueError(f"paired_difference: {len(a)} values against {len(b)}: pairs need one value per seed each")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(diffs)
    if n == 0:
        raise ValueError("paired_difference: no pairs")
    mean = statistics.fmean(diffs)
    low = high = None
    if n >= 2:
        from scipy import stats

        half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * statistics.stdev(diffs) / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"mean": mean, "low": low, "high": high, "n": n, "confidence": confidence, "per_seed": diffs,
            "excludes_zero": bool(low is not None and (low > 0 or high < 0))}


def value_at_level(xs: Sequence[float], ys: Sequence[float], level: float) -> float | None:
    """y where x first falls to ``level`` along a curve (points in training order), linearly interpolated
    between the two evaluated points around the crossing; None when x never gets that low.

    Used to compare methods at a matched amount of forgetting: e.g. model utility (y) at the step where the
    forget-set probability (x) first reaches the retain model's.
    """
    if len(xs) != len(ys) or not xs:
        raise ValueError("value_at_level: xs and ys must be non-empty and of equal length")
    if xs[0] <= level:
        return float(ys[0])
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x1 <= level:
            w = (x0 - level) / (x0 - x1)
            return float(y0 + w * (y1 - y0))
    return None


def format_difference(d: dict, digits: int = 3) -> str:
    """``+0.012 [+0.004, +0.020] (95% CI, 5 seeds)``."""
    f = f"{{:+.{digits}f}}"
    if d["low"] is None:
        return f"{f.format(d['mean'])} (1 seed: no interval)"
    return (f"{f.format(d['mean'])} [{f.format(d['low'])}, {f.format(d['high'])}] "
            f"({round(100 * d['confidence'])}% CI, {d['n']} seeds)")
