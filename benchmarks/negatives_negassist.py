"""Negative-assisted distillation ("Turning Dust into Gold") against distillation from the positives alone.

    python benchmarks/negatives_negassist.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 3e-4,1e-3,3e-3,1e-2]
        [--steps 40] [--batch 16] [--prompts 128] [--eval 200]

The claim (Li et al. 2024): a student distilled from a teacher's right rationales learns more when the wrong
ones train a negative assistant that the right ones are then learned beside (their NAT model: MATH 6.81 vs
5.29 for plain CoT distillation, LLaMA-7B from GPT-3.5 rationales), and more again after negative-calibrated
distillation (NCE).

Per seed s: the warm-started tiny arithmetic model (shared with ``negatives_rlvr.py``) samples 8 rationales at
temperature 1 for each of ``--prompts`` difficulty-2 problems (the same labeled rollout ``negatives_nat.py``
makes); every variant is a LoRA (r 8, alpha 16, dropout 0.05, q_proj/v_proj: the authors' shape) on that same
model, ``--steps`` steps of ``--batch`` examples per training stage:

- ``sft``: the positives alone (the paper's CoT KD);
- ``integrated``: stage 1 (negative assistant, on the negatives), then stage 2 (positive branch + integrate
  unit on the positives): the paper's NAT model;
- ``student``: then stage 3, a fresh LoRA distilled from the integrated model on the positives (NCE);
- ``sft_3x``: the positives alone for 3 x the steps (the student's total training steps).

``--student-steps N``: the student is not the model that wrote the rationales but a weaker one, the same tiny
architecture warm-started for N steps only (the paper distils a stronger teacher into a weaker student; by
default the student is the teacher itself, self-distillation).

Adaptive self-consistency (the paper's inference stage), for ``sft`` and ``student``: the model's own 8 samples
per training problem train a ranking model (backbone: the base; 5 epochs at 1e-3, fixed), which weights the
votes over its 8 held-out samples per problem; reported next to the plain majority vote of the same samples.

Evaluation: ``negtune eval math`` (the transformers engine for every variant: the integrated model's layers run
nowhere else) on ``--eval`` held-out problems (fixed, seed 4242), 8
samples at temperature 0.6 / top-p 0.95: avg@8 and pass@8. Equal tuning: every variant gets the same
learning-rate grid (one rate for all of a variant's stages), chosen on a separate tuning seed by avg@8.
Resumable under ``--work``.
"""

from __future__ import annotations

import json
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
from negatives_nat import rollout
from negatives_rlvr import evaluate, problems

VARIANTS = ("sft", "integrated", "student", "sft_3x")
RUNS = (
    Run("negatives_negassist", full=("--seeds", "0,1,2,3,4"),
        quick=("--seeds", "0,1", "--lrs", "3e-3", "--steps", "2", "--prompts", "16", "--eval", "8", "--warm-s", "30")),
    # a teacher stronger than its student, as in the paper: the rationales come from the warm-started model, the
    # student is the same architecture warm-started for 150 steps only
    Run("negatives_negassist_teacher", full=("--student-steps", "150", "--seeds", "0,1,2,3,4"),
        quick=("--student-steps", "20", "--seeds", "0,1", "--lrs", "3e-3", "--steps", "2", "--prompts", "16",
               "--eval", "8", "--warm-s", "30")),
)


def _lora():
    from peft import LoraConfig

    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])


def _train(method: str, base: str, data: str, out: Path, lr: float, steps: int, seed: int, a, peft=True, **kw):
    from transformers import AutoTokenizer

    from negtune import methods

    spec = methods.get(method)
    args = spec.make_config(output_dir=str(out), max_steps=steps, per_device_train_batch_size=a.batch,
                            learning_rate=lr, seed=seed, use_cpu=True, save_strategy="no", report_to="none",
                            disable_tqdm=True, logging_steps=10_000, max_length=512, **kw)
    trainer = spec.trainer_class(base, args, train_dataset=data, processing_class=AutoTokenizer.from_pretrained(base),
                                 peft_config=_lora() if peft else None)
    trainer.train()
    trainer.save_model()


def _stage(run_root: Path, name: str, make) -> tuple[str, float]:
    """A trained stage's folder (trained once: ``make(out)``) and its training seconds."""
    out = run_root / name
    if not (out / "time.json").exists():
        t0 = time.monotonic()
        make(out / "model")
        (out / "time.json").write_text(json.dumps({"train_s": round(time.monotonic() - t0, 1)}))
    return str(out / "model"), json.loads((out / "time.json").read_text())["train_s"]


def student_model(root: Path, steps: int) -> str:
    """The tiny arithmetic model warm-started for ``steps`` steps (the same tokenizer as the teacher)."""
    from negtune.models.tiny import WarmStartConfig, create_tiny_model

    path = root / f"student-{steps}steps"
    if not (path / "config.json").exists():
        create_tiny_model(path, warm=WarmStartConfig(time_budget_s=1e9, max_steps=steps, eval_every=10_000,
                                                     target_accuracy=1.0))
    return str(path)


def train_and_eval(work: Path, base: str, variant: str, lr: float, seed: int, a) -> dict:
    run = work / f"seed{seed}" / f"{variant}-lr{lr:g}"
    done = run / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    data, rollout_stats = rollout(work, a.teacher, seed, a)
    stages = work / f"seed{seed}" / f"stages-lr{lr:g}"  # shared by integrated and student
    if variant in ("sft", "sft_3x"):
        steps = a.steps * (3 if variant == "sft_3x" else 1)
        model, train_s = _stage(run, "sft", lambda out: _train("token_forget", base, data, out, lr, steps, seed, a,
                                                                rho=1.0))
        spent = [train_s]
    else:
        neg, neg_s = _stage(stages, "negative", lambda out: _train("negassist", base, data, out, lr, a.steps, seed,
                                                                   a, stage="negative"))
        model, mix_s = _stage(stages, "integrate", lambda out: _train(
            "negassist", base, data, out, lr, a.steps, seed, a, peft=False, stage="integrate", negative_adapter=neg))
        spent = [neg_s, mix_s]
        if variant == "student":
            teacher = model
            model, dist_s = _stage(run, "student", lambda out: _train(
                "negassist", base, data, out, lr, a.steps, seed, a, stage="distill", teacher=teacher))
            spent.append(dist_s)
    result = {"variant": variant, "lr": lr, "seed": seed, "train_s": spent, "rollout": rollout_stats,
              "eval": evaluate(model, run / "eval", a.eval_file, engine="hf")}
    if variant in ("sft", "student"):
        result["asc"] = adaptive_self_consistency(work, base, model, run, seed, a)
    done.write_text(json.dumps(result, indent=1))
    return result


def adaptive_self_consistency(work: Path, base: str, model: str, run: Path, seed: int, a) -> dict:
    """ASC for a trained model: its 8 samples per training problem (temperature 0.6) train a ranker (backbone:
    the base model; 5 epochs at 1e-3, fixed, not tuned), which re-votes its held-out samples."""
    from negtune.data.io import read_rows
    from negtune.data.rows import training_rows
    from negtune.evaluation.asc import RankerConfig, RankerScorer, asc_accuracy, train_ranker

    train_file = problems(work, f"train-seed{seed}", a.prompts, 1000 + seed, 2)  # the rollout's problems
    evaluate(model, run / "eval-train", train_file, engine="hf")
    samples = training_rows(str(run / "eval-train" / "rollouts" / Path(train_file).stem), "labeled", "asc train")
    t0 = time.monotonic()
    info = train_ranker(samples, run / "ranker", RankerConfig(backbone=base, epochs=5, learning_rate=1e-3, seed=seed))
    acc = asc_accuracy(read_rows(run / "eval" / "samples.jsonl"), RankerScorer(run / "ranker"), "score")
    return {**acc, "ranker_s": round(time.monotonic() - t0, 1), "ranker_loss": [info["first_loss"], info["last_loss"]]}


def results_section(r: dict) -> str:
    from negtune.evaluation.stats import format_difference

    s = r["settings"]
    rows = [[v, f"{t['lr']:g}", ", ".join(f"{x:.3f}" for x in t["per_seed"]), f"{t['mean']:.3f}",
             f"{t['mean_pass8']:.3f}"] for v, t in r["methods"].items()]
    lines = difference_bullets(r)
    for v, t in r.get("asc", {}).items():
        lines.append(f"- {v}: adaptive self-consistency {t['mean_asc']:.3f} vs majority vote {t['mean_maj']:.3f} of the "
                     f"same 8 samples; **ASC - majority: {format_difference(t['difference'])}**")
    ro = r["rollout"]
    student = s.get("student_steps")
    who = (f"The student is a weaker model, the same architecture warm-started for {student} steps (teacher "
           f"avg@8 {r['teacher']['avg@8']:.3f}; the base line below is the student's). " if student else
           "The student is the teacher itself (self-distillation). ")
    return section(
        "Negative-assisted distillation vs the positives alone, avg@8 on arithmetic"
        f"{', a stronger teacher' if student else ''} (`benchmarks/negatives_negassist.py`)",
        who + f"One labeled rollout per seed from the tiny arithmetic model (warm-started on difficulty 2): "
        f"{s['prompts']} difficulty-2 problems x 8 rationales at temperature 1 (mean over seeds: pass@1 "
        f"{ro['pass@1']:.3f}, {ro['positives']:.0f} right, {ro['negatives']:.0f} wrong). Every variant is a LoRA "
        f"(r 8, alpha 16, q/v projections) on the student, {s['steps']} steps of {s['batch']} examples per stage: "
        "`sft` the right rationales (CoT distillation); `integrated` a negative assistant on the wrong ones, then "
        "a positive branch and the integrate unit on the right ones (the paper's NAT model); `student` then a "
        "fresh LoRA distilled from it with the KL calibration (NCE); `sft_3x` the right rationales for the "
        f"student's total steps. Learning rate per variant from {s['lrs']} on tuning seed {s['tune_seed']} by "
        f"avg@8; evaluated on {s['eval']} held-out problems (8 samples, temperature 0.6). Base: avg@8 "
        f"{r['base']['avg@8']:.3f}, pass@8 {r['base']['pass@8']:.3f}. Seeds {r['seeds']}.",
        ["variant", "lr", "avg@8 per seed", "avg@8 mean", "pass@8 mean"], rows,
        "\n".join(lines) + f"\n\nTuning scores (avg@8): {r['tuning']}. Training time summed over all runs and "
        f"stages, tuning included: {r.get('train_seconds', 0):.0f} s; this invocation {r['seconds']:.0f} s "
        "(finished runs are kept and reused).")


def main() -> None:
    ap = parser(__doc__)
    add_comparison_args(ap, VARIANTS, "3e-4,1e-3,3e-3,1e-2",
                        "integrated:sft,student:sft,student:sft_3x,student:integrated", "negatives_negassist")
    ap.add_argument("--prompts", type=int, default=128, help="rollout prompts per seed (8 samples each)")
    ap.add_argument("--student-steps", type=int, help="train a weaker student (warm-started this many steps) on "
                                                      "the rationales; default: the teacher itself")
    a = ap.parse_args()
    a.difficulty = 2  # what negatives_nat.rollout reads
    t0 = time.monotonic()
    seeds, variants, pairs, lrs = comparison_plan(ap, a, VARIANTS)

    from negtune.evaluation.stats import paired_difference
    work = comparison_work(a, f"p{a.prompts}-steps{a.steps}-b{a.batch}-eval{a.eval}"
                              f"{f'-student{a.student_steps}' if a.student_steps else ''}")
    a.teacher = comparison_base(a)
    base = student_model(Path(a.work), a.student_steps) if a.student_steps else a.teacher
    a.eval_file = problems(work, "eval", a.eval, 4242, 2)
    base_eval = evaluate(base, work / "eval-base", a.eval_file, engine="hf")
    teacher_eval = evaluate(a.teacher, work / "eval-teacher", a.eval_file, engine="hf") if a.student_steps else None
    tuning, chosen, tuned, runs = tuned_runs(variants, lrs, seeds, a.tune_seed,
                                             lambda v, lr, s: train_and_eval(work, base, v, lr, s, a))
    table = avg8_summary(runs, chosen)
    asc = {v: {"asc": [r["asc"]["asc"] for r in rs], "maj": [r["asc"]["maj"] for r in rs],
               "mean_asc": statistics.fmean(r["asc"]["asc"] for r in rs),
               "mean_maj": statistics.fmean(r["asc"]["maj"] for r in rs),
               "difference": paired_difference([r["asc"]["asc"] for r in rs], [r["asc"]["maj"] for r in rs])}
           for v, rs in runs.items() if rs and "asc" in rs[0]}
    everything = tuned + [r for rs in runs.values() for r in rs]
    seen, train_s = set(), 0.0
    for r in everything:  # each trained stage once (integrated and student share stages 1-2)
        key = (r["seed"], r["lr"], r["variant"] if r["variant"].startswith("sft") else "stages")
        train_s += sum(r["train_s"][2:]) if key in seen else sum(r["train_s"])
        seen.add(key)
    first = next(iter(runs.values()))
    write_result({"benchmark": "negatives_negassist" + ("_teacher" if a.student_steps else ""), "seeds": seeds,
                  "teacher": teacher_eval,
                  "settings": {"student_steps": a.student_steps, "steps": a.steps, "batch": a.batch, "prompts": a.prompts, "eval": a.eval,
                               "lrs": lrs, "tune_seed": a.tune_seed},
                  "base": base_eval,
                  "rollout": {k: statistics.fmean(r["rollout"][k] for r in first) for k in first[0]["rollout"]},
                  "tuning": tuning, "methods": table, "asc": asc,
                  "differences": {f"{x}:{y}": paired_difference(table[x]["per_seed"], table[y]["per_seed"])
                                  for x, y in pairs},
                  "train_seconds": round(train_s, 1), "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
