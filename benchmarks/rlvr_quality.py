"""RFT vs GRPO vs NGRPO vs NFT on the embedded arithmetic task: same tiny base, same rollout budget.

    python benchmarks/rlvr_quality.py [--model DIR] [--steps 40] [--seeds 0] [--eval 200]

Each method trains online from the same warm-started base for the same number of steps (the same number of
sampled completions) and is scored by greedy accuracy on held-out problems, before and after.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import write_jsonl
from negtune.data.tasks import make_arith
from negtune.models.tiny import arith_accuracy
from negtune.trainers import build_online_trainer, online_config, prompt_dataset

METHODS = ("rft", "grpo", "ngrpo", "nft")


def train_and_score(method: str, model_dir: str, data, held_out, steps: int, seed: int, lr: float) -> dict:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = online_config(method, output_dir=tempfile.mkdtemp(), per_device_train_batch_size=32, num_generations=8,
                         max_completion_length=96, max_steps=steps, learning_rate=lr, seed=seed, use_cpu=True,
                         bf16=False, gradient_checkpointing=False, report_to="none", save_strategy="no",
                         disable_tqdm=True, logging_steps=10_000, temperature=1.0)
    t = time.perf_counter()
    build_online_trainer(method, model, data, tok, args=args).train()
    return {"accuracy": arith_accuracy(model, tok, held_out), "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--eval", type=int, default=200)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model_dir = a.model
    if model_dir is None:
        from negtune.models.tiny import create_tiny_model

        model_dir = tempfile.mkdtemp()
        create_tiny_model(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    held_out = make_arith(a.eval, seed=4242, difficulty=2)
    base = arith_accuracy(AutoModelForCausalLM.from_pretrained(model_dir), tok, held_out)
    path = tempfile.mkdtemp() + "/train.jsonl"
    write_jsonl(path, make_arith(4 * a.steps * 4, seed=99, difficulty=2))
    data = prompt_dataset(path)
    seeds = [int(s) for s in a.seeds.split(",")]
    results = {m: [train_and_score(m, model_dir, data, held_out, a.steps, s, a.lr) for s in seeds] for m in METHODS}
    table = {m: {"accuracy_after": round(statistics.mean(r["accuracy"] for r in rs), 4),
                 "per_seed": [r["accuracy"] for r in rs], "seconds": [r["seconds"] for r in rs]}
             for m, rs in results.items()}
    out = {"benchmark": "rlvr_quality_tiny_arith", "base_accuracy": base, "seeds": seeds,
           "settings": {"steps": a.steps, "prompts_per_step": 4, "num_generations": 8, "lr": a.lr,
                        "eval_problems": a.eval, "max_completion_length": 96, "temperature": 1.0},
           "methods": table}
    print(json.dumps(out, indent=2))
    print("\n| method | greedy accuracy before | after | seeds |\n|---|---|---|---|")
    for m in METHODS:
        print(f"| {m} | {base:.3f} | {table[m]['accuracy_after']:.3f} | {seeds} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
