"""The benchmark suite: the NPO benchmark compares implementations of one loss (its three variants must train
alike); the runner knows every script in benchmarks/, and each script renders its own RESULTS.md section."""

import math
import sys
from pathlib import Path

import pytest
from benchmark_sections import MINIMAL

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import npo_memory  # noqa: E402
import run_all  # noqa: E402


def test_npo_benchmark_variants_train_alike_and_report_their_figures():
    runs = {v: npo_memory.run_variant(v, "small", steps=3, batch=2, device="cpu", checkpointing=False,
                                      learning_rate=3e-6)
            for v in npo_memory.VARIANTS}
    start = 2 * math.log(2) / 0.1  # NPO's loss while policy == reference
    change = runs["open-unlearning"]["trained_loss"] - start
    # training moved the policy away from the reference, not so far that the loss saturates near 0 (measured
    # -4.11: loss 13.86 -> 9.75), so a different log-prob or gradient computation would show
    assert -12 < change < -1
    for v, r in runs.items():
        assert r["trained_loss"] - start == pytest.approx(change, rel=1e-4), v
        assert r["median_step_s"] > 0 and 0 < r["mean_answer_tokens"] < r["mean_tokens"]
    # peak memory is the resident set's high-water mark above the one before the run, which only means something
    # in a fresh process (here pytest's earlier tests set the mark, and the RSS counters lag by up to ~0.25 MB, so
    # it can read 0 or slightly below): the benchmark runs every variant in its own process, as here
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, npo_memory.__file__, "--variant", "negtune", "--shape", "small", "--steps",
                          "3", "--batch", "2", "--device", "cpu", "--dtype", "fp32"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    assert fresh["peak_mb"] > 1 and fresh["median_step_s"] > 0


def test_runner_knows_every_benchmark_script():
    in_folder = {p.stem for p in BENCHMARKS.glob("*.py")} - set(run_all.HELPERS)
    assert sorted(run_all.SCRIPTS) == sorted(in_folder)
    known = run_all.benchmarks()
    assert {Path(m.__file__).stem for m, _ in known.values()} == in_folder
    assert "gpu_check" in known  # `negtune bench --only gpu_check`
    assert list(MINIMAL) == list(known)  # every section has an entry in benchmark_sections.py, in RESULTS.md order


@pytest.mark.parametrize("name", list(MINIMAL))
def test_each_script_renders_its_own_section(name):
    module, spec = run_all.benchmarks()[name]
    section = module.results_section(MINIMAL[name])
    assert section.startswith("## ") and f"benchmarks/{Path(module.__file__).name}" in section.splitlines()[0]
    assert "|---|" in section and "<!--" not in section  # a table; the runner adds the markers
    block = run_all.block(module, spec, MINIMAL[name], " ".join(spec.full), 3.0, quick=False)
    assert block.startswith(f"<!-- bench:{name} -->\n{section}\n\nMeasured ")
    assert block.endswith(f"</details>\n<!-- /bench:{name} -->")


def test_gpu_check_without_cuda_is_a_skipped_section():
    module, spec = run_all.benchmarks()["gpu_check"]
    result = {"skipped": "no CUDA device on this machine"}
    block = run_all.block(module, spec, result, "", 1.0, quick=False)
    assert "Skipped: no CUDA device" in block and "negtune bench --only gpu_check" in block
    assert "raw JSON" not in block and "Measured" not in block


def test_negatives_unlearning_smoke_runs_resumes_and_reports(tmp_path):
    """The experiment end to end at smoke size (tiny bases, 4 steps, one seed): curves, matched utility, the
    paired difference, the figure; a rerun reuses every run (nothing retrained)."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_unlearning.py"
    cmd = [sys.executable, str(script), "--seeds", "0", "--tune-seed", "100", "--lrs", "5e-3", "--steps", "4",
           "--eval-every", "2", "--facts-steps", "30", "--work", str(tmp_path / "work"),
           "--methods", "ga,npo,npo+loreun", "--compare", "npo:ga,npo+loreun:npo",
           "--plot", str(tmp_path / "fig.png"), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["differences"]) == {"npo:ga", "npo+loreun:npo"}
    state = json.loads(next((tmp_path / "work").rglob("npo+loreun-lr0.005/trainer_state.json")).read_text())
    assert any("reweight_max" in h for h in state["log_history"])  # the plug-in reached the trainer
    for m in ("ga", "npo", "npo+loreun"):
        t = r["methods"][m]
        assert len(t["curves"]) == 1 and [p["step"] for p in t["curves"][0]] == [0, 2, 4]
        assert t["curves"][0][0] == r["methods"]["ga"]["curves"][0][0]  # both start from the same model
        assert t["curves"][0][-1]["forget_prob"] < t["curves"][0][0]["forget_prob"]  # it unlearned something
    assert (tmp_path / "fig.png").stat().st_size > 0
    module, _ = run_all.benchmarks()["negatives_unlearning"]
    assert "NPO vs GA" in module.results_section({**r, "methods": {m: r["methods"][m] for m in ("ga", "npo")},
                                                   "differences": {"npo:ga": r["differences"]["npo:ga"]}})
    assert "NPO+LoReUn - NPO" in module.results_section(r)
    runs = sorted((tmp_path / "work").rglob("curve.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0 and [p.stat().st_mtime_ns for p in runs] == stamps
    assert json.loads((tmp_path / "r.json").read_text())["methods"]["npo"]["curves"] == r["methods"]["npo"]["curves"]


def test_negatives_unlikelihood_and_rlvr_smoke(tmp_path):
    """The other two experiments at smoke size: they run, pair by seed and render their sections."""
    import json
    import subprocess
    import sys

    here = Path(run_all.__file__).parent
    ul = [sys.executable, str(here / "negatives_unlikelihood.py"), "--seeds", "0,1", "--lrs", "1e-3",
          "--base-steps", "10", "--steps", "2", "--methods", "mle,seq_ul", "--work", str(tmp_path / "ul"),
          "--json", str(tmp_path / "ul.json")]
    rl = [sys.executable, str(here / "negatives_rlvr.py"), "--pair", "ngrpo,grpo", "--seeds", "0,1", "--lrs", "2e-4",
          "--steps", "1", "--eval", "4", "--warm-s", "5", "--work", str(tmp_path / "rl"),
          "--json", str(tmp_path / "rl.json")]
    for cmd, name in ((ul, "negatives_unlikelihood"), (rl, "negatives_ngrpo_grpo")):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        r = json.loads((tmp_path / ("ul.json" if cmd is ul else "rl.json")).read_text())
        assert r["difference"]["n"] == 2 and r["difference"]["low"] is not None
        module, _ = run_all.benchmarks()[name]
        assert "Negatives that matter" in module.results_section(r)
    ul_r = json.loads((tmp_path / "ul.json").read_text())
    assert all(0 <= v <= 1 for v in ul_r["methods"]["seq_ul"]["seq_rep_4"])
    # another held-out set re-evaluates the kept models: nothing is trained again
    weights = sorted((tmp_path / "rl").rglob("model.safetensors"))
    stamps = [w.stat().st_mtime_ns for w in weights]
    proc = subprocess.run(rl + ["--eval-seed", "77"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [w.stat().st_mtime_ns for w in weights] == stamps and len(weights) == 7  # the base + 2 methods x (tuning seed + 2 seeds)
    for run in (tmp_path / "rl").rglob("run-es77.json"):
        again, first = json.loads(run.read_text()), json.loads((run.parent / "run.json").read_text())
        assert again["train_s"] == first["train_s"] and (run.parent / "eval-es77" / "results.json").exists()
    assert len(list((tmp_path / "rl").rglob("run-es77.json"))) == 6
    assert json.loads((tmp_path / "rl.json").read_text())["settings"]["eval_seed"] == 77
    # --task trap: the same runs from the trap model (built from the same base) on trap problems; --passk: each
    # seed's final model and the base sampled 16 times per problem, pass@k up to 16 paired by seed
    proc = subprocess.run(rl + ["--task", "trap", "--passk", "16", "--passk-limit", "2"], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trap = json.loads((tmp_path / "rl.json").read_text())
    assert trap["settings"]["task"] == "trap" and (tmp_path / "rl" / "trap-steps1-u4-eval4-smoke").is_dir()
    assert 0 <= trap["base"]["trap_rate"] <= 1 and all(0 <= t["trap_rate"] <= 1 for t in trap["methods"].values())
    p = trap["passk"]
    assert p["k"] == [1, 2, 4, 8, 16] and all(len(c) == 2 for c in p["per_seed"].values())
    assert all(c == sorted(c) for cs in p["per_seed"].values() for c in cs) and p["difference_auc"]["n"] == 2
    assert len(list((tmp_path / "rl").rglob("eval-n16-first2"))) == 4  # 2 methods x 2 seeds (the base: its own name)
    text = run_all.benchmarks()["negatives_ngrpo_grpo_trap"][0].results_section(trap)
    assert "on the trap task" in text and "pass@k far above 8" in text


def test_unlikelihood_on_a_pretrained_model_smoke(tiny_model_dir, shared_data, tmp_path):
    """The pretrained-model repetition experiment at smoke size (the tiny model stands in for SmolLM2): TOFU
    passages split into prefix/completion chunks by seed, a copy of the model without its chat template, LoRA
    runs merged and scored, the paired difference reported, a rerun reusing every run; then
    ``--from-mle``: runs that start from each seed's MLE model, reused as it is."""
    import json
    import os
    import subprocess
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    import negatives_unlikelihood_smollm2 as bench
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tofu = shared_data / "tofu" / "full.json"
    train, held = bench.split(tok, tofu, 0, 8)
    assert len(held) == 8 and len(train) > 8 * 192  # every chunk of the other 192 authors, at least one each
    assert bench.split(tok, tofu, 0, 8) == (train, held) and bench.split(tok, tofu, 1, 8)[1] != held
    held_prompts = {r["prompt"] for r in held}
    assert not held_prompts & {r["prompt"] for r in train}
    for r in held[:3]:
        assert len(tok(r["prompt"], add_special_tokens=False)["input_ids"]) == bench.PREFIX
        assert len(tok(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) >= bench.CHUNK - 2

    script = BENCHMARKS / "negatives_unlikelihood_smollm2.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "1e-3", "--steps", "2", "--held-out", "4",
           "--model", str(tiny_model_dir), "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    bad = subprocess.run(cmd + ["--methods", "mle,token"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--methods: unknown token" in bad.stderr
    env = {**os.environ, "NEGTUNE_DATA_DIR": str(shared_data)}
    first = subprocess.run(cmd + ["--methods", "token_ul"], capture_output=True, text=True, timeout=900, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["difference"]["n"] == 2 and all(0 <= v <= 1 for v in r["methods"]["seq_ul"]["seq_rep_4"])
    plain = next(tmp_path.rglob("plain-lm"))
    assert AutoTokenizer.from_pretrained(plain).chat_template is None and tok.chat_template
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 9 and not list(tmp_path.rglob("adapter_config.json"))  # LoRA merged into each model
    assert r["vs_mle"]["token_ul"]["difference"]["n"] == 2 and list(r["methods"]) == ["mle", "seq_ul", "token_ul"]
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd + ["--methods", "token_ul"], capture_output=True, text=True, timeout=900, env=env).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert "seq-UL / MLE seq-rep-4" in bench.results_section(r) and "token_ul / MLE" in bench.results_section(r)

    # --from-mle: every run starts from its seed's MLE model above, which is reused, not trained again
    fine = subprocess.run(cmd + ["--from-mle", "1e-3"], capture_output=True, text=True, timeout=900, env=env)
    assert fine.returncode == 0, fine.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    second = sorted(p for p in tmp_path.rglob("run.json") if "from-mle-lr0.001" in str(p))
    assert len(second) == 6 and len(sorted(tmp_path.rglob("run.json"))) == 15
    f = json.loads((tmp_path / "r.json").read_text())
    mle_after = json.loads(next(p for p in runs if "seed0/mle-" in str(p)).read_text())["after"]
    assert json.loads(next(p for p in second if "seed0/mle-" in str(p)).read_text())["base"] == mle_after
    assert f["settings"]["from_mle"] == 1e-3 and "fine-tuning the MLE model" in bench.results_section(f)
    # the rule's bound from MLE's tuned run: a different selection over the same runs, none trained again
    stamps = [p.stat().st_mtime_ns for p in sorted(tmp_path.rglob("run.json"))]
    bound = subprocess.run(cmd + ["--from-mle", "1e-3", "--ppl-against", "mle"], capture_output=True, text=True,
                           timeout=900, env=env)
    assert bound.returncode == 0, bound.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.rglob("run.json"))] == stamps
    g = json.loads((tmp_path / "r.json").read_text())
    assert g["settings"]["ppl_against"] == "mle" and "+10% perplexity of MLE's chosen run" in bench.results_section(g)


def test_goldfish_memorisation_smoke(tmp_path):
    """The Goldfish experiment end to end at smoke size: both runs trained and scored from one initial model, the
    paired difference reported, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "goldfish_memorisation.py"
    cmd = [sys.executable, str(script), "--seeds", "0", "--steps", "4", "--suffix", "8", "--work", str(tmp_path),
           "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    for m in ("standard", "goldfish"):
        assert 0 <= r["methods"][m]["exact_match"][0] <= 1 and 0 <= r["methods"][m]["matched_prefix"][0] <= 8
        assert r["methods"][m]["held_out_ppl"][0] > 1
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 2
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["goldfish_memorisation"]
    assert "Goldfish - standard, exact-match rate" in module.results_section(r)


def test_negatives_nat_smoke(tiny_model_dir, tmp_path):
    """The NAT experiment at smoke size: every method trained on the same rollout per seed, NAT evaluated with its
    marker and the others without, the paired differences reported, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_nat.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "3e-4", "--steps", "1", "--prompts", "8",
           "--difficulty", "1", "--eval", "4", "--base", str(tiny_model_dir), "--methods", "nat,sft,rft_offline", "--compare", "nat:sft,nat:rft_offline",
           "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["differences"]) == {"nat:sft", "nat:rft_offline"} and r["differences"]["nat:sft"]["n"] == 2
    assert r["methods"]["sft"]["negatives"] == 0 == r["methods"]["rft_offline"]["negatives"]
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 9  # 3 methods x (tuning seed + 2 seeds)
    for run in runs:
        variant = json.loads(run.read_text())["variant"]
        prompt = json.loads((run.parent / "eval" / "samples.jsonl").read_text().splitlines()[0])["prompt"]
        assert prompt[-1]["content"].endswith("Solve the problem correctly.") == (variant == "nat")
    rollouts = {json.loads(p.read_text())["data_fingerprint"] for p in tmp_path.rglob("rollout/settings.json")}
    assert len(rollouts) == 3  # one rollout per seed, shared by its methods
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_nat"]
    assert "nat - sft, avg@8" in module.results_section(r)


def test_negatives_token_forget_smoke(tiny_model_dir, tmp_path):
    """The token-forgetting experiment at smoke size: noisy data per seed (the corrupted rows' chains recomputed
    from the wrong step), one reference per seed and rate shared by forget and ignore, the split's precision and
    the paired differences reported, a rerun reusing every run."""
    import json
    import re
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_token_forget.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "1e-3", "--steps", "1", "--ref-steps", "1",
           "--train", "20", "--eval", "4", "--base", str(tiny_model_dir), "--work", str(tmp_path),
           "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["differences"]) == {"forget:sft", "ignore:sft", "forget:ignore", "sft_clean:sft"}
    assert 0 < r["split"]["negative_share_corrupted"] < 1 and 0 < r["split"]["negative_share_clean"] < 1
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 12 and len(list(tmp_path.rglob("reference-lr*/model/config.json"))) == 3
    rows = [json.loads(line) for line in next(tmp_path.rglob("seed0/train.jsonl")).read_text().splitlines()]
    assert sum(r["corrupted"] for r in rows) == 6  # 30% of 20
    for row in rows:  # a corrupted chain stays consistent from the wrong step on, and its answer is wrong
        boxed = re.search(r"boxed\{(-?\d+)\}", row["completion"])[1]
        steps = re.findall(r"(\d+) ([+*-]) (\d+) = (\d+)\.", row["completion"])
        assert (boxed == row["answer"]) != row["corrupted"] and boxed == steps[-1][3]
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_token_forget"]
    text = module.results_section(r)
    assert "forget - sft, avg@8" in text and "of the answer tokens of corrupted rows marked negative" in text


def test_negatives_negassist_smoke(tiny_model_dir, tmp_path):
    """The negative-assisted distillation experiment at smoke size: one rollout per seed, the integrated model and
    the student share their first two stages, the integrated model is evaluated with the transformers engine,
    the paired differences reported, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_negassist.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "3e-3", "--steps", "1", "--prompts", "8",
           "--eval", "4", "--base", str(tiny_model_dir), "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]) == {"sft", "integrated", "student", "sft_3x"} and r["differences"]["student:sft"]["n"] == 2
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 12 and len(list(tmp_path.rglob("stages-lr*/integrate/model/negassist.json"))) == 3
    assert set(r["asc"]) == {"sft", "student"} and len(r["asc"]["student"]["asc"]) == 2  # ranker re-votes
    engines = {json.loads((run.parent / "eval" / "results.json").read_text())["settings"]["engine"] for run in runs}
    assert engines == {"hf"}
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_negassist"]
    assert "student - sft, avg@8" in module.results_section(r)


def test_negatives_steps_smoke(tiny_model_dir, tmp_path):
    """The step-level experiment at smoke size: per seed a rollout, its step values and an equal-budget rollout
    (as many more samples as the continuations drew), every variant on its data, the pit check, the paired
    differences, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_steps.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "1e-3", "--steps", "1", "--prompts", "16",
           "--n", "4", "--k", "2", "--difficulty", "1", "--eval", "4", "--base", str(tiny_model_dir),
           "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]) == {"step", "nsa", "step_dpo", "nft", "outcome", "outcome_small", "step_oracle"}
    d = r["data"]
    assert d["samples_budget"] == 16 * d["n_budget"] and d["continuations"] > 0
    assert abs(d["samples_budget"] - (d["samples_small"] + d["continuations"])) <= 16  # equal budget, rounded
    assert r["methods"]["step"]["samples_drawn"] == d["samples_small"] + d["continuations"]
    assert sum(d["pits"].values()) > 0 and r["differences"]["step:nft"]["n"] == 2
    runs = sorted(tmp_path.rglob("run.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_steps"]
    text = module.results_section(r)
    assert "step - nft, avg@8" in text and "Monte-Carlo first pit" in text


def test_likra_learning_smoke(tmp_path):
    """The Likra experiment at smoke size: heads trained per seed and negative kind, every rule scored, the
    paired differences reported."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "likra_learning.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--sizes", "4", "--lrs", "3e-3", "--epochs", "1",
           "--eval", "3", "--warm-s", "5", "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    cell = r["curves"]["4"]
    assert set(cell) == {"likra_near", "positive", "base_likra_near", "base", "likra_random", "base_likra_random"}
    assert all(len(v) == 2 and all(0 <= x <= 1 for x in v) for v in cell.values())
    assert len(list(tmp_path.rglob("likra.json"))) == 5  # tuning + 2 seeds x 2 negative kinds
    module, _ = run_all.benchmarks()["likra_learning"]
    assert "Likra (near) - SFT" in module.results_section(r)
    # re-ranking: heads from each seed's own rollout pick one sample per held-out problem, every rule
    rerank = [sys.executable, str(script), "--mode", "rerank", "--seeds", "0,1", "--epochs", "1", "--eval", "4",
              "--rerank-prompts", "4", "--warm-s", "5", "--work", str(tmp_path), "--json", str(tmp_path / "rr.json")]
    proc = subprocess.run(rerank, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rr = json.loads((tmp_path / "rr.json").read_text())
    assert all(len(v) == 2 and all(0 <= x <= 1 for x in v) for v in rr["accuracy"].values())
    assert all(x <= rr["held_out"]["pass@8"] for v in rr["accuracy"].values() for x in v)  # a pick can't beat pass@8
    assert "learned verifier" in module.results_section(rr)


def test_click_on_the_repetition_task_smoke(tmp_path):
    """Click in the repetition experiment: the base's samples labeled by the diversity rule, Click trained on the
    gold text and the ranked pairs, scored and compared with MLE and seq-UL by seed (a base trained 50 steps, half
    the full run's 100: it already loops in some samples, so the rule finds both labels)."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_unlikelihood.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "1e-3", "--base-steps", "50", "--steps", "2",
           "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]) == {"mle", "seq_ul", "click"} and r["click"]["vs_seq_ul"]["n"] == r["click"]["vs_mle"]["n"] == 2
    assert "vs_mle" not in r  # Click against MLE is reported once, in its own block
    for s in r["click"]["samples"]:
        assert s["samples"] == 64 * 8 and 0 < s["negatives"] < s["samples"]  # both labels: pairs exist
    module, _ = run_all.benchmarks()["negatives_unlikelihood"]
    assert "Click - seq-UL" in module.results_section(r)


def test_trap_sections_say_which_run_they_are():
    module, _ = run_all.benchmarks()["negatives_trap"]
    heads = {n: module.results_section(MINIMAL[n]).splitlines()[0]
             for n in ("negatives_trap", "negatives_trap_replication", "negatives_trap_confirm",
                       "negatives_trap_qcrd_confirm", "negatives_trap_qcrd_noans_confirm")}
    assert "fresh" not in heads["negatives_trap"] and "a replication on fresh problems" in heads["negatives_trap_replication"]
    assert "a confirmatory run on fresh problems (1 seed): nft_offline vs rft_offline" in heads["negatives_trap_confirm"]
    assert "confirmatory run on fresh problems (2 seeds): qcrd vs qcrd_pos" in heads["negatives_trap_qcrd_confirm"]
    assert "qcrd_noans vs sft, qcrd_noans vs qcrd" in heads["negatives_trap_qcrd_noans_confirm"]
    assert len(set(heads.values())) == len(heads)  # each run its own RESULTS.md section
    assert "drawn with seed 4000 + s" in module.results_section(MINIMAL["negatives_trap_confirm"])


def test_rlvr_confirmatory_section_says_so():
    module, _ = run_all.benchmarks()["negatives_ngrpo_grpo_confirm"]
    first = module.results_section(MINIMAL["negatives_ngrpo_grpo"])
    confirm = module.results_section(MINIMAL["negatives_ngrpo_grpo_confirm"])
    assert "confirmatory" not in first and "problem seed 4242" in first
    assert "difficulty 4, a confirmatory run on fresh problems (2 seeds)" in confirm.splitlines()[0]
    assert "problem seed 5000" in confirm
