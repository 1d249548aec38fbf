"""Run every benchmark in this folder and rewrite ``benchmarks/RESULTS.md`` with the figures of this run.

    python benchmarks/run_all.py [--quick] [--only rollout,tofu_eval] [--out RESULTS.md]   (or: negtune bench)

Each benchmark runs in its own process and writes JSON; the Markdown is generated from those files, with
the machine, library versions and seeds, so every number in RESULTS.md comes from one run of this script.
``--quick`` uses small settings (a smoke test of the suite: ratios are noisier); the default settings are
the ones RESULTS.md reports. A benchmark that fails is reported as failed, the others still run.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCK = re.compile(r"<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->", re.S)
MANUAL = re.compile(r"<!-- manual -->.*?<!-- /manual -->", re.S)

# name -> (script, full-size arguments, quick arguments)
BENCHMARKS = {
    "rollout": ("rollout.py", ["--prompts", "64", "--n", "4", "--repeats", "3"],
                ["--prompts", "16", "--n", "2", "--repeats", "1", "--max-new-tokens", "48"]),
    "npo_memory": ("npo_memory.py", ["--shape", "tofu", "--steps", "7", "--repeats", "2"],
                   ["--shape", "tofu", "--steps", "3", "--batch", "2", "--repeats", "1"]),
    "npo_memory_checkpointing": ("npo_memory.py", ["--shape", "tofu", "--steps", "7", "--repeats", "2",
                                                  "--gradient-checkpointing"],
                                 ["--shape", "tofu", "--steps", "3", "--batch", "2", "--repeats", "1",
                                  "--gradient-checkpointing"]),
    "npo_memory_bf16": ("npo_memory.py", ["--shape", "tofu", "--dtype", "bf16", "--steps", "7", "--repeats", "2"],
                        ["--shape", "tofu", "--dtype", "bf16", "--steps", "3", "--batch", "2", "--repeats", "1"]),
    "npo_memory_small": ("npo_memory.py", ["--shape", "small", "--steps", "10", "--repeats", "2"],
                         ["--shape", "small", "--steps", "3", "--batch", "2", "--repeats", "1"]),
    "rlvr_speed": ("rlvr_speed.py", ["--steps", "6", "--repeats", "2"], ["--steps", "2", "--repeats", "1"]),
    "rlvr_quality": ("rlvr_quality.py", ["--steps", "60", "--seeds", "0,1,2", "--eval", "200"],
                     ["--steps", "2", "--seeds", "0", "--eval", "20"]),
    "tofu_eval": ("tofu_eval.py", ["--batch-size", "8", "--hidden", "512", "--layers", "8", "--max-new-tokens", "48"],
                  ["--batch-size", "8", "--limit", "8", "--max-new-tokens", "48"]),
}


def versions() -> str:
    import importlib.metadata as md

    names = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify")
    found = []
    for n in names:
        try:
            found.append(f"{n} {md.version(n)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(found)


def machine() -> str:
    import os

    mem = ""
    try:
        kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, {gpu}, Python {platform.python_version()}"


def run(name: str, quick: bool, workdir: Path) -> tuple[dict | None, str, float]:
    script, full, small = BENCHMARKS[name]
    out = workdir / f"{name}.json"
    cmd = [sys.executable, str(HERE / script), *(small if quick else full), "--json", str(out)]
    t0 = time.monotonic()
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr or done.stdout)[-1500:]
        print(f"   FAILED ({done.returncode}) after {seconds:.0f} s:\n{tail}", flush=True)
        return None, tail, seconds
    print(f"   done in {seconds:.0f} s", flush=True)
    return json.loads(out.read_text()), " ".join(cmd[2:-2]), seconds


def section(name: str, r: dict) -> list[str]:
    if name == "rollout":
        return ["## Rollout: HFEngine vs a bare `model.generate` loop (`benchmarks/rollout.py`)", "",
                f"Tiny arithmetic model, {r['settings']['prompts']} prompts x n={r['settings']['n']}, "
                f"max_new_tokens {r['settings']['max_new_tokens']}, batch {r['settings']['batch_size']} prompts, "
                f"median of {r['settings']['repeats']} interleaved repeats.", "",
                "| HFEngine tokens/s | bare generate tokens/s | engine / bare | target |", "|---|---|---|---|",
                f"| {r['hf_engine_tokens_per_s']} | {r['bare_generate_tokens_per_s']} | **{r['engine_over_bare']}** "
                "| overhead <= 10% (>= 0.91) |", "",
                "HFEngine sorts prompts by length before batching, so its batches carry less padding."]
    if name.startswith("npo_memory"):
        ou, co, ng = r["open-unlearning"], r["cache-only"], r["negtune"]
        what = ("real TOFU forget10 with open-unlearning's Llama-3 chat template; a Llama scaled from Llama-3.2-1B "
                "(quarter width, same 16 layers, tied 32,000-entry output layer: 21% of the parameters, as in the "
                "real model)") if r["shape"] == "tofu" else (
                "synthetic TOFU, ChatML, 1,024-token vocabulary, Qwen2 hidden 512 x 8 layers: weights and "
                "optimizer state dominate memory")
        gc = ", activation checkpointing on (all variants)" if r.get("gradient_checkpointing") else ""
        gc += ", bf16 weights (as open-unlearning trains)" if r.get("dtype") == "bf16" else ""
        return [f"## NPO vs open-unlearning's implementation, shape `{r['shape']}`{gc} (`benchmarks/npo_memory.py`)",
                "", f"Full-parameter NPO, {r['parameters']:,} parameters, {r['device']}, {r.get('dtype', 'fp32')}, AdamW, batch "
                f"{r['settings']['batch']} ({r['mean_tokens']} tokens per example, {r['mean_answer_tokens']} of them "
                f"answer); {what}. Each variant in a fresh process, alternated {r['settings']['repeats']}x, medians. "
                "open-unlearning = its `compute_dpo_loss`/`compute_batch_nll` with a deep-copied reference; "
                "cache-only = the same with negtune's cached reference; negtune = `UnlearnTrainer` (cache, "
                "answer-only logits, selective log-softmax).", "",
                "| | open-unlearning | cache-only | negtune | negtune / open-unlearning | target |",
                "|---|---|---|---|---|---|",
                f"| step time (s) | {ou['median_step_s']:.3f} | {co['median_step_s']:.3f} | {ng['median_step_s']:.3f} "
                f"| **{r['step_time_ratio']}** | <= 0.75 |",
                f"| peak memory (MB) | {ou['peak_mb']:.0f} | {co['peak_mb']:.0f} | {ng['peak_mb']:.0f} "
                f"| **{r['peak_memory_ratio']}** | <= 0.6 |",
                f"| set-up incl. cache (s) | {ou['setup_s']:.1f} | {co['setup_s']:.1f} | {ng['setup_s']:.1f} | | |", "",
                f"Cache alone: time {r['cache_only_step_time_ratio']}, memory {r['cache_only_peak_memory_ratio']}. "
                f"Step-time ratio with the one-off cache amortized over a 10-epoch run: "
                f"{r['step_time_ratio_with_cache_amortized']}."]
    if name == "rlvr_speed":
        m = r["median_step_s"]
        return ["## RLVR step time vs TRL's GRPOTrainer (`benchmarks/rlvr_speed.py`)", "",
                f"Same tiny model and config, learning rate 0 (identical completions), {r['settings']['steps']} steps x "
                f"{r['settings']['repeats']} rotated repeats.", "",
                "| GRPO step (s) | NGRPO step (s) | NFT step (s) | NGRPO / GRPO | NFT / GRPO | target |",
                "|---|---|---|---|---|---|",
                f"| {m['grpo']} | {m['ngrpo']} | {m['nft']} | **{r['ngrpo_over_grpo']}** | **{r['nft_over_grpo']}** "
                "| <= 1.03 |", "", f"Per-repeat ratios: {r['per_repeat_ratios']}."]
    if name == "rlvr_quality":
        s = r["settings"]
        rows = [f"| {m} | {r['base_accuracy']:.3f} | {t['accuracy_after']:.3f} | "
                f"{', '.join(f'{x:.3f}' for x in t['per_seed'])} |" for m, t in r["methods"].items()]
        return ["## RLVR quality on the embedded arithmetic task (`benchmarks/rlvr_quality.py`)", "",
                f"Same tiny base, same budget: {s['steps']} steps x {s['prompts_per_step']} prompts x "
                f"{s['num_generations']} samples, lr {s['lr']}, greedy accuracy on {s['eval_problems']} held-out "
                f"problems, seeds {r['seeds']}.", "",
                "| method | before | after (mean) | per seed |", "|---|---|---|---|", *rows, "",
                f"With {s['eval_problems']} eval problems the standard error of one number is about "
                f"{(0.25 / s['eval_problems']) ** 0.5:.3f}: differences below ~2 SE are noise."]
    if name == "tofu_eval":
        return ["## TOFU eval: batched vs a per-example loop (`benchmarks/tofu_eval.py`)", "",
                f"{r['questions']} questions (forget, retain, real-author and world-fact analogues), "
                f"{r['parameters']:,}-parameter model, batch {r['batch_size']} questions per forward pass (all their "
                f"answers at once), {r.get('generation_batch_size', r['batch_size'])} per generate call; the loop "
                "runs one forward pass per answer and one generate call per question.", "",
                "| batched (s) | per-example loop (s) | speed-up | largest metric difference | identical greedy "
                "generations | target |", "|---|---|---|---|---|---|",
                f"| {r['batched_seconds']} | {r['per_example_seconds']} | **{r['speedup']}x** | "
                f"{r['max_metric_difference']:.1e} | {r['identical_generations']} | >= 3x, identical metrics |"]
    raise KeyError(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small settings (smoke test of the suite)")
    ap.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    a = ap.parse_args(argv)
    names = a.only.split(",") if a.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    work = Path(tempfile.mkdtemp(prefix="negtune-bench-"))
    old = Path(a.out).read_text() if Path(a.out).exists() else ""
    blocks = {m.group(1): m.group(0) for m in BLOCK.finditer(old)}  # earlier runs' sections
    manual = MANUAL.findall(old)  # hand-recorded figures (GPU checks, verification) are kept as they are
    failed = []
    for name in names:
        result, detail, seconds = run(name, a.quick, work)
        if result is None:
            failed.append(name)
            body = [f"## {name}: FAILED", "", "```", detail, "```"]
        else:
            body = section(name, result) + ["", f"Measured {date.today().isoformat()}{' (--quick)' if a.quick else ''}"
                                                f" with `python benchmarks/{BENCHMARKS[name][0]} {detail}` "
                                                f"({seconds:.0f} s).", "", "<details><summary>raw JSON</summary>", "",
                                                "```json", json.dumps(result, indent=2), "```", "</details>"]
        blocks[name] = "\n".join([f"<!-- bench:{name} -->", *body, f"<!-- /bench:{name} -->"])
    text = ["# Benchmark results", "",
            "Written by `benchmarks/run_all.py` (`negtune bench`): each section's figures were measured side by side "
            "in one run of its script (ratios, not absolute times, carry over between machines); each says when.", "",
            f"- Machine of the latest run: {machine()}", f"- Versions: {versions()}", ""]
    for name in BENCHMARKS:
        if name in blocks:
            text += [blocks[name], ""]
    text += [m.strip() + "\n" for m in manual]
    Path(a.out).write_text("\n".join(text) + "\n")
    print(f"wrote {a.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
