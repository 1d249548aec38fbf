"""Negative-aware training (NAT) against training on the positives alone, from one labeled rollout per seed.

    python benchmarks/negatives_nat.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 1e-4,3e-4,1e-3]
        [--steps 40] [--batch 16] [--prompts 128] [--difficulty 2] [--eval 200] [--work DIR]

The claim (Wang et al. 2024): fine-tuning on successes *and* failures, each under a quality marker in the
prompt, then sampling with the success marker, beats fine-tuning on the successes alone; the paper's ablation
trains on both without markers (better than successes alone, worse than NAT).

Per seed s: the tiny arithmetic model (warm-started on difficulty 2, shared with ``negatives_rlvr.py``) samples
8 completions at temperature 1 for each of ``--prompts`` difficulty-``--difficulty`` problems (drawn with seed
s); ``negtune rollout`` labels them. Every method trains on that same labeled rollout from the same base, for
the same steps and batch size:

- ``nat``: positives under the positive marker, 2 negatives per positive under the negative marker (registry
  defaults); sampled with the positive marker (saved with the model);
- ``sft``: next-token NLL on the positives, no marker (the paper's baseline);
- ``sft_marker``: the same under the positive marker, sampled with it (what the marker alone does, negatives
  aside);
- ``rft_offline``: negtune's rejection-sampling fine-tuning (positives, prompt weight 1 - pass rate);
- ``nat_nomarker``: positives and 2 negatives per positive, no markers (the paper's ablation).

Evaluation: ``negtune eval math`` on ``--eval`` held-out problems of the same difficulty (fixed, seed 4242), 8
samples at temperature 0.6 / top-p 0.95 (``--marker auto``: NAT's models get their marker): avg@8 and pass@8.
Equal tuning: every method gets the same learning-rate grid, chosen on a separate tuning seed by avg@8;
evaluation seeds never take part. Resumable: rollouts and runs are kept under ``--work``.
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
from negatives_rlvr import evaluate, problems

N = 8
VARIANTS = {  # method name in the registry, config overrides
    "nat": ("nat", {}),
    "sft": ("nat", {"negatives_per_positive": 0, "positive_marker": ""}),
    "sft_marker": ("nat", {"negatives_per_positive": 0}),
    "rft_offline": ("rft_offline", {}),
    "nat_nomarker": ("nat", {"positive_marker": "", "negative_marker": ""}),
}
RUNS = (
    Run("negatives_nat", full=("--seeds", "0,1,2,3,4"),
        quick=("--seeds", "0,1", "--lrs", "3e-4", "--steps", "2", "--prompts", "16", "--difficulty", "1",
               "--eval", "8", "--warm-s", "30")),
)


def rollout(work: Path, base: str, seed: int, a) -> tuple[str, dict]:
    """The labeled rollout of seed ``seed`` (made once; every method trains on it)."""
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify

    out = work / f"seed{seed}" / "rollout"
    train_file = problems(work, f"train-seed{seed}", a.prompts, 1000 + seed, a.difficulty)
    _, stats = rollout_and_verify(RolloutConfig(model=base, dataset=train_file, out=str(out), n=N, temperature=1.0,
                                                max_new_tokens=96, seed=seed, engine="hf", verify_workers=0),
                                  progress=False)
    return str(out), {k: stats[k] for k in ("pass@1", "positives", "negatives", "groups_all_wrong")}


def train_and_eval(work: Path, base: str, variant: str, lr: float, seed: int, a) -> dict:
    from transformers import AutoTokenizer

    from negtune import methods

    run = work / f"seed{seed}" / f"{variant}-lr{lr:g}"
    done = run / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    data, rollout_stats = rollout(work, base, seed, a)
    t0 = time.monotonic()
    model_dir = run / "model"
    name, overrides = VARIANTS[variant]
    spec = methods.get(name)
    args = spec.make_config(output_dir=str(model_dir), max_steps=a.steps, per_device_train_batch_size=a.batch,
                            learning_rate=lr, seed=seed, use_cpu=True, save_strategy="no", report_to="none",
                            disable_tqdm=True, logging_steps=10_000, max_length=512, **overrides)
    tok = AutoTokenizer.from_pretrained(base)
    trainer = spec.trainer_class(base, args, train_dataset=data, processing_class=tok)
    trainer.train()
    trainer.save_model()
    used = trainer.train_dataset
    counts = {"positives": sum(used["is_positive"]), "negatives": len(used) - sum(used["is_positive"])}
    train_s = time.monotonic() - t0
    result = {"variant": variant, "lr": lr, "seed": seed, "train_s": round(train_s, 1), "trained_on": counts,
              "rollout": rollout_stats, "eval": evaluate(str(model_dir), run / "eval", a.eval_file)}
    done.write_text(json.dumps(result, indent=1))
    return result


def results_section(r: dict) -> str:
    s = r["settings"]
    rows = [[m, f"{t['lr']:g}", ", ".join(f"{v:.3f}" for v in t["per_seed"]), f"{t['mean']:.3f}",
             f"{t['mean_pass8']:.3f}", f"{t['positives']:.0f} / {t['negatives']:.0f}"]
            for m, t in r["methods"].items()]
    lines = difference_bullets(r)
    ro = r["rollout"]
    return section(
        "Negatives that matter: NAT vs positives only, avg@8 on arithmetic (`benchmarks/negatives_nat.py`)",
        f"One labeled rollout per seed from the tiny arithmetic model (warm-started on difficulty 2): "
        f"{s['prompts']} difficulty-{s['difficulty']} problems x {N} samples at temperature 1 (mean over seeds: "
        f"pass@1 {ro['pass@1']:.3f}, {ro['positives']:.0f} positives, {ro['negatives']:.0f} negatives). Every "
        f"method trains on that rollout from the same base for {s['steps']} steps of {s['batch']} examples; "
        f"learning rate per method from the grid {s['lrs']} on tuning seed {s['tune_seed']} by avg@8; evaluated "
        f"on {s['eval']} held-out problems (8 samples, temperature 0.6; NAT samples with its positive marker). "
        f"Base: avg@8 {r['base']['avg@8']:.3f}, pass@8 {r['base']['pass@8']:.3f}. Seeds {r['seeds']}.",
        ["method", "lr", "avg@8 per seed", "avg@8 mean", "pass@8 mean", "trained on (pos / neg)"], rows,
        "\n".join(lines) + f"\n\nTuning scores (avg@8): {r['tuning']}. Training time summed over all runs, tuning "
        f"included: {r.get('train_seconds', 0):.0f} s; this invocation {r['seconds']:.0f} s (finished runs are "
        "kept and reused).")


def main() -> None:
    ap = parser(__doc__)
    add_comparison_args(ap, VARIANTS, "1e-4,3e-4,1e-3",
                        "nat:sft,nat:rft_offline,nat:sft_marker,nat:nat_nomarker,nat_nomarker:sft", "negatives_nat")
    ap.add_argument("--prompts", type=int, default=128, help="rollout prompts per seed (8 samples each)")
    ap.add_argument("--difficulty", type=int, default=2)
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds, variants, pairs, lrs = comparison_plan(ap, a, VARIANTS)

    from negtune.evaluation.stats import paired_difference
    work = comparison_work(a, f"d{a.difficulty}-p{a.prompts}-steps{a.steps}-b{a.batch}-eval{a.eval}")
    base = comparison_base(a)
    a.eval_file = problems(work, "eval", a.eval, 4242, a.difficulty)
    base_eval = evaluate(base, work / "eval-base", a.eval_file)
    tuning, chosen, tuned, runs = tuned_runs(variants, lrs, seeds, a.tune_seed,
                                             lambda v, lr, s: train_and_eval(work, base, v, lr, s, a))
    spent = [r["train_s"] for r in tuned]
    table = avg8_summary(runs, chosen)
    for v, rs in runs.items():
        table[v].update(positives=statistics.fmean(r["trained_on"]["positives"] for r in rs),
                        negatives=statistics.fmean(r["trained_on"]["negatives"] for r in rs),
                        train_s=[r["train_s"] for r in rs])
    first = next(iter(runs.values()))
    write_result({"benchmark": "negatives_nat", "seeds": seeds,
                  "settings": {"steps": a.steps, "batch": a.batch, "prompts": a.prompts, "difficulty": a.difficulty,
                               "eval": a.eval, "lrs": lrs, "tune_seed": a.tune_seed},
                  "base": base_eval,
                  "rollout": {k: statistics.fmean(r["rollout"][k] for r in first) for k in first[0]["rollout"]},
                  "tuning": tuning, "methods": table,
                  "differences": {f"{x}:{y}": paired_difference(table[x]["per_seed"], table[y]["per_seed"])
                                  for x, y in pairs},
                  "train_seconds": round(sum(spent) + sum(sum(t["train_s"]) for t in table.values()), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
