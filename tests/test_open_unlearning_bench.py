"""The comparison with open-unlearning's own code (benchmarks/open_unlearning_tofu.py): negtune's side on a tiny
model, the model view open-unlearning's transformers reads, the objectives paired, and both sides where a
checkout of open-unlearning is given."""

import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import run_all  # noqa: E402


def _ou_quick_cmd(model, work, out, *extra):
    import sys

    script = Path(run_all.__file__).parent / "open_unlearning_tofu.py"
    _, spec = run_all.benchmarks()["open_unlearning_tofu"]
    return [sys.executable, str(script), *spec.quick, "--model", str(model), "--lr", "5e-3", "--work", str(work),
            "--json", str(out), *extra]


def test_open_unlearning_tofu_negtune_side_smoke(tiny_facts_model_dir, tmp_path):
    """The comparison's negtune side at smoke size on a tiny model: the TOFU subset is TOFU's own rows, the model
    to unlearn and the retain model are fine-tuned on it, NPO unlearns and both are scored; a rerun retrains
    nothing. (open-unlearning's side needs its checkout and environment: the test below.)"""
    import json
    import subprocess

    from negtune.data.paths import shared_data_dir
    from negtune.data.tofu import load_tofu_split

    if shared_data_dir() is None:
        pytest.skip("needs the shared TOFU files")
    # negtune's side alone, even where $NEGTUNE_OPEN_UNLEARNING is set
    cmd = _ou_quick_cmd(tiny_facts_model_dir, tmp_path / "work", tmp_path / "r.json", "--open-unlearning", "")
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["frameworks"] == ["negtune"] and "skipped" in r
    assert r["subset"] == {"forget": 20, "retain": 20, "general": 4, "retain_eval": 4}
    root = next((tmp_path / "work").rglob("tofu"))
    tofu = shared_data_dir() / "tofu"
    assert load_tofu_split("forget01", root) == load_tofu_split("forget01", tofu)[-20:]
    retain = {row["question"] for row in load_tofu_split("retain99", root)}
    assert {row["question"] for row in load_tofu_split("retain_perturbed", root)} <= retain
    base, npo = r["base_evals"]["negtune"]["full"], r["runs"]["negtune"]["npo"]["0"]
    assert npo["forget_prob"] < base["forget_prob"]  # it unlearned
    assert 0 <= npo["forget_quality"] <= 1 and npo["wall_s"] > npo["loop_s"] > 0
    stamps = [p.stat().st_mtime_ns for p in (tmp_path / "work").rglob("train_time.json")]
    assert len(stamps) == 1
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0
    assert [p.stat().st_mtime_ns for p in (tmp_path / "work").rglob("train_time.json")] == stamps
    module, _ = run_all.benchmarks()["open_unlearning_tofu"]
    assert "negtune's side only" in module.results_section(r)


def test_open_unlearning_comparison_pairs_the_same_objectives():
    """open-unlearning's NPO, GradDiff and SimNPO all add alpha * the retain NLL: each is compared with the negtune
    objective that does (NPO: npo_rt), with open-unlearning's hyper-parameters."""
    import open_unlearning_tofu as ou

    from negtune import methods

    for name, negtune_name in ou.NEGTUNE_METHOD.items():
        spec = methods.get(negtune_name)
        assert spec.retain == "nll" and spec.family == "unlearn", name
    assert ou.METHOD_ARGS["npo"] == {"beta": 0.1, "gamma": 1.0, "alpha": 1.0}
    assert ou.METHOD_ARGS["simnpo"] == {"beta": 4.5, "gamma": 0.125, "alpha": 1.0, "delta": 0.0}


def test_open_unlearning_model_view_is_the_same_model(tiny_model_dir, tmp_path):
    """The transformers-4.45 view of a transformers-5 folder (what open-unlearning loads) reads back, here, as
    the same model: same rope base, tokens, chat template and logits."""
    import json

    import open_unlearning_tofu as ou
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    view = ou.ou_model_view(Path(tiny_model_dir), tmp_path / "view")
    config = json.loads((view / "config.json").read_text())
    assert "rope_parameters" not in config and "rope_theta" in config and "torch_dtype" in config
    assert "chat_template" in json.loads((view / "tokenizer_config.json").read_text())
    models = [AutoModelForCausalLM.from_pretrained(p) for p in (tiny_model_dir, view)]
    toks = [AutoTokenizer.from_pretrained(p) for p in (tiny_model_dir, view)]
    chat = [{"role": "user", "content": "What is 2 + 3?"}]
    ids = [t.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False) for t in toks]
    assert ids[0] == ids[1]
    assert models[0].config.rope_parameters == models[1].config.rope_parameters
    with torch.no_grad():
        logits = [m(torch.tensor([ids[0]])).logits for m in models]
    assert torch.equal(logits[0], logits[1])


@pytest.mark.skipif(not (os.environ.get("NEGTUNE_OPEN_UNLEARNING") and os.environ.get("NEGTUNE_OU_PYTHON")),
                    reason="needs a checkout of open-unlearning ($NEGTUNE_OPEN_UNLEARNING) and a Python with its "
                           "requirements ($NEGTUNE_OU_PYTHON)")
def test_open_unlearning_tofu_both_sides_smoke(tiny_facts_model_dir, tmp_path):
    """Both frameworks at smoke size: open-unlearning's own train.py and eval.py run on the same subset and model,
    and their metrics come back under negtune's names, with the paired differences and the time ratio."""
    import json
    import subprocess

    import yaml

    cmd = _ou_quick_cmd(tiny_facts_model_dir, tmp_path / "work", tmp_path / "r.json", "--cross-eval", "both")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["frameworks"] == ["negtune", "open-unlearning"] and "skipped" not in r
    for fw in r["frameworks"]:
        full = r["base_evals"][fw]["full"]
        assert all(full[k] is not None for k in ("forget_prob", "forget_quality", "model_utility")), fw
    npo = r["summary"]["npo"]
    assert npo["time_ratio"]["wall_s"] > 0 and set(npo["difference"]) >= {"forget_prob"}
    assert set(npo["same_evaluator"]) == {"negtune", "open-unlearning"}
    # open-unlearning trained with the settings negtune was given
    run = next((tmp_path / "work").rglob("seed0"))
    theirs = yaml.safe_load((run / "open-unlearning" / ".hydra" / "config.yaml").read_text())["trainer"]
    ours = json.loads((run / "negtune" / "train_time.json").read_text())["cmd"]
    flag = lambda name: ours[ours.index(name) + 1]  # noqa: E731
    assert theirs["handler"] == "NPO" and ours[ours.index("train") + 1] == "npo_rt"
    assert float(theirs["args"]["learning_rate"]) == float(flag("--learning_rate"))
    assert theirs["args"]["num_train_epochs"] == int(flag("--num_train_epochs"))
    assert theirs["args"]["per_device_train_batch_size"] == int(flag("--per_device_train_batch_size"))
    assert theirs["args"]["warmup_steps"] == int(flag("--warmup_steps")) and theirs["args"]["seed"] == 0
    assert float(theirs["method_args"]["beta"]) == float(flag("--beta"))
    assert float(theirs["method_args"]["alpha"]) == float(flag("--retain_weight"))
    # the model view reads, under open-unlearning's transformers, as the same model: same logits
    view = next((tmp_path / "work").rglob("full-ou"))
    probe = ("import sys, json, torch; from transformers import AutoModelForCausalLM as M; "
             "m = M.from_pretrained(sys.argv[1]).eval(); "
             "print(json.dumps(m(torch.tensor([[1, 2, 3, 4, 5]])).logits[0, -1, :8].tolist()))")
    out = subprocess.run([os.environ["NEGTUNE_OU_PYTHON"], "-c", probe, str(view)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import torch
    from transformers import AutoModelForCausalLM

    here = AutoModelForCausalLM.from_pretrained(view.parent / "full").eval()
    with torch.no_grad():
        expected = here(torch.tensor([[1, 2, 3, 4, 5]])).logits[0, -1, :8]
    assert torch.allclose(torch.tensor(json.loads(out.stdout.strip().splitlines()[-1])), expected, atol=1e-5)


def test_negatives_unlearning_on_the_tofu_subset_smoke(tiny_facts_model_dir, tmp_path):
    """NPO vs GA on SmolLM2-TOFU's recipe (here a tiny model in SmolLM2's place): the subset model and its retain
    model are built once under --base-work, as open_unlearning_tofu.py builds them, and every seed unlearns the
    same model; the curves start at that model's evaluation."""
    import json
    import subprocess

    import negatives_unlearning as nl

    from negtune.data.paths import shared_data_dir

    if shared_data_dir() is None:
        pytest.skip("needs the shared TOFU files")
    _, spec = run_all.benchmarks()["negatives_unlearning_smollm2"]
    script = BENCHMARKS / "negatives_unlearning.py"
    cmd = [sys.executable, str(script), *spec.quick, "--seeds", "0,1", "--lrs", "5e-3", "--methods", "ga,npo",
           "--model", str(tiny_facts_model_dir), "--base-work", str(tmp_path / "bases"), "--work", str(tmp_path / "w"),
           "--json", str(tmp_path / "r.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["settings"]["base"] == "tofu-subset" and r["settings"]["subset"]["retain_authors"] == 1
    homes = [p for p in (tmp_path / "bases").iterdir() if p.is_dir()]
    assert len(homes) == 1 and (homes[0] / "full" / "finetune.json").exists()  # one model for every seed
    assert homes[0].name.endswith("-f1-r1-g4-re4-ft1-lr0.0001")  # open_unlearning_tofu.py's name for it
    start = json.loads((homes[0] / "eval-negtune-full-t8" / "results.json").read_text())["metrics"]
    level = r["retain_forget_prob"]
    for m in ("ga", "npo"):
        curves = r["methods"][m]["curves"]
        assert len(curves) == 2 and all([p["step"] for p in c] == [0, 2, 4] for c in curves)
        assert all(c[0]["forget_prob"] == round(start["forget_prob"], 6) for c in curves)
        assert all(c[-1]["forget_prob"] < c[0]["forget_prob"] for c in curves)  # it unlearned
        for seed, c in enumerate(curves):  # --full-eval matched: the full evaluation where matched utility reads
            probes = {p["step"]: p["forget_prob"] for p in c[1:]}
            assert {p["step"] for p in c[1:] if p["model_utility"] is not None} == nl.full_eval_steps(probes, level)
            run = next((tmp_path / "w").rglob(f"seed{seed}/{m}-lr0.005"))
            for p in c[1:]:  # the probe is the full evaluation's forget probability
                probe = json.loads((run / f"checkpoint-{p['step']}" / "probe_forget_prob.json").read_text())
                assert p["forget_prob"] == pytest.approx(probe["forget_prob"], abs=1e-5)
    assert "SmolLM2-TOFU" in run_all.benchmarks()["negatives_unlearning_smollm2"][0].results_section(r)


def test_matched_full_evaluation_brackets_the_first_crossing():
    """--full-eval matched scores in full the two checkpoints around the first one at or below the level (what
    value_at_level interpolates between), the first alone when it already is, the last when none gets there."""
    import negatives_unlearning as nl

    probes = {3: 0.5, 6: 0.2, 9: 0.05, 12: 0.3, 15: 0.01}
    assert nl.full_eval_steps(probes, 0.1) == {6, 9}
    assert nl.full_eval_steps(probes, 0.6) == {3}
    assert nl.full_eval_steps(probes, 0.001) == {15}
    curve = {"points": [{"step": 0, "forget_prob": 0.9, "model_utility": 0.5},
                        *({"step": s, "forget_prob": v, "model_utility": 0.4 if s in (6, 9) else None}
                          for s, v in probes.items())]}
    curve["points"][3]["model_utility"] = 0.2  # step 9
    assert nl.matched_utility(curve, 0.1) == pytest.approx(0.4 + (0.2 - 0.1) / (0.2 - 0.05) * (0.2 - 0.4))
