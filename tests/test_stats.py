"""Paired differences with a Student-t interval, and reading a curve at a matched level (hand-computed)."""

import math

import pytest

from negtune.evaluation.stats import format_difference, paired_difference, value_at_level


def test_paired_difference_against_hand_computed_t_interval():
    # d = [1, 2, 3]: mean 2, s = 1, t_{0.975, 2} = 4.302653, half-width 4.302653 / sqrt(3) = 2.484138
    d = paired_difference([2, 4, 6], [1, 2, 3])
    assert d["per_seed"] == [1.0, 2.0, 3.0] and d["mean"] == 2.0 and d["n"] == 3
    assert math.isclose(d["low"], 2 - 2.484138, abs_tol=1e-5) and math.isclose(d["high"], 2 + 2.484138, abs_tol=1e-5)
    assert not d["excludes_zero"]
    tight = paired_difference([1.1, 1.2, 1.3, 1.2, 1.1], [1.0, 1.0, 1.1, 1.0, 1.0])
    assert tight["excludes_zero"] and tight["low"] > 0
    assert "95% CI, 5 seeds" in format_difference(tight)


def test_paired_difference_edge_cases():
    one = paired_difference([1.0], [0.5])
    assert one["low"] is None and not one["excludes_zero"] and "no interval" in format_difference(one)
    with pytest.raises(ValueError, match="pairs"):
        paired_difference([1.0, 2.0], [1.0])
    zero_spread = paired_difference([1.0, 1.0], [0.5, 0.5])  # identical differences: a zero-width interval
    assert zero_spread["low"] == zero_spread["high"] == 0.5 and zero_spread["excludes_zero"]


def test_value_at_level_interpolates_the_first_crossing():
    xs, ys = [1.0, 0.6, 0.2, 0.1], [0.8, 0.7, 0.5, 0.1]
    assert math.isclose(value_at_level(xs, ys, 0.4), 0.6)  # halfway between (0.6, 0.7) and (0.2, 0.5)
    assert value_at_level(xs, ys, 0.2) == 0.5
    assert value_at_level(xs, ys, 1.5) == 0.8  # already there at the start
    assert value_at_level(xs, ys, 0.05) is None  # never reached
    assert value_at_level([1.0, 0.3, 0.9, 0.1], [1, 2, 3, 4], 0.5) == pytest.approx(1 + 5 / 7)  # the first one
    with pytest.raises(ValueError):
        value_at_level([], [], 0.5)


def test_repetition_metrics_hand_computed():
    from negtune.evaluation.repetition import rep_l, repetition_metrics, seq_rep_n

    loop = [1, 2, 3, 4] * 3  # 9 four-grams, 4 distinct
    assert seq_rep_n(loop, 4) == pytest.approx(1 - 4 / 9)
    assert seq_rep_n(list(range(10)), 4) == 0.0 and seq_rep_n([1, 2], 4) == 0.0
    assert rep_l([1, 2, 1, 1]) == pytest.approx(2 / 4) and rep_l([]) == 0.0
    assert rep_l([1, 2, 1], window=1) == 0.0  # the earlier 1 is outside a 1-token window
    m = repetition_metrics([loop, list(range(10))])
    assert m["seq_rep_4"] == pytest.approx((1 - 4 / 9) / 2) and m["uniq"] == 10.0
