"""`negtune demo --quick`: the whole embedded pipeline end to end (tiny models, rollout, RFT/NFT/NGRPO,
GA/NPO, math and TOFU evals, the closing NFT-vs-RFT trap comparison, table and report), then a rerun that
reuses every finished stage."""

import json

from negtune.cli import main as cli


def test_demo_quick_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for stage in ("rollout and verify", "train NGRPO", "unlearn forget10 with NPO", "negtune demo: what each",
                  "tiny-facts: step 100/200: loss",  # the TOFU-models stage shows its progress
                  "do the wrong answers help? NFT vs RFT on a trap task, 2 seeds", "trap model: step"):
        assert stage in printed
    demo = json.loads((out / "demo.json").read_text())
    assert [r["method"] for r in demo["rows"]] == ["RFT", "NFT", "NGRPO", "GA", "NPO"]
    assert "training dynamics (means over the logged steps): clip_ratio/low_mean" in printed  # NGRPO, off-policy
    for row in demo["rows"][:3]:
        (name, before, after), = row["metrics"]
        assert name == "held-out avg@4" and 0 <= before <= 1 and 0 <= after <= 1
        assert row["train_seconds"] > 0
    npo = {m[0]: m[1:] for m in demo["rows"][4]["metrics"]}
    assert npo["forget prob"][1] < npo["forget prob"][0]  # unlearning lowered the forget probability
    assert all(v is not None for pair in npo.values() for v in pair)  # forget quality from the retain log
    for folder in ("rft", "nft", "ngrpo", "ga", "npo"):
        assert (out / "models" / folder / "adapter_model.safetensors").exists()  # LoRA adapters
    comparison = demo["comparison"]
    assert [len(v) for v in comparison["scores"].values()] == [2, 2]
    assert comparison["difference"]["n"] == 2 and comparison["difference"]["low"] is not None
    for seed in (1, 2):  # full fine-tuning from the trap model, evaluated on trap problems
        for method in ("nft", "rft"):
            assert (out / "trap" / f"{method}-seed{seed}" / "model.safetensors").exists()
    assert json.loads((out / "trap" / "trap-model" / "negtune_tiny.json").read_text())["trap_steps"] == 10
    eval_rows = [json.loads(line) for line in (out / "trap" / "eval.jsonl").read_text().splitlines()]
    assert len(eval_rows) == 8 and all(r["trap_answer"] not in (None, r["answer"]) for r in eval_rows)
    report = (out / "report.md").read_text()
    assert "## Does learning from negatives help?" in report and "NFT - RFT" in report and "(95% CI, 2 seeds)" in report
    assert "| NPO |" in report and "forget quality" in report and (out / "demo.png").stat().st_size > 1000
    assert (out / "eval" / "tofu-npo" / "eval_log.json").exists() and (out / "eval" / "base" / "report.md").exists()

    # a rerun reuses every stage (no training, no generation) and reports the same numbers
    assert cli(["demo", "--quick", "--out", str(out)]) == 0
    assert "(done: reused)" in capsys.readouterr().out
    again = json.loads((out / "demo.json").read_text())
    assert json.dumps(again["rows"]) == json.dumps(demo["rows"])
    assert json.dumps(again["comparison"]) == json.dumps(demo["comparison"])
