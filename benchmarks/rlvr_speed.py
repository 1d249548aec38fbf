"""Step time of NGRPO and NFT against TRL's plain GRPOTrainer, same config, one run.

    python benchmarks/rlvr_speed.py [--model DIR] [--steps 12] [--repeats 2] [--updates 4]

Learning rate 0 keeps the model fixed, so every method generates the very same completions (same seed) and
the ratio isolates what negtune adds: advantage calibration, r-hat bookkeeping, the NFT loss. Every method
runs off-policy at the same number of updates per rollout (``--updates``, NGRPO's 4: TRL then computes
pi_old once per rollout for all of them) and without dynamic sampling (which generates more, by design).
"""

from __future__ import annotations

import statistics

from common import Run, arith_model, arith_prompt_dataset, cpu_online_config, parser, section, write_result

RUNS = (Run("rlvr_speed", full=("--steps", "12", "--repeats", "2"),
            quick=("--steps", "4", "--repeats", "1", "--updates", "2")),)


def results_section(r: dict) -> str:
    figures = [r["median_step_s"][m] for m in ("grpo", "ngrpo", "nft")]
    figures += [f"**{r['ngrpo_over_grpo']}**", f"**{r['nft_over_grpo']}**", "<= 1.03"]
    return section("RLVR step time vs TRL's GRPOTrainer (`benchmarks/rlvr_speed.py`)",
                   f"Same tiny model and config, learning rate 0 (identical completions), {r['settings']['steps']} "
                   f"steps x {r['settings']['repeats']} rotated repeats, "
                   f"{r['settings'].get('updates_per_generation', 1)} updates per rollout for every method, "
                   "no dynamic sampling.",
                   ["GRPO step (s)", "NGRPO step (s)", "NFT step (s)", "NGRPO / GRPO", "NFT / GRPO", "target"],
                   [figures], f"Per-repeat ratios: {r['per_repeat_ratios']}.")


def run(method: str, model_dir: str, data, steps: int, updates: int) -> list[float]:
    from step_timer import StepTimer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.trainers import build_online_trainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = cpu_online_config(method, per_device_train_batch_size=16, num_generations=4, max_completion_length=64,
                             max_steps=steps, learning_rate=0.0, seed=0, loss_type="dapo",
                             updates_per_generation=updates,
                             **({} if method == "grpo" else {"dynamic_sampling": False}))
    trainer = build_online_trainer(method, model, data, tok, args=args)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    # whole rollouts after the first (which pays one-off set-up): each is 1 generating step + (updates - 1) others
    return timer.times[updates:] or timer.times[1:]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--updates", type=int, default=4, help="updates per rollout, the same for every method")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    model_dir = arith_model(a.model, warm_s=60)
    data = arith_prompt_dataset(64, seed=7)
    methods = ["grpo", "ngrpo", "nft"]
    times: dict[str, list[float]] = {m: [] for m in methods}
    ratios: dict[str, list[float]] = {"ngrpo": [], "nft": []}
    for r in range(a.repeats):
        order = methods[r % 3:] + methods[: r % 3]  # rotate, so no method always runs first
        this = {m: statistics.mean(run(m, model_dir, data, a.steps, a.updates)) for m in order}
        for m in methods:
            times[m].append(this[m])
        for m in ratios:
            ratios[m].append(this[m] / this["grpo"])
    write_result({
        "benchmark": "rlvr_step_time_vs_trl_grpo",
        "settings": {"steps": a.steps, "repeats": a.repeats, "prompts_per_step": 4, "num_generations": 4,
                     "max_completion_length": 64, "learning_rate": 0.0, "loss_type": "dapo",
                     "updates_per_generation": a.updates, "dynamic_sampling": False},
        "median_step_s": {m: round(statistics.median(t), 4) for m, t in times.items()},
        "ngrpo_over_grpo": round(statistics.median(ratios["ngrpo"]), 3),
        "nft_over_grpo": round(statistics.median(ratios["nft"]), 3),
        "per_repeat_ratios": {m: [round(x, 3) for x in v] for m, v in ratios.items()},
        "target": "<= 1.03",
    }, a.json)


if __name__ == "__main__":
    main()
