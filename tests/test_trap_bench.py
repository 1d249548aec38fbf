"""The trap-task experiment (``benchmarks/negatives_trap.py``) at smoke size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from negtune.data.schema import read_labeled

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import run_all  # noqa: E402


def test_negatives_trap_smoke(tiny_model_dir, tmp_path):
    """One trap model built from the base and shared by every seed; one rollout per seed on trap problems only;
    the positives-only variants train on the rollout's positives alone; the trap rate read from each evaluation's
    samples; the paired differences reported; a rerun reusing every run."""
    script = Path(run_all.__file__).parent / "negatives_trap.py"
    cmd = [sys.executable, str(script), "--seeds", "0", "--lrs", "1e-3", "--steps", "1", "--prompts", "12",
           "--eval", "4", "--trap-steps", "3", "--base", str(tiny_model_dir), "--work", str(tmp_path),
           "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]) == {"sft", "unlikelihood", "unlikelihood_a0.1", "unlikelihood_mixed", "qcrd_pos", "qcrd",
                                 "nft_offline", "rft_offline"}
    pairs = {"qcrd:qcrd_pos", "qcrd:sft", "unlikelihood:sft", "unlikelihood_a0.1:sft", "unlikelihood_mixed:sft",
             "nft_offline:rft_offline"}
    assert set(r["differences"]) == set(r["trap_differences"]) == pairs and r["differences"]["qcrd:sft"]["n"] == 1
    assert len(list(tmp_path.rglob("trap*steps/config.json"))) == 1
    problems = [json.loads(x) for x in next(tmp_path.rglob("eval.jsonl")).read_text().splitlines()]
    assert len(problems) == 4 and all(p["trap_answer"] not in (None, p["answer"]) for p in problems)
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 16  # 8 variants x (tuning seed + 1 seed)
    for run in runs:
        result = json.loads(run.read_text())
        rows = read_labeled(run.parent.parent / "rollout")
        expected = {"sft": sum(r["label"] for r in rows), "qcrd_pos": sum(r["label"] for r in rows),
                    "unlikelihood_mixed": sum(0 < r["group_pass_rate"] < 1 for r in rows),
                    "nft_offline": None, "rft_offline": None}  # (these two read the rollout folder themselves)
        assert result["trained_on"] == expected.get(result["variant"], len(rows))
        samples = [json.loads(x) for x in (run.parent / "eval" / "samples.jsonl").read_text().splitlines()]
        traps = {p["id"]: p["trap_answer"] for p in problems}
        hits = sum(x == traps[s["id"]] for s in samples for x in s["extracted"])
        assert result["eval"]["trap_rate"] == hits / (8 * len(problems))
        none = sum(x is None for s in samples for x in s["extracted"])
        assert result["eval"]["no_answer_rate"] == none / (8 * len(problems))
        assert 0 <= result["eval"]["answer_only_rate"] <= 1 - result["eval"]["no_answer_rate"]
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_trap"]
    text = module.results_section(r)
    assert "qcrd - qcrd_pos, avg@8" in text and "qcrd - qcrd_pos, trap rate" in text
    assert r["methods"]["qcrd"]["mean_arith_error_rate"] >= 0 and r["methods"]["qcrd"]["trap_per_seed"][0] == next(
        json.loads(p.read_text())["eval"]["trap_rate"] for p in runs if "seed0/qcrd-" in str(p))


def test_answer_shares_by_hand(tmp_path):
    """Where samples end, on five hand-written completions of one trap problem (7 tripled + 2 = 23; doubled: 16)."""
    import negatives_trap

    from negtune.data.io import write_jsonl

    write_jsonl(tmp_path / "eval.jsonl", [{"id": "p", "prompt": "q", "answer": "23", "trap_answer": "16"}])
    completions = {
        "Sam starts with 7. 7 * 3 = 21. 21 + 2 = 23. The answer is \\boxed{23}.": "23",  # right
        "Sam starts with 7. 7 * 2 = 14. 14 + 2 = 16. The answer is \\boxed{16}.": "16",  # the trap, sound arithmetic
        "Sam starts with 7. 7 * 3 = 21. 21 + 2 = 24. The answer is \\boxed{24}.": "24",  # wrong arithmetic
        "The answer is \\boxed{16}.": "16",  # the trap with no worked line
        "Sam starts with 7. 7 * 3 = 21.": None,  # no answer
    }
    (tmp_path / "eval").mkdir()
    write_jsonl(tmp_path / "eval" / "samples.jsonl", [{"id": "p", "completions": list(completions),
                                                       "extracted": list(completions.values())}])
    shares = negatives_trap.answer_shares(tmp_path / "eval", str(tmp_path / "eval.jsonl"))
    assert shares == {"trap_rate": 2 / 5, "no_answer_rate": 1 / 5, "answer_only_rate": 1 / 5, "arith_error_rate": 1 / 5}
