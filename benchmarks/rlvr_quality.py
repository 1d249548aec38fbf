"""RFT vs GRPO vs NGRPO vs NFT on the embedded arithmetic task: same tiny base, same rollout budget.

    python benchmarks/rlvr_quality.py [--model DIR] [--steps 40] [--seeds 0] [--eval 200] [--updates 4]

Each method trains online from the same warm-started base for the same number of steps (the same number of
sampled completions: dynamic sampling, which generates more, is off for all) at the same number of updates
per rollout (off-policy, ``--updates``), and is scored by greedy accuracy on held-out problems, before and
after.
"""

from __future__ import annotations

import statistics
import time

from common import Run, arith_model, arith_prompt_dataset, cpu_online_config, parser, section, write_result

METHODS = ("rft", "grpo", "ngrpo", "nft")
RUNS = (Run("rlvr_quality", full=("--steps", "60", "--seeds", "0,1,2", "--eval", "200"),
            quick=("--steps", "2", "--seeds", "0", "--eval", "20")),)


def results_section(r: dict) -> str:
    s = r["settings"]
    return section(
        "RLVR quality on the embedded arithmetic task (`benchmarks/rlvr_quality.py`)",
        f"Same tiny base, same budget: {s['steps']} steps x {s['prompts_per_step']} prompts x "
        f"{s['num_generations']} samples, lr {s['lr']}, {s.get('updates_per_generation', 1)} updates per "
        f"rollout, no dynamic sampling, greedy accuracy on {s['eval_problems']} held-out problems, "
        f"seeds {r['seeds']}.",
        ["method", "before", "after (mean)", "per seed"],
        [[m, f"{r['base_accuracy']:.3f}", f"{t['accuracy_after']:.3f}", ", ".join(f"{x:.3f}" for x in t["per_seed"])]
         for m, t in r["methods"].items()],
        f"With {s['eval_problems']} eval problems the standard error of one number is about "
        f"{(0.25 / s['eval_problems']) ** 0.5:.3f}: differences below ~2 SE are noise.")


def train_and_score(method: str, model_dir: str, data, held_out, steps: int, seed: int, lr: float,
                    updates: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.models.tiny import arith_accuracy
    from negtune.trainers import build_online_trainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = cpu_online_config(method, per_device_train_batch_size=32, num_generations=8, max_completion_length=96,
                             max_steps=steps, learning_rate=lr, seed=seed, temperature=1.0,
                             updates_per_generation=updates,
                             **({} if method == "grpo" else {"dynamic_sampling": False}))
    t = time.perf_counter()
    build_online_trainer(method, model, data, tok, args=args).train()
    return {"accuracy": arith_accuracy(model, tok, held_out), "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--eval", type=int, default=200)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--updates", type=int, default=4, help="updates per rollout, the same for every method")
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.data.tasks import make_arith
    from negtune.models.tiny import arith_accuracy

    torch.set_num_threads(2)
    model_dir = arith_model(a.model)
    tok = AutoTokenizer.from_pretrained(model_dir)
    held_out = make_arith(a.eval, seed=4242, difficulty=2)
    base = arith_accuracy(AutoModelForCausalLM.from_pretrained(model_dir), tok, held_out)
    data = arith_prompt_dataset(4 * a.steps * 4, seed=99, difficulty=2)
    seeds = [int(s) for s in a.seeds.split(",")]
    results = {m: [train_and_score(m, model_dir, data, held_out, a.steps, s, a.lr, a.updates) for s in seeds]
               for m in METHODS}
    table = {m: {"accuracy_after": round(statistics.mean(r["accuracy"] for r in rs), 4),
                 "per_seed": [r["accuracy"] for r in rs], "seconds": [r["seconds"] for r in rs]}
             for m, rs in results.items()}
    write_result({"benchmark": "rlvr_quality_tiny_arith", "base_accuracy": base, "seeds": seeds,
                  "settings": {"steps": a.steps, "prompts_per_step": 4, "num_generations": 8, "lr": a.lr,
                               "eval_problems": a.eval, "max_completion_length": 96, "temperature": 1.0,
                               "updates_per_generation": a.updates, "dynamic_sampling": False},
                  "methods": table}, a.json)
    print("\n| method | greedy accuracy before | after | seeds |\n|---|---|---|---|")
    for m in METHODS:
        print(f"| {m} | {base:.3f} | {table[m]['accuracy_after']:.3f} | {seeds} |")


if __name__ == "__main__":
    main()
