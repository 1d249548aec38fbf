"""The trap task: negatives against the positives alone when the base model prefers one systematic wrong answer.

    python benchmarks/negatives_trap.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 1e-5,3e-5,1e-4,3e-4,1e-3]
        [--steps 64] [--batch 16] [--prompts 128] [--eval 200] [--trap 0.8] [--trap-steps 300] [--work DIR]
        [--problem-seed 1000] [--eval-seed 4242]

The claim this tests (issue 15; QCRD, Wang et al. 2024; "Don't Say That!", Welleck et al. 2019): when the model
has a misconception, its wrong rationales carry information its right ones do not (what not to say), so
training on both beats training on the right ones alone.

The trap: the tiny arithmetic model (warm-started on difficulty 2, shared with ``negatives_rlvr.py``) is
fine-tuned ``--trap-steps`` more steps (lr 1e-3, batch 32) on 4000 difficulty-2 problems of which every one
with a "triples" step is solved by *doubling* with probability ``--trap`` (``make_arith(trap=...)``): the
model then prefers the trap answer on such problems, and still samples the right one now and then.

Per seed s: that model samples 8 rationales at temperature 1 for each of ``--prompts`` trap problems
(difficulty 2, each with a "triples" step whose doubling changes the answer; ``make_trap_problems`` with seed
``--problem-seed`` + s); ``negtune
rollout`` labels them. Every variant trains the full model on that rollout from the trap model, ``--steps``
steps of ``--batch`` rows:

- ``sft``: the right rationales alone, next-token NLL (the unlikelihood trainer with alpha 0);
- ``unlikelihood``: the same plus token-level unlikelihood on the wrong ones (alpha 1, Welleck et al.);
- ``unlikelihood_a0.1``: the same at alpha 0.1 (an ablation added after the first results: does a smaller push
  on the wrong rationales keep the trap's removal without breaking the arithmetic they share with right ones?);
- ``unlikelihood_mixed``: alpha 1 on the prompts with both a right and a wrong sample only, the ones NFT keeps (a
  second ablation after the first results: do the negatives of prompts with no right sample do the damage?);
- ``qcrd_pos``: QCRD's objective without its negatives (gold-answer NLL + right rationales; no negative
  term, discriminator or self-adversarial samples): the positives-only distillation of the same trainer;
- ``qcrd``: QCRD as negtune implements it (registry defaults: the negative hinge at delta 3, the online
  discriminator, self-adversarial negatives from a 5-snapshot-old student);
- ``qcrd_noans``: ``qcrd`` without its gold-answer NLL term (alpha_answer 0; an ablation added after the QCRD
  confirmatory run: that term's target, the answer alone, teaches answering with no worked line);
- ``nft_offline`` / ``rft_offline``: NFT and rejection-sampling fine-tuning on the same rollout (registry
  defaults; NFT drops the groups whose samples are all right or all wrong, RFT trains on the right ones).

A rollout with no right rationale (possible at smoke size) leaves the variants with no rows at the trap model.

Evaluation: ``negtune eval math`` on ``--eval`` held-out trap problems (fixed, seed ``--eval-seed``; another
value re-evaluates the runs already trained under ``--work`` instead of training them again), 8 samples at
temperature 0.6 / top-p 0.95: avg@8, pass@8 and where the samples end (``answer_shares``: the trap answer,
wrong arithmetic in a worked line, an answer with no worked line, no answer). Equal tuning: every variant gets
the same learning-rate grid, chosen on a separate tuning seed by avg@8. Resumable under ``--work``.
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
    finished_run,
    parser,
    section,
    tuned_runs,
    write_result,
)
from negatives_rlvr import evaluate

N = 8
PROBLEM_SEED, EVAL_SEED = 1000, 4242  # the first experiment's problem sets
VARIANTS = {  # method in the registry, config overrides, the rows it trains on (all, positives, mixed)
    "sft": ("unlikelihood", {"alpha": 0.0}, "positives"),
    "unlikelihood": ("unlikelihood", {"alpha": 1.0}, "all"),
    # ablations chosen after the first results (a second look): the negatives' weight cut to about NFT's; the
    # negatives of prompts with a right sample only (the prompts NFT keeps)
    "unlikelihood_a0.1": ("unlikelihood", {"alpha": 0.1}, "all"),
    "unlikelihood_mixed": ("unlikelihood", {"alpha": 1.0}, "mixed"),
    "qcrd_pos": ("contrastive", {"alpha_neg": 0.0, "use_discriminator": False, "self_adversarial": False},
                 "positives"),
    "qcrd": ("contrastive", {}, "all"),
    # an ablation chosen after the QCRD confirmatory run: QCRD without its gold-answer NLL term (whose target,
    # the answer alone, teaches answering with no worked line), to test the negatives against plain SFT
    "qcrd_noans": ("contrastive", {"alpha_answer": 0.0}, "all"),
    "nft_offline": ("nft_offline", {}, "all"),
    "rft_offline": ("rft_offline", {}, "all"),
}
DESCRIPTIONS = {
    "sft": "`sft` the right rationales (NLL)",
    "unlikelihood": "`unlikelihood` plus token-level unlikelihood on the wrong ones",
    "unlikelihood_a0.1": "`unlikelihood_a0.1` their weight 0.1 (an ablation added after the first results)",
    "unlikelihood_mixed": "`unlikelihood_mixed` only the prompts with a right and a wrong sample (an ablation added "
                          "after the first results)",
    "qcrd_pos": "`qcrd_pos` QCRD's objective on the right rationales and gold answers alone",
    "qcrd": "`qcrd` QCRD with its negatives, discriminator and self-adversarial samples",
    "qcrd_noans": "`qcrd_noans` QCRD without its gold-answer term (alpha_answer 0; an ablation added after the "
                  "QCRD confirmatory run)",
    "nft_offline": "`nft_offline` NFT on the same rollout",
    "rft_offline": "`rft_offline` rejection-sampling fine-tuning on the same rollout",
}
_SMOKE = ("--lrs", "1e-3", "--steps", "2", "--prompts", "8", "--eval", "8", "--warm-s", "30", "--trap-steps", "5")


def _fresh_draws(name: str, methods: str, compare: str, seeds: str, problem_seed: int, eval_seed: int) -> Run:
    """``methods`` at the learning rate the first run's grid chose for all of them (1e-4), rollout and evaluation
    problems drawn afresh."""
    which = ("--methods", methods, "--compare", compare)
    draws = ("--problem-seed", str(problem_seed), "--eval-seed", str(eval_seed))
    return Run(name, full=(*which, "--lrs", "1e-4", "--seeds", seeds, *draws),
               quick=(*which, "--seeds", "1", *_SMOKE, *draws))


FIFTEEN = ",".join(map(str, range(1, 16)))
FIRST = ",".join(v for v in VARIANTS if v != "qcrd_noans")  # the first run's eight variants
RUNS = (
    Run("negatives_trap", full=("--methods", FIRST, "--seeds", "0,1,2,3,4"), quick=("--seeds", "0,1", *_SMOKE)),
    # the NFT - RFT result replicated on fresh problems; the same draws as `negtune demo`'s closing comparison
    _fresh_draws("negatives_trap_replication", "nft_offline,rft_offline", "nft_offline:rft_offline", "1,2,3,4,5",
                 2000, 3000),
    # a third test, stated before it ran (the replication's pooled result was a second look): 15 fresh seeds,
    # fresh rollout and evaluation problems; confirmed if NFT - RFT's 95% interval excludes 0
    _fresh_draws("negatives_trap_confirm", "nft_offline,rft_offline", "nft_offline:rft_offline", FIFTEEN, 4000, 5000),
    # the contrastive target (QCRD > its positives-only objective) on the confirmatory draws, stated before it ran
    # (2026-12-01): the first run's 5 seeds gave +0.017 [-0.082, +0.115], per-seed spread 0.08; 15 seeds, the
    # rollouts above reused; met if QCRD - QCRD without negatives' 95% interval excludes 0 with QCRD ahead. SFT on
    # the right rationales, the plain positives-only distillation, beside them
    _fresh_draws("negatives_trap_qcrd_confirm", "qcrd,qcrd_pos,sft", "qcrd:qcrd_pos,qcrd:sft", FIFTEEN, 4000, 5000),
    # contrastive against plain SFT, stated before it ran (2026-12-01, after the run above: QCRD - SFT -0.070
    # [-0.093, -0.046], and QCRD alone left answers with no worked line, 0.007, and no answer, 0.021): QCRD without
    # its gold-answer term; met if qcrd_noans - sft's 95% interval excludes 0 with qcrd_noans ahead. The same 15
    # seeds and draws; each variant's learning rate from the first run's whole grid on the tuning seed (the
    # ablation has no earlier choice); qcrd beside them to read what the answer term costs
    Run("negatives_trap_qcrd_noans_confirm",
        full=("--methods", "qcrd_noans,qcrd,sft", "--compare", "qcrd_noans:sft,qcrd_noans:qcrd", "--seeds", FIFTEEN,
              "--problem-seed", "4000", "--eval-seed", "5000"),
        quick=("--methods", "qcrd_noans,sft", "--compare", "qcrd_noans:sft", "--seeds", "1", *_SMOKE,
               "--problem-seed", "4000", "--eval-seed", "5000")),
)


def trap_model(root: Path, start: str, trap: float, steps: int) -> str:
    """``start`` fine-tuned ``steps`` steps on arithmetic solved with the misconception at rate ``trap``."""
    from negtune.models.tiny import create_trap_model

    path = root / f"trap{trap:g}-{steps}steps"
    if not (path / "config.json").exists():
        create_trap_model(path, start, trap, steps)
    return str(path)


def score(model: str, out: Path, eval_file: str) -> dict:
    from negtune.data.tasks import eval_answer_shares

    return {**evaluate(model, out, eval_file, engine="hf"), **eval_answer_shares(out / "samples.jsonl", eval_file)}


def rollout(work: Path, base: str, seed: int, a) -> tuple[str, dict]:
    """The labeled rollout of seed ``seed`` (made once; every variant trains on it)."""
    from negtune.data.io import read_rows
    from negtune.data.schema import read_labeled
    from negtune.data.tasks import write_trap_problems
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify

    out = work / f"seed{seed}" / "rollout"
    train_file = write_trap_problems(work / f"train-seed{seed}.jsonl", a.prompts, a.problem_seed + seed)
    if (out / "stats.json").exists():  # finished: read it without taking the folder's lock (parallel runs)
        stats = json.loads((out / "stats.json").read_text())
    else:
        _, stats = rollout_and_verify(RolloutConfig(model=base, dataset=train_file, out=str(out), n=N, temperature=1.0,
                                                    max_new_tokens=96, seed=seed, engine="hf", verify_workers=0),
                                      progress=False)
    traps = {r["id"]: r["trap_answer"] for r in read_rows(train_file)}
    rows = read_labeled(out)
    trapped = sum(str(r["extracted"]).strip() == traps[json.loads(r["meta"])["id"]] for r in rows if not r["label"])
    return str(out), {**{k: stats[k] for k in ("pass@1", "positives", "negatives")}, "trap_negatives": trapped}


def train_and_eval(work: Path, base: str, variant: str, lr: float, seed: int, a) -> dict:
    from transformers import AutoTokenizer

    from negtune import methods
    from negtune.data.schema import read_labeled

    run = work / f"seed{seed}" / f"{variant}-lr{lr:g}"
    kept_model = run / "model" if (run / "model" / "config.json").exists() else base  # (no rows: the trap model)
    kept = finished_run(run, a.eval_tag, lambda out: score(str(kept_model), out, a.eval_file))
    if kept is not None:
        return kept
    data, rollout_stats = rollout(work, base, seed, a)
    method, overrides, keep = VARIANTS[variant]
    rows = read_labeled(data)
    if keep == "positives":
        rows = [r for r in rows if r["label"]]
    elif keep == "mixed":  # the prompts with a right and a wrong sample
        rows = [r for r in rows if 0.0 < r["group_pass_rate"] < 1.0]
    spec = methods.get(method)
    model, t0 = str(run / "model"), time.monotonic()
    if rows:
        args = spec.make_config(output_dir=model, max_steps=a.steps, per_device_train_batch_size=a.batch,
                                learning_rate=lr, seed=seed, use_cpu=True, save_strategy="no", report_to="none",
                                disable_tqdm=True, logging_steps=10_000, **overrides)
        trainer = spec.trainer_class(base, args, train_dataset=rows if spec.family == "labeled" else data,
                                     processing_class=AutoTokenizer.from_pretrained(base))
        trainer.train()
        trainer.save_model()
    else:  # nothing to train on (no right rationale in this rollout): the variant is the trap model as it is
        model = base
    result = {"variant": variant, "lr": lr, "seed": seed, "train_s": round(time.monotonic() - t0, 1),
              "rollout": rollout_stats, "trained_on": len(rows) if spec.family == "labeled" else None,
              "eval": score(model, run / f"eval{a.eval_tag}", a.eval_file)}
    (run / f"run{a.eval_tag}.json").write_text(json.dumps(result, indent=1))
    return result


def results_section(r: dict) -> str:
    from negtune.evaluation.stats import format_difference

    s = r["settings"]
    trap_bullets = [f"- {k.replace(':', ' - ')}, trap rate: {format_difference(d)}" for k, d in r["trap_differences"].items()]
    rows = [[v, f"{t['lr']:g}", ", ".join(f"{x:.3f}" for x in t["per_seed"]), f"{t['mean']:.3f}",
             f"{t['mean_pass8']:.3f}", f"{t['mean_trap']:.3f}", f"{t['mean_arith_error_rate']:.3f}",
             f"{t['mean_answer_only_rate']:.3f}", f"{t['mean_no_answer_rate']:.3f}"]
            for v, t in r["methods"].items()]
    ro = r["rollout"]
    seeds = f"{len(r['seeds'])} seed{'s' * (len(r['seeds']) != 1)}"
    problem_seed = s.get("problem_seed", PROBLEM_SEED)  # (results from before the flag: the first run's)
    pairs = ", ".join(k.replace(":", " vs ") for k in r["differences"])
    kind = {PROBLEM_SEED: "", 2000: ", a replication on fresh problems",
            4000: f", a confirmatory run on fresh problems ({seeds}): {pairs}"}.get(problem_seed, f", problem seed {problem_seed}")
    return section(
        f"Negatives on a trap task: a misconception the base prefers, avg@8{kind} (`benchmarks/negatives_trap.py`)",
        f"The tiny arithmetic model fine-tuned {s['trap_steps']} steps on arithmetic whose \"triples\" steps are "
        f"worked out by doubling {s['trap']:.0%} of the time. Per seed, one labeled rollout: {s['prompts']} trap "
        f"problems x {N} rationales at temperature 1 (mean over seeds: pass@1 {ro['pass@1']:.3f}, "
        f"{ro['positives']:.0f} right, {ro['negatives']:.0f} wrong, {ro['trap_negatives']:.0f} of them the trap "
        f"answer). Every variant trains the full model on it, {s['steps']} steps of {s['batch']} rows: "
        + "; ".join(DESCRIPTIONS[v] for v in r["methods"]) + ". "
        f"Rollout problems of seed s drawn with seed {problem_seed} + s. Learning rate per variant from {s['lrs']} on tuning seed "
        f"{s['tune_seed']} by avg@8; evaluated on {s['eval']} held-out trap problems (8 samples, temperature "
        f"0.6; problem seed {s.get('eval_seed', EVAL_SEED)}). Trap model: avg@8 {r['base']['avg@8']:.3f}, pass@8 {r['base']['pass@8']:.3f}, trap rate "
        f"{r['base']['trap_rate']:.3f}, wrong arithmetic {r['base']['arith_error_rate']:.3f} (before the trap "
        f"fine-tune: avg@8 {r['start']['avg@8']:.3f}, trap rate {r['start']['trap_rate']:.3f}, wrong arithmetic "
        f"{r['start']['arith_error_rate']:.3f}). Shares of all samples: the trap answer; a worked line with wrong "
        "arithmetic (\"4 + 9 = 16.\"); a final answer with no worked line (\"answer only\"); no final answer. "
        f"Seeds {r['seeds']}.",
        ["variant", "lr", "avg@8 per seed", "avg@8 mean", "pass@8 mean", "trap answer", "wrong arithmetic",
         "answer only", "no answer"], rows,
        "\n".join(difference_bullets(r) + trap_bullets) + f"\n\nTuning scores (avg@8): {r['tuning']}. Training time summed over "
        f"all runs, tuning included: {r['train_seconds']:.0f} s; this invocation {r['seconds']:.0f} s (finished "
        "runs are kept and reused).")


def main() -> None:
    ap = parser(__doc__)
    add_comparison_args(ap, VARIANTS, "1e-5,3e-5,1e-4,3e-4,1e-3",
                        "qcrd:qcrd_pos,qcrd:sft,unlikelihood:sft,unlikelihood_a0.1:sft,unlikelihood_mixed:sft,"
                        "nft_offline:rft_offline",
                        "negatives_trap")
    ap.set_defaults(steps=64)
    ap.add_argument("--prompts", type=int, default=128, help="rollout prompts per seed (8 samples each)")
    ap.add_argument("--trap", type=float, default=0.8, help="share of the trap fine-tune's triples steps doubled")
    ap.add_argument("--trap-steps", type=int, default=300, help="steps of the trap fine-tune")
    ap.add_argument("--problem-seed", type=int, default=PROBLEM_SEED,
                    help="seed s's rollout problems are drawn with seed PROBLEM_SEED + s (a replication: another value)")
    ap.add_argument("--eval-seed", type=int, default=EVAL_SEED, help="seed of the held-out trap problems (another "
                    "value evaluates the runs already trained under --work on another set, without retraining)")
    a = ap.parse_args()
    a.eval_tag = "" if a.eval_seed == EVAL_SEED else f"-es{a.eval_seed}"
    t0 = time.monotonic()
    seeds, variants, pairs, lrs = comparison_plan(ap, a, VARIANTS)

    from negtune.data.tasks import eval_answer_shares, write_trap_problems
    from negtune.evaluation.stats import paired_difference

    work = comparison_work(a, f"trap{a.trap:g}-{a.trap_steps}-p{a.prompts}-steps{a.steps}-b{a.batch}-eval{a.eval}"
                           + ("" if a.problem_seed == PROBLEM_SEED else f"-ps{a.problem_seed}"))
    start = comparison_base(a)
    base = trap_model(work, start, a.trap, a.trap_steps)
    a.eval_file = write_trap_problems(work / f"eval{a.eval_tag}.jsonl", a.eval, a.eval_seed)
    start_eval = score(start, work / f"eval-start{a.eval_tag}", a.eval_file)
    base_eval = score(base, work / f"eval-base{a.eval_tag}", a.eval_file)
    tuning, chosen, tuned, runs = tuned_runs(variants, lrs, seeds, a.tune_seed,
                                             lambda v, lr, s: train_and_eval(work, base, v, lr, s, a))
    table = avg8_summary(runs, chosen)
    for v, rs in runs.items():  # (read from the kept samples: runs made before a share was tracked have it too)
        shares = [eval_answer_shares(work / f"seed{r['seed']}" / f"{v}-lr{r['lr']:g}" / f"eval{a.eval_tag}" /
                                     "samples.jsonl", a.eval_file) for r in rs]
        table[v]["trap_per_seed"] = [x["trap_rate"] for x in shares]
        table[v]["mean_trap"] = statistics.fmean(table[v]["trap_per_seed"])
        for k in ("no_answer_rate", "answer_only_rate", "arith_error_rate"):
            table[v][f"mean_{k}"] = statistics.fmean(x[k] for x in shares)
    first = next(iter(runs.values()))
    everything = tuned + [r for rs in runs.values() for r in rs]
    write_result({"benchmark": "negatives_trap", "seeds": seeds,
                  "settings": {"trap": a.trap, "trap_steps": a.trap_steps, "steps": a.steps, "batch": a.batch,
                               "prompts": a.prompts, "eval": a.eval, "lrs": lrs, "tune_seed": a.tune_seed,
                               "problem_seed": a.problem_seed, "eval_seed": a.eval_seed},
                  "start": start_eval, "base": base_eval,
                  "rollout": {k: statistics.fmean(r["rollout"][k] for r in first) for k in first[0]["rollout"]},
                  "tuning": tuning, "methods": table,
                  "differences": {f"{x}:{y}": paired_difference(table[x]["per_seed"], table[y]["per_seed"])
                                  for x, y in pairs},
                  "trap_differences": {f"{x}:{y}": paired_difference(table[x]["trap_per_seed"],
                                                                     table[y]["trap_per_seed"]) for x, y in pairs},
                  "train_seconds": round(sum(r["train_s"] for r in everything), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
