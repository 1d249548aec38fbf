"""GPU check, sized for ~10 minutes on one H200 with no internet (no hub download: the model is a Qwen2 built
from a config with Qwen2.5-0.5B's body, the tokenizer is negtune's offline byte-level BPE).

    python benchmarks/gpu_check.py --out DIR          (or benchmarks/gpu_check.sh)
    python benchmarks/gpu_check.py --cpu-smoke --out DIR   (tiny model, a few steps of every path, on CPU)

(a) rollout throughput: negtune's HFEngine vs VLLMEngine (vLLM in a subprocess, so its memory is returned) on the
    same saved model, same prompts and sampling: generated tokens/s and the ratio;
(b) training step throughput in bf16 for each trainer family (NPO via UnlearnTrainer, unlikelihood, offline NFT,
    one online NFT step through TRL), full-parameter vs LoRA: tokens/s, MFU = 6 N tokens / step time / peak
    (H200 dense bf16 989 TFLOP/s; LoRA does ~4N of real work, so its 6N MFU is an upper bound convention).
Prints a table and writes gpu_check.json (rewritten after every section). Without a CUDA device (and without
--cpu-smoke) it checks the imports and reports itself skipped. In the suite: ``negtune bench --only gpu_check``.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Run, parser, section, skipped, table, write_result

PEAK_FLOPS = 989e12  # H200 SXM dense bf16
QWEN05_BODY = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                   intermediate_size=4864, max_position_embeddings=4096)
SIZES = {  # per mode: model body, rollout and training sizes
    "gpu": dict(body=QWEN05_BODY, prompts=64, n=8, new_tokens=256, hf_batch=16, seq=1024, batch=16, warm=2,
                steps=8, rows=64, online_batch=16, online_gen=8, online_tokens=256, online_steps=3),
    "cpu": dict(body=None, prompts=4, n=2, new_tokens=16, hf_batch=4, seq=64, batch=4, warm=1, steps=2, rows=8,
                online_batch=4, online_gen=2, online_tokens=16, online_steps=1),
}
FAMILIES = ("npo", "unlikelihood", "nft_offline", "nft_online")
RUNS = (Run("gpu_check", full=(), quick=("--families", "npo,nft_online", "--budget-s", "150")),)


def results_section(r: dict) -> str:
    heading = "GPU check: vLLM vs HF rollout, bf16 training throughput and MFU (`benchmarks/gpu_check.py`)"
    if "skipped" in r:
        return section(heading, f"Skipped: {r['skipped']}. On a CUDA machine: `negtune bench --only gpu_check` "
                                "(about 10 minutes on one H200, offline) or `benchmarks/gpu_check.sh`.")
    flat = lambda v: "" if v is None else str(v).replace("\n", " ")[:200]  # noqa: E731 - one table cell
    rollout, engines = r.get("rollout", {}), []
    for engine in ("hf", "vllm"):
        e = rollout.get(engine, {"skipped": "not run"})
        ratio = rollout.get("vllm_over_hf") if engine == "vllm" else None
        engines.append([engine, flat(e.get("tokens_per_s", e.get("error", e.get("skipped")))), flat(e.get("seconds")),
                        flat(ratio)])
    training = [[t["family"], t["mode"], flat(t["error"]), "", "", "", "", ""] if "error" in t else
                [t["family"], t["mode"], f"{t['trainable_params']:,}",
                 *(flat(t[k]) for k in ("step_s", "tokens_per_step", "tokens_per_s", "mfu_6N", "peak_mem_gb"))]
                for t in r.get("training", [])]
    body = "tiny, fp32: a CPU smoke test, its figures mean nothing" if r["mode"] == "cpu" else "Qwen2.5-0.5B's body, bf16"
    return section(
        heading,
        f"{r['device']}; a Qwen2 built from a config ({body}), {r['params']:,} parameters. MFU = 6 N tokens / step "
        f"time / {r['peak_flops'] / 1e12:.0f} TFLOP/s (LoRA: an upper-bound convention).",
        ["rollout engine", "generated tokens/s", "seconds", "vLLM / HF"], engines,
        table(["family", "mode", "trainable parameters", "step (s)", "tokens / step", "tokens/s", "MFU (6N)",
               "peak GB"], training))


def check_imports() -> dict:
    import peft
    import torch
    import transformers
    import trl

    import negtune.trainers  # noqa: F401

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                "peft": peft.__version__}
    try:
        import vllm

        versions["vllm"] = vllm.__version__
    except ImportError:
        versions["vllm"] = None
    return versions


def build_model_dir(path: Path, body: dict | None, device: str):
    """Tokenizer + random Qwen2 (safetensors) in ``path``; returns (model on device, tokenizer, parameter count)."""
    import torch

    from negtune.models.tiny import TinySize, build_model, task_corpus, train_tokenizer

    tok = train_tokenizer(task_corpus()[:4000], vocab_size=1024 if body is None else 4096)
    model = build_model(tok, TinySize(**body) if body else None, seed=0)
    model.config.max_position_embeddings = max(model.config.max_position_embeddings, 4096 if body else 1024)
    tok.model_max_length = model.config.max_position_embeddings
    model.to(dtype=torch.bfloat16).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    model.to(dtype=torch.float32, device=device)
    return model, tok, sum(p.numel() for p in model.parameters())


def rollout_prompts(k: int) -> list:
    from negtune.data.prompts import format_prompt
    from negtune.data.tasks import make_arith

    return [format_prompt(r["prompt"]) for r in make_arith(k, seed=5)]


def hf_rollout(model, tok, size: dict, device: str) -> dict:
    import torch

    from negtune.rollout.engines.base import SamplingConfig
    from negtune.rollout.engines.hf import HFEngine

    model = model.to(torch.bfloat16 if device == "cuda" else torch.float32)
    engine = HFEngine(model, tok, batch_size=size["hf_batch"])
    sampling = SamplingConfig(n=size["n"], temperature=1.0, max_new_tokens=size["new_tokens"], seed=0)
    prompts = rollout_prompts(size["prompts"])
    engine.generate(prompts[: size["hf_batch"]], sampling)  # warm-up (kernels, allocator)
    _sync(device)
    t0 = time.perf_counter()
    out = engine.generate(prompts, sampling)
    _sync(device)
    secs = time.perf_counter() - t0
    tokens = sum(len(c.token_ids) for group in out for c in group)
    return {"engine": "hf", "seconds": round(secs, 3), "tokens": tokens, "tokens_per_s": round(tokens / secs, 1)}


def vllm_rollout(model_dir: str, size: dict) -> dict:
    """Runs in its own process (``--vllm-only``): vLLM keeps GPU memory until the process exits."""
    from negtune.models.loading import load_tokenizer
    from negtune.rollout.engines.base import SamplingConfig
    from negtune.rollout.engines.vllm import VLLMEngine

    t0 = time.perf_counter()
    engine = VLLMEngine(model_dir, tokenizer=load_tokenizer(model_dir), gpu_memory_utilization=0.35,
                        dtype="bfloat16", max_model_len=2048)
    startup = time.perf_counter() - t0
    sampling = SamplingConfig(n=size["n"], temperature=1.0, max_new_tokens=size["new_tokens"], seed=0)
    prompts = rollout_prompts(size["prompts"])
    engine.generate(prompts[: size["hf_batch"]], sampling)
    t0 = time.perf_counter()
    out = engine.generate(prompts, sampling)
    secs = time.perf_counter() - t0
    tokens = sum(len(c.token_ids) for group in out for c in group)
    return {"engine": "vllm", "seconds": round(secs, 3), "tokens": tokens, "tokens_per_s": round(tokens / secs, 1),
            "startup_s": round(startup, 1)}


def length_parity(completion: str, answer: str) -> float:
    """Online-step reward: splits every group whatever the (random) model says, so NFT trains on every sample
    (the real ``math`` verifier would find all-wrong groups, which NFT drops)."""
    return float(len(completion) % 2 == 0)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def training_rows(tok, seq: int, rows: int) -> tuple[list[dict], int]:
    """Labeled rows of one exact length (one token per digit): tokens per row are known, no padding."""
    from negtune.data.prompts import encode_prompt_completion

    prompt = "Compute 12 + 34."
    ids, _ = encode_prompt_completion(tok, prompt, "")
    completion = "7" * (seq - len(ids))
    length = len(encode_prompt_completion(tok, prompt, completion)[0])
    data = [{"prompt": prompt, "completion": completion, "label": i % 2 == 0, "group_pass_rate": 0.5,
             "prompt_id": str(i // 4), "question": prompt, "answer": completion} for i in range(rows)]
    return data, length


def train_family(family: str, lora: bool, model_dir: str, tok, size: dict, device: str, n_params: int) -> dict:
    import torch
    from peft import LoraConfig
    from step_timer import StepTimer

    import negtune.trainers as nt
    from negtune.models.loading import load_model

    gpu = device == "cuda"
    model = load_model(model_dir, dtype="float32").to(device)
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft = LoraConfig(r=16, lora_alpha=32, target_modules=modules, task_type="CAUSAL_LM") if lora else None
    online = family == "nft_online"
    steps = size["warm"] + (size["online_steps"] if online else size["steps"])
    common = dict(output_dir=tempfile.mkdtemp(), max_steps=steps, learning_rate=1e-5, bf16=gpu, use_cpu=not gpu,
                  save_strategy="no", report_to="none", disable_tqdm=True, seed=0)
    rows, seq_tokens = training_rows(tok, size["seq"], size["rows"])
    if online:
        import datasets

        from negtune.data.prompts import format_prompt
        from negtune.data.tasks import make_arith

        data = datasets.Dataset.from_list(
            [{"prompt": format_prompt(r["prompt"]), "answer": r["answer"]} for r in make_arith(64, seed=3)])
        args = nt.online_config("nft", **common, per_device_train_batch_size=size["online_batch"], logging_steps=1,
                                num_generations=size["online_gen"], max_completion_length=size["online_tokens"],
                                activation_checkpointing=False,
                                updates_per_generation=1)  # every step generates: the throughput measured
        trainer = nt.build_online_trainer("nft", model, data, tok, args=args, peft_config=peft,
                                          verifier=f"{Path(__file__).stem}:length_parity")
    else:
        kw = dict(**common, per_device_train_batch_size=size["batch"], max_length=size["seq"] + 8,
                  logging_steps=10_000)
        if family == "npo":
            args = nt.UnlearnConfig(method="npo", ref_cache_dir=tempfile.mkdtemp(), **kw)
            trainer = nt.UnlearnTrainer(model, args, forget_dataset=rows, processing_class=tok, peft_config=peft)
        else:
            cls, cfg = {"unlikelihood": (nt.UnlikelihoodTrainer, nt.UnlikelihoodConfig),
                        "nft_offline": (nt.OfflineNFTTrainer, nt.OfflineNFTConfig)}[family]
            trainer = cls(model, cfg(**kw), train_dataset=rows, processing_class=tok, peft_config=peft)
    timer = StepTimer()
    trainer.add_callback(timer)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    step_s = statistics.median(timer.times[size["warm"]:] or timer.times)
    if online:  # TRL logs cumulative prompt+completion tokens; per step = the increase
        seen = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
        tokens = (seen[-1] - seen[0]) / max(len(seen) - 1, 1) if len(seen) > 1 else None
    else:
        tokens = size["batch"] * seq_tokens
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    result = {"family": family, "mode": "lora" if lora else "full", "trainable_params": trainable,
              "step_s": round(step_s, 4), "tokens_per_step": tokens,
              "tokens_per_s": round(tokens / step_s, 1) if tokens else None,
              "mfu_6N": round(6 * n_params * tokens / step_s / PEAK_FLOPS, 4) if tokens and gpu else None,
              "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None}
    del trainer, model
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
    return result


def print_table(report: dict) -> None:
    r = report.get("rollout", {})
    if r:
        print("\nrollout (generated tokens/s):", ", ".join(f"{k} {v.get('tokens_per_s', v)}" for k, v in r.items()
                                                         if isinstance(v, dict)), f"| vllm/hf {r.get('vllm_over_hf')}")
    print(f"\n{'family':<13}{'mode':<6}{'step s':>9}{'tok/step':>10}{'tok/s':>11}{'MFU(6N)':>9}{'mem GB':>8}")
    for t in report.get("training", []):
        if "error" in t:
            print(f"{t['family']:<13}{t['mode']:<6}  error: {t['error'][:80]}")
            continue
        print(f"{t['family']:<13}{t['mode']:<6}{t['step_s']:>9}{str(t['tokens_per_step']):>10}"
              f"{str(t['tokens_per_s']):>11}{str(t['mfu_6N']):>9}{str(t['peak_mem_gb']):>8}")


def main() -> int:
    ap = parser(__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="folder of gpu_check.json, rewritten after every section (default: next to "
                    "--json, else benchmarks/gpu_check_out)")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, a few steps of every path, on CPU")
    ap.add_argument("--budget-s", type=float, default=540, help="skip the sections left after this many seconds")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--vllm-only", help=argparse.SUPPRESS)  # internal: a model dir; prints one JSON line
    a = ap.parse_args()
    mode = "cpu" if a.cpu_smoke else "gpu"
    size = SIZES[mode]
    if a.vllm_only:
        print("VLLM_RESULT " + json.dumps(vllm_rollout(a.vllm_only, size)), flush=True)
        return 0
    start = time.perf_counter()
    versions = check_imports()
    import torch

    if not torch.cuda.is_available() and not a.cpu_smoke:
        imports = ", ".join(f"{k} {v or 'not installed'}" for k, v in versions.items())
        print(f"no CUDA device: gpu_check needs a GPU (imports OK: {imports}); --cpu-smoke runs every path on CPU")
        write_result(skipped(f"no CUDA device on this machine (imports OK: {imports})", versions=versions), a.json,
                     echo=False)
        return 0
    device = "cuda" if (torch.cuda.is_available() and not a.cpu_smoke) else "cpu"
    if device == "cpu":
        torch.set_num_threads(2)
    out = Path(a.out or (Path(a.json).with_suffix("") if a.json else "benchmarks/gpu_check_out"))
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"mode": mode, "versions": versions, "sizes": size, "peak_flops": PEAK_FLOPS,
                    "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}
    save = lambda: (out / "gpu_check.json").write_text(json.dumps(report, indent=2))  # noqa: E731
    model_dir = Path(tempfile.mkdtemp(prefix="gpu_check_model_"))
    model, tok, n_params = build_model_dir(model_dir, size["body"], device)
    report.update(params=n_params, model_dir=str(model_dir))
    print(f"model: Qwen2 from config, {n_params / 1e6:.1f}M parameters, vocab {len(tok)}, on {device}", flush=True)
    report["rollout"] = {"hf": hf_rollout(model, tok, size, device)}
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()  # the vLLM subprocess sizes its cache from the free memory
    save()
    if versions["vllm"] and device == "cuda":
        try:
            proc = subprocess.run([sys.executable, __file__, "--vllm-only", str(model_dir)], capture_output=True,
                                  text=True, timeout=max(60, min(300, a.budget_s - (time.perf_counter() - start))))
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("VLLM_RESULT ")), None)
            report["rollout"]["vllm"] = (json.loads(line[len("VLLM_RESULT "):]) if line else
                                         {"error": (proc.stderr or proc.stdout)[-2000:]})
        except subprocess.TimeoutExpired:
            report["rollout"]["vllm"] = {"error": "timed out"}
        v, h = report["rollout"]["vllm"], report["rollout"]["hf"]
        if "tokens_per_s" in v:
            report["rollout"]["vllm_over_hf"] = round(v["tokens_per_s"] / h["tokens_per_s"], 2)
    else:
        report["rollout"]["vllm"] = {"skipped": "vLLM not installed" if not versions["vllm"] else "no CUDA"}
    save()
    report["training"] = []
    for family in a.families.split(","):
        for lora in (False, True):
            if time.perf_counter() - start > a.budget_s:
                report["training"].append({"family": family, "mode": "lora" if lora else "full",
                                           "error": "skipped: time budget spent"})
                continue
            print(f"training: {family} {'lora' if lora else 'full'} ...", flush=True)
            try:
                report["training"].append(train_family(family, lora, str(model_dir), tok, size, device, n_params))
            except Exception as e:  # noqa: BLE001 - one failing family must not hide the others' figures
                report["training"].append({"family": family, "mode": "lora" if lora else "full",
                                           "error": f"{type(e).__name__}: {e}"})
            save()
    shutil.rmtree(model_dir, ignore_errors=True)
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    save()
    print_table(report)
    write_result(report, a.json, echo=False)
    print(f"\nwrote {out / 'gpu_check.json'} ({report['elapsed_s']} s)")
    return 1 if any("error" in t and not t["error"].startswith("skipped") for t in report["training"]) else 0


if __name__ == "__main__":
    sys.exit(main())
