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
                                 "qcrd_noans", "nft_offline", "rft_offline"}
    pairs = {"qcrd:qcrd_pos", "qcrd:sft", "unlikelihood:sft", "unlikelihood_a0.1:sft", "unlikelihood_mixed:sft",
             "nft_offline:rft_offline"}
    assert set(r["differences"]) == set(r["trap_differences"]) == pairs and r["differences"]["qcrd:sft"]["n"] == 1
    assert len(list(tmp_path.rglob("trap*steps/config.json"))) == 1
    problems = [json.loads(x) for x in next(tmp_path.rglob("eval.jsonl")).read_text().splitlines()]
    assert len(problems) == 4 and all(p["trap_answer"] not in (None, p["answer"]) for p in problems)
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 18  # 9 variants x (tuning seed + 1 seed)
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
    # another evaluation set: the kept models are evaluated on it, none is trained again
    weights = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("model.safetensors")}
    other = [*cmd[:-1], str(tmp_path / "r77.json"), "--eval-seed", "77", "--methods", "nft_offline,rft_offline",
             "--compare", "nft_offline:rft_offline"]
    third = subprocess.run(other, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("model.safetensors")} == weights
    again = sorted(tmp_path.rglob("run-es77.json"))
    assert len(again) == 4 and all((p.parent / "eval-es77" / "samples.jsonl").exists() for p in again)
    for p in again:
        first_eval, second_eval = json.loads((p.parent / "run.json").read_text()), json.loads(p.read_text())
        assert second_eval["train_s"] == first_eval["train_s"] and second_eval["rollout"] == first_eval["rollout"]
    r77 = json.loads((tmp_path / "r77.json").read_text())
    assert r77["settings"]["eval_seed"] == 77 and set(r77["methods"]) == {"nft_offline", "rft_offline"}
    eval77 = [json.loads(x) for x in next(tmp_path.rglob("eval-es77.jsonl")).read_text().splitlines()]
    assert {p["prompt"] for p in eval77} != {p["prompt"] for p in problems}
    module, _ = run_all.benchmarks()["negatives_trap"]
    text = module.results_section(r)
    assert "qcrd - qcrd_pos, avg@8" in text and "qcrd - qcrd_pos, trap rate" in text
    assert r["methods"]["qcrd"]["mean_arith_error_rate"] >= 0 and r["methods"]["qcrd"]["trap_per_seed"][0] == next(
        json.loads(p.read_text())["eval"]["trap_rate"] for p in runs if "seed0/qcrd-" in str(p))

