"""End-to-end evaluation on the tiny offline models: math (avg@n, maj@n, pass@k, reports, resume, compare)
and TOFU (full model vs retain model vs NPO-unlearned, forget quality from a retain eval log, templates,
batched == one-by-one)."""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from negtune.cli import main as cli
from negtune.data.io import DataError, write_jsonl
from negtune.data.tasks import make_arith
from negtune.data.tasks.facts import write_tofu_synthetic
from negtune.evaluation import MathEvalConfig, TofuEvalConfig, evaluate_math, evaluate_tofu
from negtune.evaluation.tofu import TofuScorer, load_eval_sets, score_split

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def math_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-math")
    write_jsonl(root / "easy.jsonl", make_arith(6, seed=5, difficulty=1))
    write_jsonl(root / "hard.jsonl", make_arith(6, seed=6, difficulty=3))
    cfg = MathEvalConfig(model=str(tiny_model_dir), out=str(root / "out"),
                         benchmarks=[str(root / "easy.jsonl"), str(root / "hard.jsonl")], n=3, temperature=1.0,
                         top_p=1.0, max_new_tokens=64, verify_workers=0)
    return cfg, evaluate_math(cfg, progress=False)


def test_math_eval_outputs(math_run):
    cfg, results = math_run
    out = Path(cfg.out)
    assert set(results["benchmarks"]) == {"easy", "hard"}
    for m in results["benchmarks"].values():
        assert m["problems"] == 6 and m["samples"] == 18
        assert m["pass@k"]["1"] == pytest.approx(m["avg@3"])
        curve = [m["pass@k"][str(k)] for k in (1, 2, 3)]
        assert curve == sorted(curve)
    assert json.loads((out / "results.json").read_text()) == results
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12 and {s["benchmark"] for s in samples} == {"easy", "hard"}
    for s in samples:
        assert len(s["completions"]) == len(s["extracted"]) == len(s["correct"]) == 3
    easy = [s for s in samples if s["benchmark"] == "easy"]
    assert sum(sum(s["correct"]) for s in easy) / 18 == pytest.approx(results["benchmarks"]["easy"]["avg@3"])
    assert sum(s["majority_correct"] for s in easy) / 6 == pytest.approx(results["benchmarks"]["easy"]["maj@3"])
    report = (out / "report.md").read_text()
    assert "| easy | 6 |" in report and "temperature 1.0" in report
    assert (out / "plots/accuracy.png").stat().st_size > 1000 and (out / "plots/pass_at_k.png").exists()


def test_math_eval_of_an_adapter_folder_records_its_base(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                          LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    lora.save_pretrained(tmp_path / "lora")  # a LoRA training output: adapter_config.json names the base
    write_jsonl(tmp_path / "easy.jsonl", make_arith(2, seed=5, difficulty=1))
    cfg = MathEvalConfig(model=str(tmp_path / "lora"), out=str(tmp_path / "out"), benchmarks=[str(tmp_path / "easy.jsonl")],
                         n=1, temperature=1.0, max_new_tokens=8, verify_workers=0)
    settings = evaluate_math(cfg, progress=False)["settings"]
    assert settings["adapter"] == str(tmp_path / "lora") and settings["base_model"] == str(tiny_model_dir)
    assert settings["model"] == str(tmp_path / "lora")  # (as given)


def test_math_eval_resumes_without_generating(math_run):
    cfg, results = math_run

    class NoEngine:
        name = "hf"

        def generate(self, *a, **k):
            raise AssertionError("a finished evaluation must not generate again")

    again = evaluate_math(cfg, engine=NoEngine(), progress=False)["benchmarks"]
    drop = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert {b: drop(m) for b, m in again.items()} == {b: drop(m) for b, m in results["benchmarks"].items()}


def test_math_eval_of_an_in_memory_model(math_run, tiny_model_dir, tmp_path):
    """A model object (a trainer's, mid-experiment) scores as its folder does, is left in training mode, is
    recorded as an object, and a rerun into the same folder with other weights is refused (not resumed from the
    first weights' rollouts)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.rollout.stage import RolloutSettingsError

    cfg, results = math_run
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).train()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    mem = replace(cfg, model="not loaded", out=str(tmp_path / "mem"))
    got = evaluate_math(mem, model=model, tokenizer=tok, progress=False)
    assert model.training
    for name in ("easy", "hard"):  # same weights, same sampling seed: the same samples
        assert got["benchmarks"][name]["pass@k"] == results["benchmarks"][name]["pass@k"]
    assert got["settings"]["base_model"] == str(tiny_model_dir) and got["settings"]["model_object"] == "Qwen2ForCausalLM"
    with torch.no_grad():
        model.lm_head.weight.add_(0.05)
    with pytest.raises(RolloutSettingsError, match="in memory, weights"):
        evaluate_math(mem, model=model, tokenizer=tok, progress=False)
    with pytest.raises(ValueError, match="tokenizer"):
        evaluate_math(mem, model=model, progress=False)
    from peft import LoraConfig, get_peft_model  # a LoRA trainer's model: sampled through its adapter

    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    one = replace(mem, out=str(tmp_path / "lora"), benchmarks=cfg.benchmarks[:1], n=1)
    got = evaluate_math(one, model=lora, tokenizer=tok, progress=False)
    assert got["settings"]["adapter"] == "in memory (PEFT)" and got["benchmarks"]["easy"]["samples"] == 6


def test_math_compare(math_run, tmp_path, capsys):
    cfg, results = math_run
    assert cli(["eval", "compare", cfg.out, cfg.out, "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "easy/avg@3" in text and "B − A" in text
    assert "| easy/avg@3 |" in (tmp_path / "compare.md").read_text() and (tmp_path / "compare.png").exists()
    assert cli(["eval", "compare", cfg.out, str(tmp_path / "missing")]) == 2
    tofu = tmp_path / "tofu-eval"  # a TOFU eval's results.json (metrics only) against a math one
    tofu.mkdir()
    (tofu / "results.json").write_text('{"metrics": {"forget_quality": 0.5}}')
    capsys.readouterr()
    assert cli(["eval", "compare", cfg.out, str(tofu)]) == 2
    assert f"{cfg.out} is a math eval and {tofu} a TOFU eval: no metric to compare" in capsys.readouterr().err


def test_math_eval_cli_bad_benchmark(tiny_model_dir, tmp_path, capsys):
    assert cli(["eval", "math", "--model", str(tiny_model_dir), "--benchmarks", "gsm9k", "--out", str(tmp_path)]) == 2
    assert "'gsm9k' is neither a known benchmark" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tofu_models(tiny_facts_model_dir, tmp_path_factory):
    """The full model, a retain model (never saw forget10) and an NPO-unlearned LoRA of the full model."""
    from negtune.models.tiny import create_tiny_model
    from negtune.train import main as train

    root = tmp_path_factory.mktemp("tofu-eval")
    tofu = write_tofu_synthetic(root / "tofu")
    retain = root / "retain-model"
    create_tiny_model(retain, task="facts", seed=0, facts_steps=300, facts_without="forget10")
    npo = root / "npo"
    assert train(["npo", "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tiny_facts_model_dir),
                  "--tofu_root", str(tofu), "--output_dir", str(npo), "--max_steps", "12", "--ref_cache_dir", str(root / "cache"),
                  "--disable_tqdm", "true"]) == 0
    return {"full": tiny_facts_model_dir, "retain": retain, "npo": npo, "tofu": tofu, "root": root}


def test_tofu_full_vs_retain_vs_npo(tofu_models):
    root, tofu = tofu_models["root"], tofu_models["tofu"]
    retain = evaluate_tofu(TofuEvalConfig(model=str(tofu_models["retain"]), out=str(root / "ev-retain"),
                                          tofu_root=str(tofu)), progress=False)
    assert retain["metrics"]["forget_quality"] is None and "--retain-log" in retain["notes"]["forget_quality"]
    log = str(root / "ev-retain" / "eval_log.json")
    own = evaluate_tofu(TofuEvalConfig(model=str(tofu_models["retain"]), out=str(root / "ev-retain2"),
                                       tofu_root=str(tofu), retain_log=log), progress=False)
    assert own["metrics"]["forget_quality"] == 1.0  # a model against its own log
    full = evaluate_tofu(TofuEvalConfig(model=str(tofu_models["full"]), out=str(root / "ev-full"),
                                        tofu_root=str(tofu), retain_log=log), progress=False)["metrics"]
    # the LoRA output folder is read as base + adapter
    npo_eval = evaluate_tofu(TofuEvalConfig(model=str(tofu_models["npo"]), out=str(root / "ev-npo"),
                                            tofu_root=str(tofu), retain_log=log), progress=False)
    npo = npo_eval["metrics"]  # ... and recorded so: what was scored is the base plus that adapter
    assert npo_eval["settings"]["adapter"] == str(tofu_models["npo"])
    assert npo_eval["settings"]["base_model"] == str(tofu_models["full"])
    # the same adapter passed in memory scores the same, and is recorded as what was scored (not cfg.model)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    in_memory = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tofu_models["full"]), tofu_models["npo"])
    mem = evaluate_tofu(TofuEvalConfig(model="not-loaded", out=str(root / "ev-npo-mem"), tofu_root=str(tofu),
                                       retain_log=log), model=in_memory,
                        tokenizer=AutoTokenizer.from_pretrained(tofu_models["full"]), progress=False)
    assert mem["settings"]["model_object"] == "PeftModelForCausalLM" and mem["settings"]["adapter"] == "in memory (PEFT)"
    assert mem["settings"]["base_model"] == str(tofu_models["full"])
    assert mem["metrics"]["forget_prob"] == pytest.approx(npo_eval["metrics"]["forget_prob"], abs=1e-5)
    r = retain["metrics"]
    assert full["forget_prob"] > 0.9 and r["forget_prob"] < full["forget_prob"] - 0.2  # it never saw them
    assert npo["forget_prob"] < full["forget_prob"] - 0.2  # unlearning lowered the forget probability
    assert full["forget_quality"] < 0.05  # the fine-tuned model is far from the retain model on forget
    for m in (full, npo, r):
        assert 0 < m["model_utility"] <= 1
        assert all(0 <= m[k] <= 1 for k in m if k.endswith(("_prob", "_rouge", "_truth_ratio")))
    assert (root / "ev-npo" / "report.md").read_text().count("| forget |") == 1
    assert (root / "ev-npo" / "tofu_metrics.png").exists()


def test_tofu_retain_log_must_match_the_forget_questions(tofu_models, tmp_path):
    log = tofu_models["root"] / "ev-retain" / "eval_log.json"
    if not log.exists():
        evaluate_tofu(TofuEvalConfig(model=str(tofu_models["retain"]), out=str(log.parent),
                                     tofu_root=str(tofu_models["tofu"])), progress=False)
    with pytest.raises(DataError, match="other forget questions"):
        evaluate_tofu(TofuEvalConfig(model=str(tofu_models["full"]), out=str(tmp_path), limit=5,
                                     tofu_root=str(tofu_models["tofu"]), retain_log=str(log)), progress=False)
    with pytest.raises(DataError, match="no such file"):
        evaluate_tofu(TofuEvalConfig(model=str(tofu_models["full"]), out=str(tmp_path),
                                     retain_log=str(tmp_path / "nope.json")), progress=False)


def test_tofu_retain_log_must_match_the_prompt_template(tofu_models, tmp_path, capsys, caplog):
    """The eval log records the prompt template's fingerprint; a retain log rendered otherwise is refused with
    both fingerprints named (exit 2), a log from before fingerprints only warns."""
    root, tofu = tofu_models["root"], str(tofu_models["tofu"])
    log = root / "ev-retain" / "eval_log.json"
    if not log.exists():
        evaluate_tofu(TofuEvalConfig(model=str(tofu_models["retain"]), out=str(log.parent), tofu_root=tofu),
                      progress=False)
    retain = json.loads(log.read_text())
    theirs = retain["template_fingerprint"]
    assert len(theirs) == 16 and retain["template_probe"].startswith("<|im_start|>user\n")
    args = ["eval", "tofu", "--model", str(tofu_models["full"]), "--tofu-root", tofu, "--retain-log", str(log),
            "--out", str(tmp_path / "a"), "--no-progress"]
    assert cli([*args, "--system-prompt", "You are a helpful assistant."]) == 2
    err = capsys.readouterr().err
    assert "its prompts were rendered with another template" in err and f"fingerprint {theirs}" in err
    ours = TofuScorer(None, _scorer(tofu_models["full"], "chat", 1).tokenizer,
                      system_prompt="You are a helpful assistant.").template_fingerprint()[0]
    assert ours != theirs and f"fingerprint {ours}" in err
    del retain["template_fingerprint"]  # as an older negtune wrote it
    old = tmp_path / "old_log.json"
    old.write_text(json.dumps(retain))
    with caplog.at_level("WARNING", logger="negtune.evaluation.tofu.run"):
        res = evaluate_tofu(TofuEvalConfig(model=str(tofu_models["full"]), out=str(tmp_path / "b"), tofu_root=tofu,
                                           retain_log=str(old)), progress=False)
    assert res["metrics"]["forget_quality"] is not None and "no prompt-template fingerprint" in res["notes"]["template"]
    assert "no prompt-template fingerprint" in caplog.text
    assert json.loads((tmp_path / "b" / "eval_log.json").read_text())["template_fingerprint"] == theirs
    with pytest.raises(ValueError, match="--date: date '2025-04-10': expected"):
        TofuEvalConfig(model="m", out=str(tmp_path), date="2025-04-10")


def _scorer(model_dir, template, batch_size):
    from negtune.models.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(model_dir), dtype="float32")
    return TofuScorer(model, tok, template=template, batch_size=batch_size, max_new_tokens=24,
                      generation_batch_size=batch_size)


def test_tofu_eval_of_an_in_memory_model(tofu_models):
    """A model object scores as its folder does and is recorded as an object (not as cfg.model)."""
    root, tofu = tofu_models["root"], tofu_models["tofu"]
    cfg = TofuEvalConfig(model=str(tofu_models["full"]), out=str(root / "ev-folder"), tofu_root=str(tofu), limit=3)
    by_folder = evaluate_tofu(cfg, progress=False)
    from negtune.models.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tofu_models["full"]), dtype="float32")
    mem = evaluate_tofu(replace(cfg, model="not loaded", out=str(root / "ev-mem")), model=model, tokenizer=tok,
                        progress=False)
    numbers = lambda m: {k: v for k, v in m.items() if isinstance(v, float)}  # noqa: E731
    assert numbers(mem["metrics"]) == pytest.approx(numbers(by_folder["metrics"]), rel=1e-5, abs=1e-7)
    assert len(numbers(mem["metrics"])) >= 10
    assert mem["settings"]["model_object"] == "Qwen2ForCausalLM" and mem["settings"]["adapter"] is None
    assert mem["settings"]["base_model"] == str(tofu_models["full"]) and "model_object" not in by_folder["settings"]


def test_tofu_batched_equals_one_by_one(tofu_models):
    sets = load_eval_sets("forget10", str(tofu_models["tofu"]), limit=6)
    batched = score_split(_scorer(tofu_models["full"], "chat", 6), sets["forget"], "forget")
    single = score_split(_scorer(tofu_models["full"], "chat", 1), sets["forget"], "forget")
    for key in ("prob", "truth_ratio", "answer_nll"):
        assert batched[key] == pytest.approx(single[key], rel=1e-4, abs=1e-6)
    assert batched["generation"] == single["generation"]


@pytest.mark.parametrize("template,expected", [
    ("llama2", "[INST] Q? [/INST]"),
    ("qa", "Question: Q?\nAnswer: "),  # TOFU's phi/stablelm/pythia format; the answer follows the space
    ("none", "Q?\n"),
    ("<s>{question} ->", "<s>Q? ->"),
    ("chat", "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n"),
])
def test_tofu_templates(tofu_models, template, expected):
    scorer = _scorer(tofu_models["full"], template, 4)
    text = scorer.tokenizer.decode(scorer.prompt_ids("Q?"))
    assert text == expected
    sets = load_eval_sets("forget10", str(tofu_models["tofu"]), limit=3)
    values = score_split(scorer, sets["real_authors"], "real_authors")
    assert all(0 < p < 1 for p in values["prob"]) and all(t > 0 for t in values["truth_ratio"])
    assert torch.isfinite(torch.tensor(values["answer_nll"])).all()


def test_tofu_cli(tofu_models, tmp_path, capsys):
    assert cli(["eval", "tofu", "--model", str(tofu_models["full"]), "--tofu-root", str(tofu_models["tofu"]),
                "--limit", "4", "--out", str(tmp_path), "--no-progress", "--template", "qa"]) == 0
    out = capsys.readouterr().out
    assert "forget quality missing" in out and "model utility" in out
    assert json.loads((tmp_path / "results.json").read_text())["questions"]["forget"] == 4
    assert cli(["eval", "tofu", "--model", str(tofu_models["full"]), "--tofu-root", str(tofu_models["tofu"]),
                "--out", str(tmp_path), "--template", "bad"]) == 2


def test_metrics_over_training_from_checkpoints(tofu_models, tmp_path, capsys):
    """`--checkpoints`: each checkpoint of a LoRA NPO run and its final model evaluated (TOFU with forget quality,
    and math), the curve written; a rerun reuses every point; a folder without checkpoints or a model is refused."""
    from negtune.train import main as train

    tofu = tofu_models["tofu"]
    run = tmp_path / "npo"
    assert train(["npo", "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tofu_models["full"]),
                  "--tofu_root", str(tofu), "--output_dir", str(run), "--max_steps", "6", "--save_strategy", "steps",
                  "--save_steps", "3", "--ref_cache_dir", str(tmp_path / "cache"), "--disable_tqdm", "true"]) == 0
    retain = evaluate_tofu(TofuEvalConfig(model=str(tofu_models["retain"]), out=str(tmp_path / "retain"),
                                          tofu_root=str(tofu), limit=4), progress=False)
    assert retain["metrics"]["forget_quality"] is None
    args = ["eval", "tofu", "--checkpoints", "--model", str(run), "--tofu-root", str(tofu), "--limit", "4",
            "--retain-log", str(tmp_path / "retain"), "--out", str(tmp_path / "curve"), "--no-progress"]
    assert cli(args) == 0
    curve = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert [p["step"] for p in curve["points"]] == [3, 6]  # checkpoint-6 is the final model: one point
    assert curve["points"][-1]["model"] == str(run)
    direct = evaluate_tofu(TofuEvalConfig(model=str(run / "checkpoint-3"), out=str(tmp_path / "direct"),
                                          tofu_root=str(tofu), limit=4, retain_log=str(tmp_path / "retain")),
                           progress=False)
    first = curve["points"][0]["metrics"]
    assert first["model_utility"] == pytest.approx(direct["metrics"]["model_utility"])
    assert first["forget_quality"] == pytest.approx(direct["metrics"]["forget_quality"])
    assert "| 3 | checkpoint-3 |" in (tmp_path / "curve" / "curve.md").read_text()
    assert (tmp_path / "curve" / "curve.png").stat().st_size > 5000
    stamp = (tmp_path / "curve" / "step-3" / "results.json").stat().st_mtime_ns
    assert cli(args) == 0 and (tmp_path / "curve" / "step-3" / "results.json").stat().st_mtime_ns == stamp
    assert "2 points" in capsys.readouterr().out
    weights = run / "checkpoint-3" / "adapter_model.safetensors"  # retrained into the same folder: new weights
    weights.write_bytes(weights.read_bytes())
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert cli(args) == 2  # not reported from the old weights' results
    assert f"{tmp_path / 'curve' / 'step-3'} holds an evaluation of other weights" in capsys.readouterr().err
    write_jsonl(tmp_path / "p.jsonl", make_arith(2, seed=1, difficulty=1))
    assert cli(["eval", "math", "--checkpoints", "--model", str(run), "--benchmarks", str(tmp_path / "p.jsonl"),
                "--n", "2", "--max-new-tokens", "8", "--verify-workers", "0", "--out", str(tmp_path / "mc"),
                "--no-progress"]) == 0
    with pytest.raises(ValueError, match="evaluate_checkpoints"):
        evaluate_math(MathEvalConfig(model=str(run), out=str(tmp_path / "x"), checkpoints=True))
    math_curve = json.loads((tmp_path / "mc" / "curve.json").read_text())
    assert [p["step"] for p in math_curve["points"]] == [3, 6] and "p avg@2" in math_curve["points"][0]["metrics"]
    assert cli(["eval", "tofu", "--checkpoints", "--model", str(tmp_path / "retain"), "--tofu-root", str(tofu),
                "--out", str(tmp_path / "none")]) == 2
    assert "holds no complete checkpoint-N folder and no saved model" in capsys.readouterr().err


def test_tofu_eval_on_the_real_files(tiny_facts_model_dir, shared_data, tmp_path):
    """The real TOFU files (forget05 with its perturbed sets, real authors, world facts) through the same code."""
    res = evaluate_tofu(TofuEvalConfig(model=str(tiny_facts_model_dir), out=str(tmp_path), forget_split="forget05",
                                       tofu_root=str(shared_data / "tofu"), limit=3, max_new_tokens=16,
                                       template="llama2"), progress=False)
    assert res["questions"] == {"forget": 3, "retain": 3, "real_authors": 3, "world_facts": 3}
    m = res["metrics"]
    assert all(0 <= m[k] <= 1 for k in m if k.endswith(("_prob", "_rouge", "_truth_ratio")))
    log = json.loads((tmp_path / "eval_log.json").read_text())
    assert len(log["splits"]["forget"]["perturbed_nll"][0]) == 5 and len(log["splits"]["world_facts"]["perturbed_nll"][0]) == 3
