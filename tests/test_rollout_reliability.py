"""Issue 17, rollout / evaluation side: duplicate prompts, data fingerprint on resume, over-long prompts, settings
written only after the model loads, greedy with --n > 1, unwritable / busy output folders, non-finite rewards,
odd flag values and file modes. Each test reproduces its defect (it failed before the fix)."""

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from transformers import AutoTokenizer

from negtune.cli import main as cli
from negtune.data.io import DataError, atomic_write_text, out_lock, write_jsonl
from negtune.data.tasks import make_arith
from negtune.evaluation.math import MathEvalConfig, evaluate_math
from negtune.evaluation.tofu import TofuEvalConfig
from negtune.loop import LoopConfig
from negtune.models.tiny import TinySize, build_model, train_tokenizer
from negtune.rollout.engines import HFEngine
from negtune.rollout.stage import RolloutConfig, RolloutSettingsError, rollout_and_verify

SMALL = TinySize(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                 intermediate_size=64)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tok = train_tokenizer(["Ava has 3 coins. What is 2+2? \\boxed{4} The author was born in Paris."] * 20,
                          vocab_size=320)
    path = tmp_path_factory.mktemp("small")
    build_model(tok, SMALL, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _cfg(model_dir, data, out, **over):
    kw = dict(model=str(model_dir), dataset=str(data), out=str(out), n=2, max_new_tokens=4, engine="hf",
              verify_workers=0, shard_size=2)
    return RolloutConfig(**(kw | over))


def test_make_arith_has_duplicate_prompts():
    prompts = [r["prompt"] for r in make_arith(500, difficulty=1)]
    assert len(prompts) - len(set(prompts)) == 2


def test_duplicate_prompts_are_separate_groups(model_dir, tmp_path, caplog):
    rows = make_arith(3, seed=0, difficulty=1)
    rows.append(dict(rows[0], id="dup", answer="999"))  # same prompt, another answer
    write_jsonl(tmp_path / "p.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="negtune.rollout.stage"):
        ds, stats = rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", tmp_path / "ro"), progress=False)
    assert "1 row(s) repeat an earlier row's prompt" in caplog.text
    assert stats["prompts"] == 4 and stats["samples"] == 8 and stats["duplicate_prompts"] == 1
    groups = {}
    for r in ds.to_list():
        groups.setdefault(r["prompt_id"], []).append(r)
    assert len(groups) == 4 and all(sorted(r["sample_idx"] for r in g) == [0, 1] for g in groups.values())
    first = [pid for pid, g in groups.items() if g[0]["answer"] == rows[0]["answer"]][0]
    assert f"{first}-2" in groups and groups[f"{first}-2"][0]["answer"] == "999"
    # and the rerun (resume) reads the folder back without a validation error
    _, again = rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", tmp_path / "ro"), progress=False)
    assert again["prompts"] == 4


def test_resume_over_changed_data_is_refused(model_dir, tmp_path):
    data = tmp_path / "p.jsonl"
    write_jsonl(data, make_arith(4, seed=0))
    cfg = _cfg(model_dir, data, tmp_path / "ro")
    _, stats = rollout_and_verify(cfg, progress=False)
    before = stats["settings"]["data_fingerprint"]
    write_jsonl(data, make_arith(4, seed=1))  # regenerated at the same path
    with pytest.raises(RolloutSettingsError, match=f"data_fingerprint: '{before}' -> '[0-9a-f]{{16}}'.*changed"):
        rollout_and_verify(cfg, progress=False)


def test_over_long_prompts_are_skipped_and_named(model_dir, tmp_path, caplog):
    from transformers import AutoModelForCausalLM

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.model_max_length = 400  # the 100k-character prompt of the issue, scaled to a small context
    engine = HFEngine(AutoModelForCausalLM.from_pretrained(model_dir), tok, batch_size=4)
    rows = make_arith(3, seed=0, difficulty=1)
    rows[1] = dict(rows[1], id="huge", prompt="Ava has 3 coins. " * 300)
    write_jsonl(tmp_path / "p.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="negtune.rollout.stage"):
        ds, stats = rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", tmp_path / "ro"), engine=engine,
                                       progress=False)
    assert "skipped 1 prompt(s) longer than the model's context of 400 tokens minus --max-new-tokens 4: rows huge" \
        in caplog.text
    assert stats["too_long_prompts"] == 1 and stats["too_long_rows"] == ["huge"] and stats["prompts"] == 2
    # math eval goes through the same stage and reports the count per benchmark
    res = evaluate_math(MathEvalConfig(model=str(model_dir), out=str(tmp_path / "ev"),
                                       benchmarks=[str(tmp_path / "p.jsonl")], n=2, max_new_tokens=4,
                                       verify_workers=0), engine=engine, progress=False)
    assert res["benchmarks"]["p"]["too_long_prompts"] == 1 and res["benchmarks"]["p"]["problems"] == 2


def test_failed_model_load_does_not_lock_the_folder(model_dir, tmp_path):
    write_jsonl(tmp_path / "p.jsonl", make_arith(2, seed=0))
    with pytest.raises(ValueError, match="no-such-model: cannot load"):  # a typo in --model
        rollout_and_verify(_cfg(tmp_path / "no-such-model", tmp_path / "p.jsonl", tmp_path / "ro"), progress=False)
    assert not (tmp_path / "ro" / "settings.json").exists()
    _, stats = rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", tmp_path / "ro"), progress=False)
    assert stats["samples"] == 4


def test_greedy_with_several_samples_is_refused(capsys):
    with pytest.raises(ValueError, match="--temperature 0 is greedy: every one of --n 4 samples"):
        MathEvalConfig(model="m", out="o", temperature=0)
    assert MathEvalConfig(model="m", out="o", temperature=0, n=1).n == 1
    assert cli(["eval", "math", "--model", "m", "--out", "o", "--temperature", "0"]) == 2
    assert "negtune: error: --temperature 0 is greedy" in capsys.readouterr().err


@pytest.mark.parametrize("cls,kw", [
    (RolloutConfig, dict(model="m", dataset="d", out="o")),
    (MathEvalConfig, dict(model="m", out="o")),
    (TofuEvalConfig, dict(model="m", out="o")),
    (LoopConfig, dict(model="m", dataset="d", out="o")),
])
@pytest.mark.parametrize("bad,match", [
    (dict(limit=0), "--limit must be >= 1"), (dict(limit=-38), "--limit must be >= 1"),
    (dict(batch_size=-1), "--batch-size must be >= 1"), (dict(n=0), "--n must be >= 1"),
])
def test_odd_values_are_refused(cls, kw, bad, match):
    if "n" in bad and cls is TofuEvalConfig:
        pytest.skip("eval tofu has no --n")
    with pytest.raises(ValueError, match=match):
        cls(**kw, **bad)


def test_odd_values_from_the_cli(capsys):
    assert cli(["eval", "tofu", "--model", "m", "--out", "o", "--limit", "0"]) == 2
    assert "negtune: error: --limit must be >= 1 (or left out for all rows), got 0" in capsys.readouterr().err
    assert cli(["rollout", "--model", "m", "--dataset", "d", "--out", "o", "--shard-size", "0"]) == 2
    assert "--shard-size must be >= 1, got 0" in capsys.readouterr().err


def test_out_that_is_a_file_or_read_only_is_refused_before_work(model_dir, tmp_path):
    write_jsonl(tmp_path / "p.jsonl", make_arith(2, seed=0))
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match=r"--out .*/f is a file, not a folder"):
        rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", tmp_path / "f"), progress=False)
    with pytest.raises(DataError, match=r"--out .*/f is a file, not a folder"):
        evaluate_math(MathEvalConfig(model=str(model_dir), out=str(tmp_path / "f"),
                                     benchmarks=[str(tmp_path / "p.jsonl")], n=1, verify_workers=0))
    from negtune.evaluation.tofu import evaluate_tofu

    with pytest.raises(DataError, match=r"--out .*/f is a file, not a folder"):
        evaluate_tofu(TofuEvalConfig(model=str(model_dir), out=str(tmp_path / "f"), tofu_root=str(tmp_path)))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            with pytest.raises(DataError, match=r"--out .*/ro is not writable"):
                rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", ro / "sub"), progress=False)
        finally:
            ro.chmod(0o755)


def test_non_finite_reward_is_undecidable(model_dir, tmp_path, monkeypatch, caplog):
    (tmp_path / "nan_verifier.py").write_text("def check(completion, answer):\n    return float('nan')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    write_jsonl(tmp_path / "p.jsonl", make_arith(2, seed=0))
    with caplog.at_level(logging.WARNING, logger="negtune.rollout.stage"):
        ds, stats = rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", tmp_path / "ro",
                                            verifier="nan_verifier:check"), progress=False)
    assert "verifier nan_verifier:check returned 4 NaN/inf reward(s): stored as reward None (undecidable)" \
        in caplog.text
    assert stats["non_finite_rewards"] == 4 and stats["undecidable"] == 4
    assert all(r["reward"] is None and r["label"] is False for r in ds.to_list())


def test_outputs_respect_the_umask(model_dir, tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert cli(["data", "make-arith", "--n", "4", "--out", str(tmp_path / "arith.jsonl")]) == 0
        rollout_and_verify(_cfg(model_dir, tmp_path / "arith.jsonl", tmp_path / "ro"), progress=False)
    finally:
        os.umask(old)
    files = [tmp_path / "a.txt", tmp_path / "arith.jsonl", tmp_path / "ro" / "settings.json",
             tmp_path / "ro" / "shard-00000.parquet", tmp_path / "ro" / "stats.json"]
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {f.name: "0o644" for f in files}


def test_two_runs_into_one_out_are_refused(model_dir, tmp_path):
    write_jsonl(tmp_path / "p.jsonl", make_arith(2, seed=0))
    out = tmp_path / "ro"
    with out_lock(out):  # held in this process: a second open of the lock file conflicts (flock)
        with pytest.raises(DataError, match=r"--out .*/ro is in use by another negtune run"):
            rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", out), progress=False)
        with pytest.raises(DataError, match="is in use by another negtune run"):
            evaluate_math(MathEvalConfig(model=str(model_dir), out=str(out), benchmarks=[str(tmp_path / "p.jsonl")],
                                         n=1, verify_workers=0))
    # another process holding it
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from negtune.data.io import out_lock
        with out_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        err = subprocess.run([sys.executable, "-m", "negtune.cli", "rollout", "--model", str(model_dir),
                              "--dataset", str(tmp_path / "p.jsonl"), "--out", str(out), "--engine", "hf"],
                             capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
        assert err.returncode == 2 and "is in use by another negtune run" in err.stderr
    finally:
        holder.kill()
        holder.wait()
    _, stats = rollout_and_verify(_cfg(model_dir, tmp_path / "p.jsonl", out), progress=False)  # free again
    assert stats["samples"] == 4
    assert json.loads((out / "settings.json").read_text())["n"] == 2
