"""Step time of NGRPO and NFT against TRL's plain GRPOTrainer, same config, one run.

    python benchmarks/rlvr_speed.py [--model DIR] [--steps 6] [--repeats 2]

Learning rate 0 keeps the model fixed, so every method generates the very same completions (same seed) and
the ratio isolates what negtune adds: advantage calibration, r-hat bookkeeping, the NFT loss.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch
from step_timer import StepTimer  # benchmarks/ is the script's folder
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import write_jsonl
from negtune.data.tasks import make_arith
from negtune.trainers import build_online_trainer, online_config, prompt_dataset


def run(method: str, model_dir: str, data, steps: int) -> list[float]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = online_config(method, output_dir=tempfile.mkdtemp(), per_device_train_batch_size=16, num_generations=4,
                         max_completion_length=64, max_steps=steps, learning_rate=0.0, seed=0, use_cpu=True,
                         bf16=False, gradient_checkpointing=False, report_to="none", save_strategy="no",
                         disable_tqdm=True, logging_steps=10_000, loss_type="dapo")
    trainer = build_online_trainer(method, model, data, tok, args=args)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return timer.times[1:]  # the first step pays one-off set-up


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model_dir = a.model
    if model_dir is None:
        from negtune.models.tiny import WarmStartConfig, create_tiny_model

        model_dir = tempfile.mkdtemp()
        create_tiny_model(model_dir, warm=WarmStartConfig(time_budget_s=60, eval_every=10_000))
    path = tempfile.mkdtemp() + "/arith.jsonl"
    write_jsonl(path, make_arith(64, seed=7))
    data = prompt_dataset(path)
    methods = ["grpo", "ngrpo", "nft"]
    times: dict[str, list[float]] = {m: [] for m in methods}
    ratios: dict[str, list[float]] = {"ngrpo": [], "nft": []}
    for r in range(a.repeats):
        order = methods[r % 3:] + methods[: r % 3]  # rotate, so no method always runs first
        this = {m: statistics.median(run(m, model_dir, data, a.steps)) for m in order}
        for m in methods:
            times[m].append(this[m])
        for m in ratios:
            ratios[m].append(this[m] / this["grpo"])
    med = {m: statistics.median(t) for m, t in times.items()}
    result = {
        "benchmark": "rlvr_step_time_vs_trl_grpo",
        "settings": {"steps": a.steps, "repeats": a.repeats, "prompts_per_step": 4, "num_generations": 4,
                     "max_completion_length": 64, "learning_rate": 0.0, "loss_type": "dapo"},
        "median_step_s": {m: round(v, 4) for m, v in med.items()},
        "ngrpo_over_grpo": round(statistics.median(ratios["ngrpo"]), 3),
        "nft_over_grpo": round(statistics.median(ratios["nft"]), 3),
        "per_repeat_ratios": {m: [round(x, 3) for x in v] for m, v in ratios.items()},
        "target": "<= 1.03",
    }
    print(json.dumps(result, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
