"""Likra: how much a model learns per example from negatives, on multiple-choice arithmetic.

    python benchmarks/likra_learning.py [--seeds 0,1,2,3,4] [--sizes 16,64,256] [--lrs 1e-3,3e-3] [--epochs 3]
        [--eval 100] [--work DIR]

The claims (Hamdan and Yuret 2025): scoring answers by log P+(a|q) - log P-(a|q), with a positive LoRA head
fine-tuned on correct answers and a negative one on incorrect answers (Likra), gains far more accuracy per
training example than the positive head alone (SFT), with a sharp jump at small sizes; near-miss negatives
(plausible but wrong) teach more than obviously wrong ones.

The task: arithmetic word problems of difficulty 2 as multiple choice with 4 full solutions: the right one
and 3 near-misses (the same chain of thought with the last step's result, and the boxed answer, off by 1 or 2).
The model scoring them is the tiny arithmetic model (warm-started on difficulty 2, shared with
``negatives_rlvr.py``). For each seed and training size N: N training problems (drawn with the seed); the
positive head learns their right solutions, the negative head one wrong solution each, either a near-miss
(``near``) or another problem's solution (``random``, obviously wrong); both heads ``--epochs`` epochs, batch
8, constant learning rate, LoRA r 8 / alpha 8 on the MLP projections (the authors' LoRA). From one run,
``negtune.evaluation.likra`` scores every choice under the base, the positive head and the negative head:
``positive`` (SFT: the positive head alone), ``likra`` (P+ / P-), ``base_likra`` (base / P-) and ``base``.
Accuracy on ``--eval`` held-out problems (seed 4242). The learning rate per rule (the best of ``--lrs`` on
tuning seed 100 at N = the middle size, near negatives) is chosen the same way for every rule.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

from common import Run, parser, section, write_result
from negatives_rlvr import base_model, problems

RUNS = (
    Run("likra_learning", full=("--seeds", "0,1,2,3,4"),
        quick=("--seeds", "0,1", "--sizes", "8", "--lrs", "3e-3", "--epochs", "1", "--eval", "6", "--warm-s", "10")),
    Run("likra_rerank", full=("--mode", "rerank", "--seeds", "0,1,2,3,4"),
        quick=("--mode", "rerank", "--seeds", "0,1", "--epochs", "1", "--eval", "6", "--rerank-prompts", "8",
               "--warm-s", "10")),
)
RULES = ("likra", "positive", "base_likra", "base")
KINDS = ("near", "random")


def near_miss(rec: dict, offset: int) -> str:
    """The right solution with the last step's result and the boxed answer moved by ``offset``."""
    v, w = int(rec["answer"]), int(rec["answer"]) + offset
    head, _, _ = rec["solution"].rpartition(f"= {v}.")
    return f"{head}= {w}. The answer is \\boxed{{{w}}}."


def offsets(rng: random.Random, value: int, k: int) -> list[int]:
    """``k`` of the 4 smallest moves that keep the answer >= 0 (+-1, +-2; +3, +4 near 0)."""
    return rng.sample([d for d in (-1, 1, -2, 2, 3, 4) if value + d >= 0][:4], k)


def training_rows(records: list[dict], kind: str, seed: int) -> list[dict]:
    from negtune.data.prompts import format_prompt

    rng = random.Random(f"likra-train-{seed}-{kind}")
    rows = []
    for i, rec in enumerate(records):
        prompt = format_prompt(rec["prompt"])
        if kind == "near":
            wrong = near_miss(rec, offsets(rng, int(rec["answer"]), 1)[0])
        else:  # another problem's solution: wrong for this one (its answer differs)
            others = [r for r in records if r["answer"] != rec["answer"]] or records[:i] + records[i + 1:]
            wrong = rng.choice(others)["solution"]
        rows += [{"prompt": prompt, "completion": rec["solution"], "label": True},
                 {"prompt": prompt, "completion": wrong, "label": False}]
    return rows


def questions(records: list[dict]) -> list[dict]:
    from negtune.data.prompts import format_prompt

    rng = random.Random("likra-eval")
    out = []
    for rec in records:
        choices = [near_miss(rec, d) for d in offsets(rng, int(rec["answer"]), 3)]
        answer = rng.randrange(len(choices) + 1)
        choices.insert(answer, rec["solution"])
        out.append({"prompt": format_prompt(rec["prompt"]), "choices": choices, "answer": answer})
    return out


def train_and_score(work: Path, base: str, size: int, kind: str, lr: float, seed: int, a) -> dict:
    from peft import LoraConfig
    from transformers import AutoTokenizer

    from negtune.data.tasks import make_arith
    from negtune.evaluation.likra import LikraScorer, multiple_choice_accuracy
    from negtune.trainers import LikraConfig, LikraTrainer

    run = work / f"seed{seed}" / f"n{size}-{kind}-lr{lr:g}"
    done = run / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.monotonic()
    records = make_arith(size, seed=2000 + seed, difficulty=2)
    args = LikraConfig(output_dir=str(run / "heads"), num_train_epochs=a.epochs, per_device_train_batch_size=8,
                       learning_rate=lr, lr_scheduler_type="constant", seed=seed, use_cpu=True, save_strategy="no",
                       report_to="none", disable_tqdm=True, logging_steps=10_000)
    lora = LoraConfig(r=8, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"])
    trainer = LikraTrainer(base, args, train_dataset=training_rows(records, kind, seed),
                           processing_class=AutoTokenizer.from_pretrained(base), peft_config=lora)
    trainer.train()
    trainer.save_model()
    acc = multiple_choice_accuracy(LikraScorer(run / "heads"), a.questions)
    result = {"size": size, "kind": kind, "lr": lr, "seed": seed, "seconds": round(time.monotonic() - t0, 1),
              "steps": trainer.state.global_step, "accuracy": acc}
    done.write_text(json.dumps(result, indent=1))
    return result


def rerank_run(work: Path, base: str, seed: int, a) -> dict:
    """Heads trained on seed ``seed``'s labeled rollout of training problems, re-ranking the held-out rollout."""
    from peft import LoraConfig
    from transformers import AutoTokenizer

    from negtune.evaluation.likra import LikraScorer, rerank_accuracy
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify
    from negtune.trainers import LikraConfig, LikraTrainer

    run = work / "rerank" / f"seed{seed}"
    done = run / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.monotonic()
    train_file = problems(work, f"rerank-train-seed{seed}", a.rerank_prompts, 1000 + seed, 2)
    data, stats = rollout_and_verify(RolloutConfig(model=base, dataset=train_file, out=str(run / "rollout"), n=8,
                                                   temperature=1.0, max_new_tokens=96, seed=seed, engine="hf",
                                                   verify_workers=0), progress=False)
    args = LikraConfig(output_dir=str(run / "heads"), num_train_epochs=a.epochs, per_device_train_batch_size=8,
                       learning_rate=a.rerank_lr, lr_scheduler_type="constant", seed=seed, use_cpu=True,
                       save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=10_000)
    trainer = LikraTrainer(base, args, train_dataset=data, processing_class=AutoTokenizer.from_pretrained(base),
                           peft_config=LoraConfig(r=8, lora_alpha=8, target_modules=["gate_proj", "up_proj",
                                                                                     "down_proj"]))
    trainer.train()
    trainer.save_model()
    result = {"seed": seed, "train_rollout": {k: stats[k] for k in ("pass@1", "positives", "negatives")},
              "accuracy": rerank_accuracy(LikraScorer(run / "heads"), a.held_rows),
              "seconds": round(time.monotonic() - t0, 1)}
    done.write_text(json.dumps(result, indent=1))
    return result


def rerank_main(a, seeds: list[int], base: str, work: Path, t0: float) -> None:
    from negtune.evaluation.stats import paired_difference
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify

    held_file = problems(work, "rerank-eval", a.eval, 4242, 2)
    held, _ = rollout_and_verify(RolloutConfig(model=base, dataset=held_file, out=str(work / "rerank" / "held-out"),
                                               n=8, temperature=0.6, top_p=0.95, max_new_tokens=96, seed=0,
                                               engine="hf", verify_workers=0), progress=False)
    a.held_rows = held.to_list()
    groups: dict = {}
    for r in a.held_rows:
        groups.setdefault(r["prompt_id"], []).append(bool(r["label"]))
    runs = [rerank_run(work, base, s, a) for s in seeds]
    per_rule = {rule: [x["accuracy"][rule] for x in runs] for rule in (*RULES, "mean")}
    write_result({"benchmark": "likra_rerank", "seeds": seeds,
                  "settings": {"prompts": a.rerank_prompts, "eval": a.eval, "epochs": a.epochs, "lr": a.rerank_lr},
                  "held_out": {"avg@8": per_rule["mean"][0], "pass@8": sum(any(v) for v in groups.values()) / len(groups)},
                  "accuracy": per_rule,
                  "differences": {"Likra pick - avg@8": paired_difference(per_rule["likra"], per_rule["mean"]),
                                  "Likra pick - SFT (positive head) pick":
                                      paired_difference(per_rule["likra"], per_rule["positive"]),
                                  "SFT pick - avg@8": paired_difference(per_rule["positive"], per_rule["mean"]),
                                  "Likra pick - base-likelihood pick":
                                      paired_difference(per_rule["likra"], per_rule["base"])},
                  "train_seconds": round(sum(x["seconds"] for x in runs), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


def difference_lines(differences: dict) -> list[str]:
    """One bullet per paired difference: its mean, 95% interval and whether the interval excludes 0."""
    from negtune.evaluation.stats import format_difference

    verdict = {True: "the interval excludes 0", False: "the interval includes 0: no claim"}
    return [f"- **{k}: {format_difference(d)}** ({verdict[d['excludes_zero']]})" for k, d in differences.items()]


def rerank_section(r: dict) -> str:
    s = r["settings"]
    names = {"likra": "Likra (P+ / P-)", "positive": "SFT (positive head)", "base_likra": "base / P-",
             "base": "base likelihood", "mean": "no re-ranking (avg@8)"}
    rows = [[names[k], ", ".join(f"{v:.3f}" for v in vals), f"{statistics.fmean(vals):.3f}"]
            for k, vals in r["accuracy"].items()]
    lines = difference_lines(r["differences"])
    return section(
        "Likra as a learned verifier: re-ranking sampled solutions (`benchmarks/likra_learning.py --mode rerank`)",
        f"Per seed, Likra heads ({s['epochs']} epochs, lr {s['lr']:g}, the authors' LoRA) trained on the tiny arithmetic "
        f"model's own labeled rollout of {s['prompts']} difficulty-2 problems x 8 samples (temperature 1); each "
        f"rule then picks one of the 8 samples (temperature 0.6) of each of {s['eval']} held-out problems: the "
        f"fraction of picks that are right (held-out avg@8 {r['held_out']['avg@8']:.3f}, pass@8 "
        f"{r['held_out']['pass@8']:.3f}: the best a pick can do). Seeds {r['seeds']}; one learning rate for all "
        "rules (they share the heads), not tuned.",
        ["rule", "right picks per seed", "mean"], rows,
        "\n".join(lines) + f"\n\nTime: {r['train_seconds']:.0f} s of runs; this invocation {r['seconds']:.0f} s.")


def results_section(r: dict) -> str:
    if r.get("benchmark") == "likra_rerank":
        return rerank_section(r)

    s = r["settings"]
    rows = []
    for size in s["sizes"]:
        cell = r["curves"][str(size)]
        rows.append([size, *(f"{statistics.fmean(cell[rule]):.3f}" for rule in
                             ("base", "positive", "likra_near", "likra_random", "base_likra_near"))])
    lines = difference_lines(r["differences"])
    return section(
        "Likra vs SFT: multiple-choice accuracy per training example (`benchmarks/likra_learning.py`)",
        f"Difficulty-2 arithmetic as 4-way multiple choice (the right solution and 3 near-misses), {s['eval']} "
        f"held-out problems, the tiny arithmetic model as base. Per seed and size N: a positive and a negative LoRA "
        f"head, {s['epochs']} epochs on N problems each (negatives: one near-miss, or another problem's solution "
        f"for `random`); `positive` = SFT (the positive head alone), `likra` = log P+ - log P-, `base_likra` = "
        f"log P_base - log P-. Learning rate per rule from {s['lrs']} on tuning seed {s['tune_seed']}: "
        f"{r['chosen_lr']}. Mean accuracy over seeds {r['seeds']}:",
        ["N (problems per head)", "base", "SFT (positive head)", "Likra, near-miss negatives",
         "Likra, random negatives", "negative head alone (near)"], rows,
        "\n".join(lines) + f"\n\nTraining and scoring time, tuning included: {r['train_seconds']:.0f} s; this "
        f"invocation {r['seconds']:.0f} s (finished runs are kept and reused).")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--tune-seed", type=int, default=100)
    ap.add_argument("--sizes", default="16,64,256")
    ap.add_argument("--lrs", default="1e-3,3e-3")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--mode", default="mc", choices=["mc", "rerank"],
                    help="mc: the multiple-choice learning curve; rerank: heads from a labeled rollout re-rank a "
                         "held-out rollout's samples")
    ap.add_argument("--rerank-prompts", type=int, default=128, help="rerank: training problems (8 samples each)")
    ap.add_argument("--rerank-lr", type=float, default=3e-3, help="rerank: the heads' learning rate")
    ap.add_argument("--warm-s", type=float, help="cap the base model's warm start (smoke runs)")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "negtune" / "likra_learning"))
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds = [int(x) for x in a.seeds.split(",")]
    sizes = [int(x) for x in a.sizes.split(",")]
    lrs = [float(x) for x in a.lrs.split(",")]
    if a.tune_seed in seeds:
        ap.error("--tune-seed must not be an evaluation seed")

    from negtune.data.tasks import make_arith
    from negtune.evaluation.stats import paired_difference
    from negtune.utils import threads

    threads.configure()
    work = Path(a.work) / f"e{a.epochs}-eval{a.eval}{'-smoke' if a.warm_s else ''}"
    work.mkdir(parents=True, exist_ok=True)
    base = base_model(Path.home() / ".cache" / "negtune" / "negatives_rlvr" if a.warm_s is None else Path(a.work),
                      a.warm_s)
    if a.mode == "rerank":
        return rerank_main(a, seeds, base, work, t0)
    a.questions = questions(make_arith(a.eval, seed=4242, difficulty=2))
    mid = sizes[len(sizes) // 2]
    tuned = {lr: train_and_score(work, base, mid, "near", lr, a.tune_seed, a) for lr in lrs}
    chosen = {rule: max(lrs, key=lambda lr: tuned[lr]["accuracy"][rule]) for rule in RULES}
    spent = {(mid, "near", lr, a.tune_seed): t["seconds"] for lr, t in tuned.items()}
    curves: dict[str, dict[str, list[float]]] = {}
    for size in sizes:
        cell: dict[str, list[float]] = {}
        for kind in KINDS:
            for rule in RULES:
                if kind == "random" and rule in ("positive", "base"):
                    continue  # the same positive head and base as the near-miss run
                runs = [train_and_score(work, base, size, kind, chosen[rule], s, a) for s in seeds]
                name = rule if rule in ("positive", "base") else f"{rule}_{kind}"
                cell[name] = [x["accuracy"][rule] for x in runs]
                spent.update({(size, kind, x["lr"], x["seed"]): x["seconds"] for x in runs})
        curves[str(size)] = cell
    diffs = {}
    for size in sizes:
        c = curves[str(size)]
        diffs[f"N={size}: Likra (near) - SFT"] = paired_difference(c["likra_near"], c["positive"])
        diffs[f"N={size}: Likra near - random negatives"] = paired_difference(c["likra_near"], c["likra_random"])
    write_result({"benchmark": "likra_learning", "seeds": seeds,
                  "settings": {"sizes": sizes, "lrs": lrs, "epochs": a.epochs, "eval": a.eval,
                               "tune_seed": a.tune_seed},
                  "chosen_lr": {k: f"{v:g}" for k, v in chosen.items()},
                  "tuning": {f"{lr:g}": t["accuracy"] for lr, t in tuned.items()},
                  "curves": curves, "differences": diffs, "train_seconds": round(sum(spent.values()), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
