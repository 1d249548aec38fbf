"""Does NPO keep model utility where gradient ascent loses it? NPO vs GA, seeds and CIs, on the synthetic TOFU
and on SmolLM2-TOFU (``--base tofu-subset``, run ``negatives_unlearning_smollm2``).
The same harness compares LoReUn's reweighting with the plain methods (run ``loreun_unlearning``).

    python benchmarks/negatives_unlearning.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 5e-4,1e-3,2e-3,5e-3]
        [--steps 40] [--eval-every 5] [--facts-steps 500] [--methods ga,npo] [--compare npo:ga]
        [--work DIR] [--plot PNG] [--base synthetic|tofu-subset] [--full-eval all|matched]

``--methods``: negtune unlearning methods, or a method with a plug-in (``npo+loreun``: ``--reweight loreun``);
``--compare A:B,...``: the paired differences A - B reported. ``--base tofu-subset`` runs the same experiment on
SmolLM2-TOFU (below).

The claim (NPO paper, Figure 1 and its TOFU curves): gradient ascent's loss is unbounded, so by the time the
forget set is forgotten the model's utility has collapsed; NPO's bounded loss slows the divergence and keeps
utility at equal forgetting.

Set-up, per seed s (everything seeded by s): the synthetic TOFU (20 authors, ``write_tofu_synthetic``), a tiny
model fine-tuned on all of it (the model to unlearn) and one fine-tuned without forget10 (the retain model:
the reference of forget quality, and the target of forgetting). Each method then unlearns forget10 (LoRA r16,
batch 4, ``--steps`` steps, checkpoints every ``--eval-every``), and every checkpoint is scored by
``negtune eval tofu``: forget-set probability, forget quality, model utility.

Matched forgetting: each run's model utility is read where its forget-set probability first falls to the
retain model's (the model that never saw forget10: "forgotten as much as never learned"), interpolated between
checkpoints; a run that never gets there in ``--steps`` counts as not reaching it. The comparison is the
paired (same seed, same base models) difference NPO - GA with a 95% Student-t interval.

SmolLM2-TOFU (``--base tofu-subset``): the model of ``open_unlearning_tofu.py``, SmolLM2-135M-Instruct fine-tuned
in full on a TOFU subset (TOFU's own rows: one forget01 author, four retain authors) and its retain model, built
once under ``--base-work`` (shared with that benchmark; its flags ``--model``, ``--forget-authors``, ... apply) and
unlearned by every seed (the seeds change the unlearning run: data order, LoRA initialisation). The forget set is
that author's 20 questions; the evaluation generates ``--max-new-tokens`` tokens for ROUGE-L (64 in the recorded
run: the longest answer in its evaluation sets is 62 tokens). One TOFU evaluation of SmolLM2 takes about two
minutes on 2 cores, so that run uses ``--full-eval matched``: every checkpoint's forget-set probability (the
evaluation's own scorer, forget answers only), and the full evaluation at the two checkpoints matched utility is
interpolated between.

Equal tuning: every method gets the same learning-rate grid, chosen on a separate tuning seed by that same
score (utility at matched forgetting); the evaluation seeds never take part in the choice. Method settings are
negtune's defaults (NPO beta 0.1). Resumable: every base model, run and evaluation is kept under ``--work`` and
skipped when present.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from common import HERE, Run, parser, section, write_result
from open_unlearning_tofu import add_model_args, negtune_base

METRICS = ("forget_prob", "forget_quality", "model_utility")
# also read at matched forgetting (secondary): what unlearning costs on the retain authors themselves, apart from
# model utility's harmonic mean, where one near-zero component (e.g. ROUGE of short real-author names) decides it
RETAIN = ("retain_prob", "retain_rouge")
_QUICK = ("--seeds", "0,1", "--tune-seed", "100", "--lrs", "2e-3", "--steps", "4", "--eval-every", "2",
          "--facts-steps", "30")
RUNS = (Run("negatives_unlearning", full=("--seeds", "0,1,2,3,4,5,6,7,8,9", "--plot", str(HERE / "negatives_unlearning.png")),
            quick=_QUICK),
        Run("loreun_unlearning", full=("--seeds", "0,1,2,3,4,5,6,7,8,9", "--methods",
                                       "ga,ga+loreun,ga+loreun_static,npo,npo+loreun,npo+loreun_static", "--compare",
                                       "ga+loreun:ga,npo+loreun:npo,ga+loreun_static:ga,npo+loreun_static:npo",
                                       "--plot", str(HERE / "loreun_unlearning.png")),
            quick=(*_QUICK, "--methods", "npo,npo+loreun", "--compare", "npo+loreun:npo")),
        Run("negatives_unlearning_smollm2", full=("--base", "tofu-subset", "--seeds", "0,1,2,3,4", "--tune-seed", "100",
                                                  "--lrs", "3e-4,5e-4,1e-3", "--steps", "30", "--eval-every", "3",
                                                  "--max-new-tokens", "64", "--full-eval", "matched",
                                                  "--plot", str(HERE / "negatives_unlearning_smollm2.png")),
            quick=("--base", "tofu-subset", "--seeds", "0", "--tune-seed", "100", "--lrs", "1e-3", "--steps", "4",
                   "--eval-every", "2", "--full-eval", "matched", "--retain-authors", "1", "--general", "4",
                   "--retain-eval", "4", "--finetune-epochs", "1", "--max-new-tokens", "8")))
# LoReUn at its defaults (tau 1): dynamic (the current model's loss) and static (the model before unlearning)
PLUGINS = {"loreun": ("--reweight", "loreun"),
           "loreun_static": ("--reweight", "loreun", "--reweight_loss", "reference")}
PLUGIN_LABELS = {"loreun": "LoReUn", "loreun_static": "LoReUn-static"}


def label(variant: str) -> str:
    """``npo+loreun`` -> ``NPO+LoReUn`` (tables and the figure)."""
    method, *plugins = variant.split("+")
    return "+".join([method.upper(), *(PLUGIN_LABELS.get(p, p) for p in plugins)])


def variant_args(variant: str) -> tuple[str, list[str]]:
    """``npo+loreun`` -> ("npo", ["--reweight", "loreun"]): the method and the flags of its plug-ins."""
    method, *plugins = variant.split("+")
    unknown = [p for p in plugins if p not in PLUGINS]
    if unknown:
        raise SystemExit(f"--methods {variant}: unknown plug-in {unknown[0]!r}; known: {', '.join(PLUGINS)}")
    return method, [flag for p in plugins for flag in PLUGINS[p]]


def base_models(work: Path, seed: int, facts_steps: int) -> dict:
    """The seed's synthetic TOFU, model to unlearn and retain model, with their evaluations."""
    from negtune.data.tasks.facts import write_tofu_synthetic
    from negtune.models.tiny import create_tiny_model

    root = work / f"seed{seed}"
    tofu, full, retain = root / "tofu", root / "full", root / "retain"
    if not (tofu / "forget10.json").exists():
        write_tofu_synthetic(tofu, seed=seed)
    for path, without in ((full, None), (retain, "forget10")):
        if not (path / "config.json").exists():
            create_tiny_model(path, task="facts", seed=seed, facts_steps=facts_steps, facts_without=without)
    base = {"root": root, "tofu": tofu, "full": full, "forget": "forget10", "eval": {}}
    base["retain"] = evaluate(retain, root / "eval-retain", base, None)
    base["retain_log"] = str(root / "eval-retain" / "eval_log.json")
    return {**base, "start": evaluate(full, root / "eval-full", base, base["retain_log"])}


def subset_base(a, work: Path):
    """SmolLM2-TOFU, its retain model and their evaluations, built (or read back) once and shared by every seed;
    returns ``for_seed(seed)``, the base with the seed's own folder for its runs."""
    shared = negtune_base(a, Path(a.base_work))
    base = {"tofu": shared["root"], "full": shared["model"]["negtune"], "forget": "forget01",
            "eval": {"forget_split": "forget01", "max_new_tokens": a.max_new_tokens},
            "retain_log": shared["retain_log"]["negtune"]}
    home, t = shared["home"], f"t{a.max_new_tokens}"  # the evaluations negtune_base made, read back (not rerun)
    base["retain"] = evaluate(home / "retain", home / f"eval-negtune-retain-{t}", base, None)
    base["start"] = evaluate(base["full"], home / f"eval-negtune-full-{t}", base, base["retain_log"])

    def for_seed(seed: int) -> dict:
        root = work / f"seed{seed}"
        root.mkdir(parents=True, exist_ok=True)
        return {**base, "root": root}

    return for_seed


def evaluate(model: Path, out: Path, base: dict, retain_log: str | None) -> dict:
    """``negtune eval tofu`` of ``model`` on the base's TOFU folder and forget split (kept in ``out``)."""
    from negtune.evaluation.tofu import TofuEvalConfig, evaluate_tofu

    if not (out / "results.json").exists():
        evaluate_tofu(TofuEvalConfig(model=str(model), out=str(out), tofu_root=str(base["tofu"]), retain_log=retain_log,
                                     device="cpu", **base["eval"]), progress=False)
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    return {k: metrics[k] for k in (*METRICS, *RETAIN)}


def probe_forget_prob(model: Path, base: dict) -> float:
    """The forget-set probability alone, as ``negtune eval tofu`` computes it (the same scorer: mean of
    exp(-mean answer-token NLL)), without the perturbed answers, the other sets or generation: what places a
    checkpoint against the matched level for the cost of one forward pass per forget question."""
    from negtune.data.tofu import load_tofu
    from negtune.evaluation.tofu.scorer import TofuScorer
    from negtune.models.loading import load_model_and_tokenizer, resolve_adapter

    done = model / "probe_forget_prob.json"
    if done.exists():
        return json.loads(done.read_text())["forget_prob"]
    name, adapter = resolve_adapter(str(model), None)
    net, tok = load_model_and_tokenizer(name, adapter=adapter, device="cpu", merge_adapter=True)
    rows = load_tofu(base["forget"], str(base["tofu"])).forget_perturbed
    scorer = TofuScorer(net, tok)
    nll = scorer.sequence_nll([scorer.encode(r["question"], r["answer"]) for r in rows])
    value = statistics.fmean(math.exp(-x) for x in nll)
    done.write_text(json.dumps({"forget_prob": value}))
    return value


def full_eval_steps(probes: dict[int, float], level: float) -> set[int]:
    """The checkpoints ``--full-eval matched`` scores in full: the two around the first crossing of ``level``
    (all that matched utility reads: ``value_at_level`` interpolates between them), or the last when the
    forget-set probability never gets that low."""
    steps = sorted(probes)
    first = next((i for i, s in enumerate(steps) if probes[s] <= level), None)
    if first is None:
        return {steps[-1]}
    return {steps[first]} | ({steps[first - 1]} if first else set())


def unlearn_curve(base: dict, method: str, lr: float, steps: int, every: int, seed: int,
                  full_eval: str = "all") -> dict:
    """Train ``method`` from the seed's model and evaluate its checkpoints; the curve starts at the model itself.
    ``full_eval="matched"``: every checkpoint gets the forget-set probability only, and the full TOFU evaluation
    is run where matched utility needs it (``full_eval_steps``); the other points carry None."""
    from negtune.demo import LORA  # the demo's adapter: r16 on every projection
    from negtune.train import main as train_main

    run = base["root"] / f"{method}-lr{lr:g}"
    done = run / "curve.json"
    earlier = json.loads(done.read_text()) if done.exists() else None
    if earlier and all(k in p for p in earlier["points"] for k in RETAIN):
        return earlier
    t0 = time.monotonic()  # (a curve from before RETAIN was tracked is read again from its kept evaluations)
    name, plugin_flags = variant_args(method)
    if not (run / "adapter_config.json").exists():
        rc = train_main([name, *plugin_flags, "--model_name_or_path", str(base["full"]), "--output_dir", str(run),
                         "--tofu_root", str(base["tofu"]), "--forget", base["forget"], "--max_steps", str(steps),
                         "--per_device_train_batch_size", "4", "--learning_rate", str(lr), "--seed", str(seed),
                         "--save_strategy", "steps", "--save_steps", str(every), "--save_only_model", "true",
                         "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true",
                         "--ref_cache_dir", str(base["root"] / "cache"), *LORA])
        if rc != 0:
            raise SystemExit(f"negtune train {method} failed for seed {seed} (exit {rc}); see above")
    train_s = time.monotonic() - t0
    points = [{"step": 0, **base["start"]}]
    checkpoints = range(every, steps + 1, every)
    full = set(checkpoints)
    if full_eval == "matched":
        probes = {s: probe_forget_prob(run / f"checkpoint-{s}", base) for s in checkpoints}
        full = full_eval_steps(probes, base["retain"]["forget_prob"])
    for step in checkpoints:
        if step in full:
            points.append({"step": step, **evaluate(run / f"checkpoint-{step}", run / f"eval-{step}", base,
                                                    base["retain_log"])})
        else:
            points.append({"step": step, **dict.fromkeys((*METRICS, *RETAIN)), "forget_prob": probes[step]})
    curve = {"method": method, "lr": lr, "seed": seed, "points": points, "train_s": round(train_s, 1),
             "total_s": round(time.monotonic() - t0, 1)}
    if earlier:
        curve.update(train_s=earlier["train_s"], total_s=earlier["total_s"])
    done.write_text(json.dumps(curve, indent=1))
    return curve


def scored(curve: dict) -> list[dict]:
    """The points with the full evaluation (every point, unless ``--full-eval matched``)."""
    return [p for p in curve["points"] if p["model_utility"] is not None]


def matched_utility(curve: dict, level: float, key: str = "model_utility") -> float | None:
    """``key`` (model utility by default) where the forget-set probability first falls to ``level``."""
    from negtune.evaluation.stats import value_at_level

    pts = scored(curve)
    return value_at_level([p["forget_prob"] for p in pts], [p[key] for p in pts], level)


def plot(curves: dict[str, list[dict]], path: str, title: str) -> None:
    """Forget quality (log scale) against model utility over training, one curve per method (mean over seeds),
    as the NPO paper draws it; the start (the model to unlearn) is the shared first point."""
    from negtune.evaluation.report import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, runs in curves.items():
        per_seed = [{p["step"]: p for p in scored(r)} for r in runs]
        common = sorted(set.intersection(*(set(d) for d in per_seed)))  # steps every seed has scored in full
        mu = [statistics.fmean(d[s]["model_utility"] for d in per_seed) for s in common]
        fq = [statistics.fmean(max(d[s]["forget_quality"], 1e-30) for d in per_seed) for s in common]
        ax.plot(mu, fq, marker="o", ms=3, label=f"{label(method)} (lr {runs[0]['lr']:g})")
        sparse = any(len(d) < len(r["points"]) for d, r in zip(per_seed, runs))  # --full-eval matched
        for d in per_seed:  # each seed, faint
            ax.plot([p["model_utility"] for p in d.values()], [max(p["forget_quality"], 1e-30) for p in d.values()],
                    alpha=0.5 if sparse else 0.15, marker="." if sparse else None, color=ax.lines[-1].get_color())
    ax.set_yscale("log")
    ax.set_xlabel("model utility")
    ax.set_ylabel("forget quality (log)")
    ax.set_title(f"unlearning {title} (mean of seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def results_section(r: dict) -> str:
    from negtune.evaluation.stats import format_difference

    s = r["settings"]
    rows = []
    for m, t in r["methods"].items():
        per = ", ".join("n/a" if v is None else f"{v:.3f}" for v in t["matched_utility"])
        rows.append([label(m), f"{t['lr']:g}", per, _fmt(t["mean_matched_utility"]), _fmt(t["mean_final"]["forget_prob"]),
                     f"{t['mean_final']['forget_quality']:.2e}", _fmt(t["mean_final"]["model_utility"])])
    claims = []
    for pair, d in r["differences"].items():
        a, b = (label(x) for x in pair.split(":"))
        if d is None:
            claims.append(f"No paired difference {a} - {b}: a method did not reach the retain model's forget "
                          "probability.")
            continue
        verdict = " (the interval excludes 0)." if d["excludes_zero"] else " (the interval includes 0: no claim)."
        claims.append(f"**{a} - {b}, model utility at matched forgetting: {format_difference(d)}**{verdict}")
    for pair, ds in r.get("retain_differences", {}).items():
        a, b = (label(x) for x in pair.split(":"))
        shown = [f"{k.replace('_', ' ').replace('prob', 'probability').replace('rouge', 'ROUGE-L')} "
                 f"{format_difference(d)}" for k, d in ds.items() if d is not None]
        if shown:
            claims.append(f"Secondary, on the retain set at matched forgetting, {a} - {b}: {'; '.join(shown)}.")
    claim = " ".join(claims)
    loreun = any("loreun" in m for m in r["methods"])
    smollm2 = s.get("base") == "tofu-subset"
    title = ("LoReUn's reweighting vs the plain unlearning methods, synthetic TOFU (`benchmarks/negatives_unlearning.py`"
             ", run `loreun_unlearning`)" if loreun else
             "Negatives that matter: NPO vs GA unlearning, SmolLM2-TOFU (`benchmarks/negatives_unlearning.py`, run "
             "`negatives_unlearning_smollm2`)" if smollm2 else
             "Negatives that matter: NPO vs GA unlearning, synthetic TOFU (`benchmarks/negatives_unlearning.py`)")
    plot_name = ("loreun_unlearning.png" if loreun else "negatives_unlearning_smollm2.png" if smollm2 else
                 "negatives_unlearning.png")
    if smollm2:
        sub = s["subset"]
        setup = (f"Seeds {r['seeds']}, one model to unlearn for all: {s['model']} fine-tuned in full on a TOFU subset "
                 f"({s['finetune']['epochs']} epochs at {s['finetune']['lr']:g}; the forget set is the last "
                 f"{20 * sub['forget_authors']} questions of forget01, the retain set TOFU's first "
                 f"{sub['retain_authors']} authors) and its retain model; each seed unlearns the forget set (LoRA r16, "
                 f"batch 4, {s['steps']} steps, a checkpoint every {s['eval_every']}; ROUGE-L on "
                 f"{s['max_new_tokens']} generated tokens).")
    else:
        setup = (f"Seeds {r['seeds']} (each its own synthetic TOFU, model to unlearn and retain model; facts "
                 f"{s['facts_steps']} steps); forget10, LoRA r16, batch 4, {s['steps']} steps, evaluated every "
                 f"{s['eval_every']}.")
    if s.get("full_eval") == "matched":
        setup += (" Each checkpoint's forget-set probability is measured, and the full TOFU evaluation is run at "
                  "the two checkpoints around the matched level (or the last one, when a run never gets there): "
                  "final forget quality and utility are those of the last fully scored checkpoint.")
    extra = (" LoReUn at its defaults (tau 1; dynamic: the current model's mean answer-token NLL; static: the model "
             "before unlearning's, from the cached reference log-probs), with the same learning-rate grid as the "
             "plain methods (tau not tuned)." if loreun else "")
    return section(title,
        f"{setup} Learning rate per method chosen on tuning seed {s['tune_seed']} from the same grid "
        f"{s['lrs']} by utility at matched forgetting. Matched forgetting = the step where the forget-set "
        f"probability first falls to the retain model's (mean {r['retain_forget_prob']:.3f}); the model to "
        f"unlearn starts at utility {r['start_utility']:.3f}, forget probability {r['start_forget_prob']:.3f}."
        + extra,
        ["method", "lr", "utility at matched forgetting (per seed)", "mean", "final forget prob",
         "final forget quality", "final utility"], rows,
        claim + f" Tuning scores (utility at matched forgetting on the tuning seed): {r['tuning']}. "
        f"Training and evaluation time summed over all runs, tuning included: {r.get('run_seconds', 0):.0f} s; this "
        f"invocation {r['seconds']:.0f} s (finished runs are reused). Figure: `{plot_name}` (forget "
        "quality, log scale, against model utility over training).")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--tune-seed", type=int, default=100)
    ap.add_argument("--lrs", default="5e-4,1e-3,2e-3,5e-3")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--facts-steps", type=int, default=500)
    ap.add_argument("--methods", default="ga,npo")
    ap.add_argument("--compare", default="npo:ga", help="paired differences A:B (A - B), comma-separated")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "negtune" / "negatives_unlearning"))
    ap.add_argument("--plot", help="write the forget-quality / model-utility figure here (PNG)")
    ap.add_argument("--base", choices=("synthetic", "tofu-subset"), default="synthetic",
                    help="the model to unlearn: tiny models on the synthetic TOFU (one per seed), or SmolLM2-TOFU")
    ap.add_argument("--base-work", default=str(Path.home() / ".cache" / "negtune" / "open_unlearning_tofu"),
                    help="with --base tofu-subset: where SmolLM2-TOFU is built (open_unlearning_tofu.py's --work)")
    ap.add_argument("--full-eval", choices=("all", "matched"), default="all",
                    help="all: the full TOFU evaluation at every checkpoint; matched: the forget-set probability at "
                         "every checkpoint and the full evaluation only at the two around the matched level (what "
                         "matched utility reads; for a model whose evaluation takes minutes)")
    add_model_args(ap)
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.tune_seed in seeds:
        ap.error("--tune-seed must not be an evaluation seed")
    methods, lrs = a.methods.split(","), [float(x) for x in a.lrs.split(",")]

    from negtune.evaluation.stats import paired_difference
    from negtune.utils import threads

    threads.configure()  # negtune's policy: the free cores, adapted while it runs
    if a.base == "synthetic":
        work = Path(a.work) / f"facts{a.facts_steps}-steps{a.steps}-every{a.eval_every}"
        make_base = lambda seed: base_models(work, seed, a.facts_steps)  # noqa: E731
    else:
        from open_unlearning_tofu import subset_home

        home = subset_home(a, Path(a.base_work)).name
        work = Path(a.work) / f"{home}-t{a.max_new_tokens}-steps{a.steps}-every{a.eval_every}-{a.full_eval}"
        make_base = subset_base(a, work)

    tune_base = make_base(a.tune_seed)
    level = tune_base["retain"]["forget_prob"]
    tuning, chosen, spent = {}, {}, []
    for m in methods:
        tuned = {lr: unlearn_curve(tune_base, m, lr, a.steps, a.eval_every, a.tune_seed, a.full_eval) for lr in lrs}
        spent += [c["total_s"] for c in tuned.values()]
        scores = {lr: matched_utility(c, level) for lr, c in tuned.items()}
        tuning[m] = {f"{lr:g}": None if v is None else round(v, 4) for lr, v in scores.items()}
        reached = {lr: v for lr, v in scores.items() if v is not None}
        chosen[m] = max(reached, key=reached.get) if reached else max(lrs)
    curves: dict[str, list[dict]] = {m: [] for m in methods}
    bases = {}
    for s in seeds:
        bases[s] = make_base(s)
        for m in methods:
            curves[m].append(unlearn_curve(bases[s], m, chosen[m], a.steps, a.eval_every, s, a.full_eval))
    table = {}
    for m in methods:
        matched = [matched_utility(c, bases[s]["retain"]["forget_prob"]) for c, s in zip(curves[m], seeds)]
        ok = [v for v in matched if v is not None]
        table[m] = {"lr": chosen[m], "matched_utility": matched,
                    "matched_retain": {k: [matched_utility(c, bases[s]["retain"]["forget_prob"], k)
                                           for c, s in zip(curves[m], seeds)] for k in RETAIN},
                    "mean_matched_utility": statistics.fmean(ok) if len(ok) == len(matched) else None,
                    "reached": f"{len(ok)}/{len(matched)}",
                    "mean_final": {k: statistics.fmean((c["points"] if k == "forget_prob" else scored(c))[-1][k]
                                                       for c in curves[m]) for k in METRICS},
                    "curves": [[{k: None if p[k] is None else round(p[k], 6) for k in ("step", *METRICS, *RETAIN)}
                                for p in c["points"]]
                               for c in curves[m]]}
    differences, retain_differences = {}, {}
    for pair in a.compare.split(","):
        x, _, y = pair.partition(":")
        if x not in table or y not in table:
            ap.error(f"--compare {pair}: both sides must be among --methods")
        both = table[x]["mean_matched_utility"] is not None and table[y]["mean_matched_utility"] is not None
        differences[pair] = paired_difference(table[x]["matched_utility"], table[y]["matched_utility"]) if both else None
        retain_differences[pair] = {k: paired_difference(table[x]["matched_retain"][k], table[y]["matched_retain"][k])
                                    if both else None for k in RETAIN}
    if a.plot:
        plot(curves, a.plot, "forget10, synthetic TOFU" if a.base == "synthetic" else "a TOFU author, SmolLM2-TOFU")
    write_result({"benchmark": "negatives_unlearning", "seeds": seeds,
                  "settings": {"base": a.base, "full_eval": a.full_eval, "steps": a.steps, "eval_every": a.eval_every,
                               "facts_steps": a.facts_steps,
                               "lrs": lrs, "tune_seed": a.tune_seed, "lora_r": 16, "batch": 4,
                               **({"model": a.model, "max_new_tokens": a.max_new_tokens,
                                   "subset": {"forget_authors": a.forget_authors, "retain_authors": a.retain_authors,
                                              "general": a.general, "retain_eval": a.retain_eval},
                                   "finetune": {"epochs": a.finetune_epochs, "lr": a.finetune_lr}}
                                  if a.base == "tofu-subset" else {})},
                  "retain_forget_prob": statistics.fmean(bases[s]["retain"]["forget_prob"] for s in seeds),
                  "start_forget_prob": statistics.fmean(bases[s]["start"]["forget_prob"] for s in seeds),
                  "start_utility": statistics.fmean(bases[s]["start"]["model_utility"] for s in seeds),
                  "tuning": tuning, "methods": table, "differences": differences,
                  "retain_differences": retain_differences,
                  "run_seconds": round(sum(spent) + sum(c["total_s"] for cs in curves.values() for c in cs), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
