"""Step-level credit for negatives against outcome-only NFT at an equal sampling budget.

    python benchmarks/negatives_steps.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 1e-4,3e-4,1e-3,3e-3]
        [--steps 40] [--batch 16] [--prompts 128] [--n 4] [--k 4] [--difficulty 2] [--eval 200] [--work DIR]

The claim (Setlur et al. 2024; BCPG-NSA 2025): crediting each step of a wrong answer by its advantage
Q_i - Q_{i-1}, estimated with Monte-Carlo continuations from its prefixes, penalises the first wrong step and
keeps the correct steps before it; Setlur et al. report that it makes negatives worth eight times as many
positives. The continuations cost samples, so the comparison counts them: the outcome-only methods get as many
extra rollout samples as the step values drew.

Per seed s, from the warm-started tiny arithmetic model (shared with ``negatives_rlvr.py``), on ``--prompts``
difficulty-``--difficulty`` problems (drawn with seed s):

1. a rollout of ``--n`` samples per prompt at temperature 1 (``negtune rollout``);
2. ``negtune step-values`` on it: every prefix of every wrong sample (steps = sentences) continued ``--k`` times
   at temperature 0.7 (Self-Explore's setting) by the same model: C continuation samples;
3. a second rollout of n + round(C / prompts) samples per prompt (the same problems, another sampling seed): the
   equal-budget rollout of the outcome-only methods.

Variants, each trained from the same base for the same steps and batch size:

- ``step``: ``step_pg --credit step`` (Setlur's advantages) on rollout 1 + its step values;
- ``nsa``: ``step_pg --credit nsa`` (outcome advantage x 0.5 on a wrong answer's steps before its pit);
- ``step_dpo``: Self-Explore's step-level DPO on the same data (prompt + prefix before the first pit; a correct
  continuation found from it against the pit step; beta 0.1);
- ``nft``: outcome-only NFT (``nft_offline``) on the equal-budget rollout: the baseline the issue names;
- ``outcome``: ``step_pg --credit outcome`` (the same loss as ``step``, r - r_hat on every token) on the
  equal-budget rollout;
- ``outcome_small``: the same on rollout 1 alone (the step variants' samples without their values: what the
  values add at equal data, budget aside);
- ``step_oracle``: ``step`` with each wrong sample's first pit where its arithmetic really goes wrong (values
  Q_0 before the first step that differs from the problem's solution, 0 from it on): a ceiling that knows what
  the continuations estimate, not a competitor (added after the first results, to tell noisy values from
  credit that does not help here).

Evaluation: ``negtune eval math`` (transformers engine) on ``--eval`` held-out problems (fixed, seed 4242), 8
samples at temperature 0.6 / top-p 0.95: avg@8 and pass@8. Equal tuning: every variant gets the same learning-rate
grid, chosen on a separate tuning seed by avg@8. Also reported: how often the Monte-Carlo first pit is the true
first wrong step (arithmetic steps can be checked against the problem's solution). Resumable under ``--work``.
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

VARIANTS = {  # (registry name, config overrides, which data: "values" = rollout 1 + step values, "budget", "small")
    "step": ("step_pg", {"credit": "step"}, "values"),
    "nsa": ("step_pg", {"credit": "nsa"}, "values"),
    "step_dpo": ("step_dpo", {}, "values"),
    "nft": ("nft_offline", {}, "budget"),
    "outcome": ("step_pg", {"credit": "outcome"}, "budget"),
    "outcome_small": ("step_pg", {"credit": "outcome"}, "small"),
    "step_oracle": ("step_pg", {"credit": "step"}, "oracle"),
}
RUNS = (
    Run("negatives_steps", full=("--seeds", "0,1,2,3,4"),
        quick=("--seeds", "0,1", "--lrs", "3e-4", "--steps", "2", "--prompts", "16", "--n", "4", "--k", "2",
               "--difficulty", "1", "--eval", "8", "--warm-s", "30")),
    # the same on difficulty 1, where the base's pass rate is higher: with k = 4 continuations a prefix worth
    # Q ~ 0.1 reads as 0 two times in three, so at difficulty 2 (rollout pass@1 0.08) the values are mostly noise
    # (decided from the difficulty-2 tuning seed's step values and tuning scores, before any evaluation seed's
    # results)
    Run("negatives_steps_d1", full=("--difficulty", "1", "--seeds", "0,1,2,3,4"),
        quick=("--difficulty", "1", "--seeds", "0,1", "--lrs", "3e-4", "--steps", "2", "--prompts", "16", "--n",
               "4", "--k", "2", "--eval", "8", "--warm-s", "30")),
)


def data(work: Path, base: str, seed: int, a) -> dict:
    """Rollout 1, its step values and the equal-budget rollout of seed ``seed`` (made once) and their figures."""
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify
    from negtune.rollout.steps import StepValuesConfig, estimate_step_values

    root = work / f"seed{seed}"
    train_file = problems(work, f"train-seed{seed}", a.prompts, 1000 + seed, a.difficulty)
    common = dict(model=base, dataset=train_file, temperature=1.0, max_new_tokens=96, engine="hf", verify_workers=0)
    _, small = rollout_and_verify(RolloutConfig(out=str(root / "rollout"), n=a.n, seed=seed, **common),
                                  progress=False)
    values = estimate_step_values(StepValuesConfig(rollout=str(root / "rollout"), model=base, out=str(root / "values"),
                                                   k=a.k, separator="sentence", temperature=0.7, max_new_tokens=96,
                                                   seed=seed, engine="hf", verify_workers=0), progress=False)
    n_budget = a.n + round(values["continuation_samples"] / small["prompts"])
    _, big = rollout_and_verify(RolloutConfig(out=str(root / "rollout-budget"), n=n_budget, seed=seed + 50_000,
                                              **common), progress=False)
    oracle = oracle_values(root / "values", train_file, root / "oracle.parquet")
    return {"paths": {"values": str(root / "values"), "budget": str(root / "rollout-budget"),
                      "small": str(root / "rollout"), "oracle": oracle},
            "n_budget": n_budget, "small_pass@1": small["pass@1"], "budget_pass@1": big["pass@1"],
            "samples_small": small["samples"], "continuations": values["continuation_samples"],
            "samples_budget": big["samples"], "tokens_small": small["generated_tokens"],
            "tokens_continuations": values["continuation_tokens"], "tokens_budget": big["generated_tokens"],
            "pits": pit_check(root / "values", train_file), "negative_steps_before_pit":
                values["negative_steps_before_pit"]}


def true_pits(values_dir: Path, train_file: str) -> list[tuple[dict, int | None]]:
    """Each wrong sample with step values and its true first wrong step: the first step that differs from the
    problem's own solution (the tiny model writes the solutions' format), None when there is none."""
    from negtune.data.io import read_rows
    from negtune.data.schema import read_labeled
    from negtune.losses.steps import step_ends

    gold = {r["id"]: r["solution"] for r in read_rows(Path(train_file))}
    cut = lambda t: [t[a:b].strip() for a, b in zip([0, *step_ends(t, "sentence")], step_ends(t, "sentence"))]  # noqa: E731
    out = []
    for r in read_labeled(values_dir):
        if r["label"] or r["step_values"] is None:
            continue
        mine, right = cut(r["completion"]), cut(gold[json.loads(r["meta"])["id"]])
        out.append((r, next((i for i, s in enumerate(mine) if i >= len(right) or s != right[i]), None)))
    return out


def oracle_values(values_dir: Path, train_file: str, out: Path) -> str:
    """The annotated rollout with each wrong sample's values replaced by the oracle's: Q_0 up to its true first
    wrong step, 0 from there on (written once)."""
    import datasets

    from negtune.data.schema import read_labeled

    if not out.exists():
        true = {(r["prompt_id"], r["sample_idx"]): pit for r, pit in true_pits(values_dir, train_file)}
        rows = read_labeled(values_dir)
        for r in rows:
            pit = true.get((r["prompt_id"], r["sample_idx"]))
            if pit is not None:
                r["step_values"] = [r["step_q0"] if i < pit else 0.0 for i in range(len(r["step_values"]))]
        datasets.Dataset.from_list(rows).to_parquet(str(out))
    return str(out)


def pit_check(values_dir: Path, train_file: str) -> dict:
    """The Monte-Carlo first pit of each wrong sample against its true first wrong step."""
    from negtune.losses.steps import first_pit

    counts = {"same": 0, "earlier": 0, "later": 0, "no_true_error": 0}
    for r, true in true_pits(values_dir, train_file):
        pit = first_pit(list(r["step_values"]), list(r["step_samples"]))
        if true is None:
            counts["no_true_error"] += 1
        else:
            counts["same" if pit == true else "earlier" if pit < true else "later"] += 1
    return counts


def train_and_eval(work: Path, base: str, variant: str, lr: float, seed: int, a) -> dict:
    from transformers import AutoTokenizer

    from negtune import methods

    run = work / f"seed{seed}" / f"{variant}-lr{lr:g}"
    done = run / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    d = data(work, base, seed, a)
    t0 = time.monotonic()
    model_dir = run / "model"
    name, overrides, which = VARIANTS[variant]
    spec = methods.get(name)
    args = spec.make_config(output_dir=str(model_dir), max_steps=a.steps, per_device_train_batch_size=a.batch,
                            learning_rate=lr, seed=seed, use_cpu=True, save_strategy="no", report_to="none",
                            disable_tqdm=True, logging_steps=10_000, max_length=512, **overrides)
    trainer = spec.trainer_class(base, args, train_dataset=d["paths"][which],
                                 processing_class=AutoTokenizer.from_pretrained(base))
    trainer.train()
    trainer.save_model()
    train_s = time.monotonic() - t0
    budget = d["samples_small"] + d["continuations"] if which in ("values", "oracle") else \
        d["samples_budget"] if which == "budget" else d["samples_small"]
    result = {"variant": variant, "lr": lr, "seed": seed, "train_s": round(train_s, 1),
              "trained_rows": len(trainer.train_dataset), "samples_drawn": budget,
              "data": {k: v for k, v in d.items() if k != "paths"},
              "eval": evaluate(str(model_dir), run / "eval", a.eval_file, engine="hf")}
    done.write_text(json.dumps(result, indent=1))
    return result


def results_section(r: dict) -> str:
    s, d = r["settings"], r["data"]
    rows = [[m, f"{t['lr']:g}", ", ".join(f"{v:.3f}" for v in t["per_seed"]), f"{t['mean']:.3f}",
             f"{t['mean_pass8']:.3f}", f"{t['samples_drawn']:.0f}", f"{t['trained_rows']:.0f}"]
            for m, t in r["methods"].items()]
    p = d["pits"]
    wrong = p["same"] + p["earlier"] + p["later"]
    return section(
        f"Step-level negatives vs outcome-only NFT at an equal sampling budget, arithmetic difficulty "
        f"{s['difficulty']} (`benchmarks/negatives_steps.py`)",
        f"Per seed, from the tiny arithmetic model (warm-started on difficulty 2): {s['prompts']} "
        f"difficulty-{s['difficulty']} problems x {s['n']} samples at temperature 1 (pass@1 {d['small_pass@1']:.3f}, "
        f"means over seeds). `negtune step-values` continued every prefix of every wrong sample {s['k']} times "
        f"(temperature 0.7): {d['continuations']:.0f} continuation samples ({d['tokens_continuations']:.0f} "
        f"tokens, against {d['tokens_small']:.0f} for the rollout). The outcome-only variants instead get a "
        f"rollout of {d['n_budget']:.1f} samples per prompt ({d['samples_budget']:.0f} samples, "
        f"{d['tokens_budget']:.0f} tokens; pass@1 {d['budget_pass@1']:.3f}). Every variant trains from the same "
        f"base for {s['steps']} steps of {s['batch']} examples; learning rate per variant from the grid "
        f"{s['lrs']} on tuning seed {s['tune_seed']} by avg@8; evaluated on {s['eval']} held-out problems (8 "
        f"samples, temperature 0.6). Base: avg@8 {r['base']['avg@8']:.3f}, pass@8 {r['base']['pass@8']:.3f}. "
        f"Seeds {r['seeds']}.\n\nThe Monte-Carlo first pit against the true first wrong step of each wrong sample "
        f"(summed over seeds): the same step for {p['same']:.0f} of {wrong:.0f} ({p['same'] / max(wrong, 1):.0%}), "
        f"earlier for {p['earlier']:.0f}, later for {p['later']:.0f} ({p['no_true_error']:.0f} wrong samples copy "
        f"the solution's steps and end wrong elsewhere). {d['negative_steps_before_pit']:.0%} of the wrong "
        "samples' steps come before their Monte-Carlo pit: the steps the values call correct, which outcome "
        "credit pushes down with the rest.",
        ["variant", "lr", "avg@8 per seed", "avg@8 mean", "pass@8 mean", "samples drawn", "rows trained (step_dpo: pairs)"], rows,
        "\n".join(difference_bullets(r)) + f"\n\nTuning scores (avg@8): {r['tuning']}. Training time summed over "
        f"all runs, tuning included: {r.get('train_seconds', 0):.0f} s; this invocation {r['seconds']:.0f} s "
        "(finished runs are kept and reused).")


def main() -> None:
    ap = parser(__doc__)
    add_comparison_args(ap, VARIANTS, "1e-4,3e-4,1e-3,3e-3",
                        "step:nft,nsa:nft,step_dpo:nft,step:outcome,step:outcome_small,nsa:outcome_small,"
                        "step_oracle:step,step_oracle:nft",
                        "negatives_steps")
    ap.add_argument("--prompts", type=int, default=128, help="rollout prompts per seed")
    ap.add_argument("--n", type=int, default=4, help="samples per prompt of the step variants' rollout")
    ap.add_argument("--k", type=int, default=4, help="continuations per prefix (Self-Explore: 4)")
    ap.add_argument("--difficulty", type=int, default=2)
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds, variants, pairs, lrs = comparison_plan(ap, a, VARIANTS)

    from negtune.evaluation.stats import paired_difference
    work = comparison_work(a, f"d{a.difficulty}-p{a.prompts}-n{a.n}-k{a.k}-steps{a.steps}-b{a.batch}-eval{a.eval}")
    base = comparison_base(a)
    a.eval_file = problems(work, "eval", a.eval, 4242, a.difficulty)
    base_eval = evaluate(base, work / "eval-base", a.eval_file, engine="hf")
    tuning, chosen, tuned, runs = tuned_runs(variants, lrs, seeds, a.tune_seed,
                                             lambda v, lr, s: train_and_eval(work, base, v, lr, s, a))
    table = avg8_summary(runs, chosen)
    for v, rs in runs.items():
        table[v].update(samples_drawn=statistics.fmean(r["samples_drawn"] for r in rs),
                        trained_rows=statistics.fmean(r["trained_rows"] for r in rs),
                        train_s=[r["train_s"] for r in rs])
    first = [r["data"] for r in next(iter(runs.values()))]
    summary = {k: statistics.fmean(x[k] for x in first) for k in first[0] if k != "pits"}
    summary["pits"] = {k: sum(x["pits"][k] for x in first) for k in first[0]["pits"]}
    write_result({"benchmark": "negatives_steps", "seeds": seeds,
                  "settings": {"steps": a.steps, "batch": a.batch, "prompts": a.prompts, "n": a.n, "k": a.k,
                               "difficulty": a.difficulty, "eval": a.eval, "lrs": lrs, "tune_seed": a.tune_seed},
                  "base": base_eval, "data": summary, "tuning": tuning, "methods": table,
                  "differences": {f"{x}:{y}": paired_difference(table[x]["per_seed"], table[y]["per_seed"])
                                  for x, y in pairs},
                  "train_seconds": round(sum(r["train_s"] for r in tuned)
                                         + sum(sum(t["train_s"]) for t in table.values()), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
