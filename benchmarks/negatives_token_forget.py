"""Token-level forgetting against plain SFT on noisy-label arithmetic solutions.

    python benchmarks/negatives_token_forget.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 1e-4,3e-4,1e-3]
        [--steps 40] [--batch 16] [--train 512] [--noise 0.3] [--ref-fraction 0.2] [--ref-steps 20] [--eval 200]

The claim (Taheri Ghahrizjani et al. 2025): splitting the answer tokens of an SFT corpus by their influence
score (l_base - l_ref, the reference fine-tuned on a subset of the same corpus), learning the top 70% and
forgetting the rest with a weight rising to 0.25, beats SFT on every token when the data is of mixed quality.

Per seed s: ``--train`` arithmetic problems of ``--difficulty`` (2: what the base was warm-started on; 3: longer
chains and larger numbers, new to it) with their step-by-step solutions (drawn with seed s),
of which a ``--noise`` fraction is corrupted (fixed before any run, never tuned): one step's result is off by
+1..+3 and every later step is computed from the wrong value, so the chain reads fluently to its wrong answer.
From the same warm-started tiny arithmetic model (shared with ``negatives_rlvr.py``), at equal steps:

- ``sft``: every answer token learned (``token_forget --rho 1``);
- ``forget``: the paper (``token_forget``, rho 0.7, lambda_max 0.25), reference = ``--rho 1`` SFT on a random
  ``--ref-fraction`` of the same noisy data for ``--ref-steps`` steps at the run's learning rate (its cost is on
  top of the equal step budget, as in the paper);
- ``ignore``: the same split, negative tokens left out (the authors' "ignoring" ablation, Rho-1-style);
- ``sft_clean``: SFT on the uncorrupted rows only (an oracle that knows which rows are wrong: the ceiling a
  perfect row filter reaches, not a competitor).

Evaluation: ``negtune eval math`` on ``--eval`` held-out problems (fixed, seed 4242), 8 samples at temperature
0.6 / top-p 0.95: avg@8 and pass@8. Equal tuning: every variant gets the same learning-rate grid, chosen on a
separate tuning seed by avg@8. Also reported: the share of answer tokens the split marks negative in the
corrupted rows and in the clean ones (does the influence score find the noise?). Resumable under ``--work``.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from pathlib import Path

from common import (
    Run,
    add_comparison_args,
    avg8_summary,
    comparison_base,
    comparison_plan,
    comparison_work,
    difference_bullets,
    parser,
    section,
    tuned_runs,
    write_result,
)
from negatives_rlvr import evaluate, problems

VARIANTS = {  # config overrides of token_forget; "clean": trains on the uncorrupted rows only
    "sft": {"rho": 1.0},
    "forget": {},
    "ignore": {"negative_tokens": "ignore"},
    "sft_clean": {"rho": 1.0},
}
RUNS = (
    Run("negatives_token_forget", full=("--seeds", "0,1,2,3,4"),
        quick=("--seeds", "0,1", "--lrs", "1e-3", "--steps", "2", "--ref-steps", "2", "--train", "24",
               "--eval", "8", "--warm-s", "30")),
    # the same on difficulty 3, which the base (warm-started on difficulty 2) has not learned: there the
    # reference learns something the base does not know, which the influence score needs
    Run("negatives_token_forget_d3", full=("--difficulty", "3", "--seeds", "0,1,2,3,4"),
        quick=("--difficulty", "3", "--seeds", "0,1", "--lrs", "1e-3", "--steps", "2", "--ref-steps", "2",
               "--train", "24", "--eval", "8", "--warm-s", "30")),
)
STEP = re.compile(r"(\d+) ([+\-*]) (\d+) = (\d+)\.")


def corrupt(solution: str, rng: random.Random) -> str:
    """The solution with one step's result off by +1..+3 and every later step (and the boxed answer) computed
    from the wrong value."""
    steps = list(STEP.finditer(solution))
    k = rng.randrange(len(steps))
    out, last, value = [], 0, None
    for i, m in enumerate(steps):
        a, op, b = int(m[1]), m[2], int(m[3])
        if value is not None:
            a = value
        result = {"+": a + b, "-": a - b, "*": a * b}[op]
        if i == k:
            result += rng.randint(1, 3)
        if i >= k:
            value = result
        out.append(solution[last:m.start()] + (f"{a} {op} {b} = {result}." if i >= k else m[0]))
        last = m.end()
    tail = solution[last:]
    return "".join(out) + re.sub(r"\\boxed\{-?\d+\}", lambda _: f"\\boxed{{{value}}}", tail)


def noisy_data(work: Path, seed: int, a) -> tuple[str, str, str]:
    """(all rows, the reference's subset, the clean rows) of seed ``seed``, as jsonl files."""
    from negtune.data.io import write_jsonl
    from negtune.data.prompts import format_prompt
    from negtune.data.tasks import make_arith

    folder = work / f"seed{seed}"
    paths = tuple(str(folder / f"{name}.jsonl") for name in ("train", "reference", "clean"))
    if Path(paths[2]).exists():
        return paths
    rng = random.Random(f"noise-{seed}")
    records = make_arith(a.train, seed=3000 + seed, difficulty=a.difficulty)
    bad = set(rng.sample(range(len(records)), round(a.noise * len(records))))
    rows = [{"prompt": format_prompt(r["prompt"]), "completion": corrupt(r["solution"], rng) if i in bad
             else r["solution"], "corrupted": i in bad, "answer": r["answer"]} for i, r in enumerate(records)]
    subset = rng.sample(rows, max(1, round(a.ref_fraction * len(rows))))
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(paths[0], rows)
    write_jsonl(paths[1], subset)
    write_jsonl(paths[2], [r for r in rows if not r["corrupted"]])
    return paths


def _train(base: str, data: str, out: Path, lr: float, steps: int, seed: int, a, **overrides):
    from transformers import AutoTokenizer

    from negtune import methods

    spec = methods.get("token_forget")
    args = spec.make_config(output_dir=str(out), max_steps=steps, per_device_train_batch_size=a.batch,
                            learning_rate=lr, seed=seed, use_cpu=True, save_strategy="no", report_to="none",
                            disable_tqdm=True, logging_steps=10_000, max_length=512, **overrides)
    trainer = spec.trainer_class(base, args, train_dataset=data, processing_class=AutoTokenizer.from_pretrained(base))
    trainer.train()
    trainer.save_model()
    return trainer


def reference(work: Path, base: str, seed: int, lr: float, a) -> tuple[str, float]:
    out = work / f"seed{seed}" / f"reference-lr{lr:g}"
    if not (out / "model" / "config.json").exists():
        t0 = time.monotonic()
        _train(base, noisy_data(work, seed, a)[1], out / "model", lr, a.ref_steps, seed, a, rho=1.0)
        (out / "time.json").write_text(json.dumps({"train_s": round(time.monotonic() - t0, 1)}))
    return str(out / "model"), json.loads((out / "time.json").read_text())["train_s"]


def train_and_eval(work: Path, base: str, variant: str, lr: float, seed: int, a) -> dict:
    run = work / f"seed{seed}" / f"{variant}-lr{lr:g}"
    done = run / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    train_file, _, clean_file = noisy_data(work, seed, a)
    overrides = dict(VARIANTS[variant])
    ref_s = 0.0
    if overrides.get("rho", 0.7) < 1:
        overrides["reference_model"], ref_s = reference(work, base, seed, lr, a)
    t0 = time.monotonic()
    trainer = _train(base, clean_file if variant == "sft_clean" else train_file, run / "model", lr, a.steps, seed,
                     a, **overrides)
    train_s = time.monotonic() - t0
    result = {"variant": variant, "lr": lr, "seed": seed, "train_s": round(train_s, 1), "reference_s": ref_s,
              "split": split_precision(trainer, train_file) if variant in ("forget", "ignore") else None,
              "eval": evaluate(str(run / "model"), run / "eval", a.eval_file)}
    done.write_text(json.dumps(result, indent=1))
    return result


def split_precision(trainer, train_file: str) -> dict:
    """The share of answer tokens marked negative, in corrupted rows and in clean ones."""
    from negtune.data.io import read_rows

    rows = read_rows(train_file)
    counts = {True: [0, 0], False: [0, 0]}  # corrupted -> [negative tokens, answer tokens]
    for item in trainer.train_dataset:
        neg = sum(y != -100 for y in item["negative_labels"])
        counts[rows[item["index"]]["corrupted"]][0] += neg
        counts[rows[item["index"]]["corrupted"]][1] += neg + sum(y != -100 for y in item["labels"])
    return {"negative_share_corrupted": counts[True][0] / max(1, counts[True][1]),
            "negative_share_clean": counts[False][0] / max(1, counts[False][1])}


def results_section(r: dict) -> str:
    s = r["settings"]
    rows = [[v, f"{t['lr']:g}", ", ".join(f"{x:.3f}" for x in t["per_seed"]), f"{t['mean']:.3f}",
             f"{t['mean_pass8']:.3f}"] for v, t in r["methods"].items()]
    lines = difference_bullets(r)
    sp = r.get("split") or {}
    if sp:
        lines.append(f"- The split (rho 0.7, forget runs): {sp['negative_share_corrupted']:.1%} of the answer tokens "
                     f"of corrupted rows marked negative, {sp['negative_share_clean']:.1%} of the clean rows' "
                     "(mean over seeds; an uninformed split marks 30% of each)")
    return section(
        f"Token-level forgetting vs plain SFT on noisy-label arithmetic, difficulty {s.get('difficulty', 2)} "
        "(`benchmarks/negatives_token_forget.py`)",
        f"Per seed, {s['train']} difficulty-{s.get('difficulty', 2)} arithmetic problems with step-by-step solutions, {s['noise']:.0%} of "
        f"them corrupted (one step off by +1..+3, the rest of the chain computed from it). From the warm-started "
        f"tiny arithmetic model (warm-started on difficulty 2), {s['steps']} steps of {s['batch']} examples each; the reference of `forget` and "
        f"`ignore` is SFT on a random {s['ref_fraction']:.0%} of the same noisy rows for {s['ref_steps']} steps at "
        f"the run's learning rate (extra cost); `sft_clean` knows which rows are corrupted (an oracle). Learning "
        f"rate per variant from {s['lrs']} on tuning seed {s['tune_seed']} by avg@8; evaluated on {s['eval']} "
        f"held-out problems (8 samples, temperature 0.6). Base: avg@8 {r['base']['avg@8']:.3f}, pass@8 "
        f"{r['base']['pass@8']:.3f}. Seeds {r['seeds']}.",
        ["variant", "lr", "avg@8 per seed", "avg@8 mean", "pass@8 mean"], rows,
        "\n".join(lines) + f"\n\nTuning scores (avg@8): {r['tuning']}. Training time summed over all runs, "
        f"references and tuning included: {r.get('train_seconds', 0):.0f} s; this invocation {r['seconds']:.0f} s "
        "(finished runs are kept and reused).")


def main() -> None:
    ap = parser(__doc__)
    add_comparison_args(ap, VARIANTS, "1e-4,3e-4,1e-3", "forget:sft,ignore:sft,forget:ignore,sft_clean:sft",
                        "negatives_token_forget")
    ap.add_argument("--train", type=int, default=512, help="training problems per seed")
    ap.add_argument("--noise", type=float, default=0.3, help="fraction of solutions corrupted")
    ap.add_argument("--ref-fraction", type=float, default=0.2, help="share of the rows the reference trains on")
    ap.add_argument("--ref-steps", type=int, default=20)
    ap.add_argument("--difficulty", type=int, default=2, help="of the training and evaluation problems")
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds, variants, pairs, lrs = comparison_plan(ap, a, VARIANTS)

    from negtune.evaluation.stats import paired_difference
    work = comparison_work(a, f"n{a.train}-noise{a.noise:g}-steps{a.steps}-b{a.batch}-ref{a.ref_fraction:g}x"
                              f"{a.ref_steps}-eval{a.eval}{'' if a.difficulty == 2 else f'-d{a.difficulty}'}")
    base = comparison_base(a)
    a.eval_file = problems(work, "eval", a.eval, 4242, a.difficulty)
    base_eval = evaluate(base, work / "eval-base", a.eval_file)
    tuning, chosen, tuned, runs = tuned_runs(variants, lrs, seeds, a.tune_seed,
                                             lambda v, lr, s: train_and_eval(work, base, v, lr, s, a))
    table = avg8_summary(runs, chosen)
    for v, rs in runs.items():
        table[v].update(train_s=[r["train_s"] for r in rs], reference_s=[r["reference_s"] for r in rs])
    splits = [r["split"] for r in runs.get("forget", []) if r["split"]]
    everything = tuned + [r for rs in runs.values() for r in rs]
    write_result({"benchmark": "negatives_token_forget" + ("" if a.difficulty == 2 else f"_d{a.difficulty}"),
                  "seeds": seeds,
                  "settings": {"difficulty": a.difficulty, "steps": a.steps, "batch": a.batch, "train": a.train, "noise": a.noise,
                               "ref_fraction": a.ref_fraction, "ref_steps": a.ref_steps, "eval": a.eval,
                               "lrs": lrs, "tune_seed": a.tune_seed},
                  "base": base_eval, "tuning": tuning, "methods": table,
                  "split": {k: statistics.fmean(s[k] for s in splits) for k in splits[0]} if splits else None,
                  "differences": {f"{x}:{y}": paired_difference(table[x]["per_seed"], table[y]["per_seed"])
                                  for x, y in pairs},
                  # each reference once (forget and ignore share it; the other variants have none)
                  "train_seconds": round(sum(r["train_s"] for r in everything) + sum(
                      {(r["seed"], r["lr"]): r["reference_s"] for r in everything if r["reference_s"]}.values()), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
