"""The repetition experiments' learning-rate rule (``benchmarks/negatives_unlikelihood.py``'s ``tuned_runs``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import negatives_unlikelihood as bench  # noqa: E402

# perplexity and seq-rep-4 after training, per (method, rate), from a start at perplexity 10.8: the tuning seed of
# the fine-tuning run (negatives_unlikelihood_smollm2_finetune), rounded
AFTER = {("mle", 1e-4): (10.48, 0.420), ("mle", 3e-4): (10.16, 0.417),
         ("seq_ul", 1e-4): (11.07, 0.142), ("seq_ul", 3e-4): (11.25, 0.112)}


def fake_run(seen: list):
    def run(method: str, lr: float, seed: int) -> dict:
        seen.append((method, lr, seed))
        ppl, rep = AFTER[method, lr] if seed == 100 else (10.0, 0.3)
        return {"train_s": 1.0, "base": {"ppl": 10.8}, "after": {"ppl": ppl, "seq_rep_4": rep}}
    return run


def test_rule_bound_from_the_start_or_from_mle():
    seen = []
    _, chosen, runs, spent = bench.tuned_runs(["mle", "seq_ul"], [1e-4, 3e-4], [0, 1], 100, fake_run(seen))
    # within +10% of the start (11.88) both seq-UL rates qualify: the lower repetition wins
    assert chosen == {"mle": 3e-4, "seq_ul": 3e-4} and len(spent) == 8
    assert [r["after"]["ppl"] for r in runs["seq_ul"]] == [10.0, 10.0]
    seen.clear()
    # MLE first even when listed second; seq-UL within +10% of MLE's chosen 10.16 (11.18): only 1e-4
    tuning, chosen, runs, _ = bench.tuned_runs(["seq_ul", "mle"], [1e-4, 3e-4], [0, 1], 100, fake_run(seen),
                                               ppl_against="mle")
    assert chosen == {"mle": 3e-4, "seq_ul": 1e-4} and seen[0][0] == "mle"
    assert list(runs) == ["seq_ul", "mle"] and ("seq_ul", 1e-4, 1) in seen and ("seq_ul", 3e-4, 1) not in seen
    assert tuning["seq_ul"]["0.0003"] == {"seq_rep_4": 0.112, "ppl": 11.25}


def test_rule_with_no_rate_in_bound_keeps_the_lowest_perplexity():
    results = {1e-4: {"base": {"ppl": 10.0}, "after": {"ppl": 12.0, "seq_rep_4": 0.1}},
               3e-4: {"base": {"ppl": 10.0}, "after": {"ppl": 11.5, "seq_rep_4": 0.2}}}
    assert bench.choose(results) == 3e-4 and bench.choose(results, reference_ppl=11.0) == 1e-4
    with pytest.raises(ValueError, match="ppl_against"):
        bench.tuned_runs(["mle"], [1e-4], [0], 100, fake_run([]), ppl_against="end")
