"""Does NPO keep model utility where gradient ascent loses it? NPO vs GA on the synthetic TOFU, seeds and CIs.
The same harness compares LoReUn's reweighting with the plain methods (run ``loreun_unlearning``).

    python benchmarks/negatives_unlearning.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 5e-4,1e-3,2e-3,5e-3]
        [--steps 40] [--eval-every 5] [--facts-steps 500] [--methods ga,npo] [--compare npo:ga]
        [--work DIR] [--plot PNG]

``--methods``: negtune unlearning methods, or a method with a plug-in (``npo+loreun``: ``--reweight loreun``);
``--compare A:B,...``: the paired differences A - B reported.

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

Equal tuning: every method gets the same learning-rate grid, chosen on a separate tuning seed by that same
score (utility at matched forgetting); the evaluation seeds never take part in the choice. Method settings are
negtune's defaults (NPO beta 0.1). Resumable: every base model, run and evaluation is kept under ``--work`` and
skipped when present.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from common import HERE, Run, parser, section, write_result

METRICS = ("forget_prob", "forget_quality", "model_utility")
_QUICK = ("--seeds", "0,1", "--tune-seed", "100", "--lrs", "2e-3", "--steps", "4", "--eval-every", "2",
          "--facts-steps", "30")
RUNS = (Run("negatives_unlearning", full=("--seeds", "0,1,2,3,4,5,6,7,8,9", "--plot", str(HERE / "negatives_unlearning.png")),
            quick=_QUICK),
        Run("loreun_unlearning", full=("--seeds", "0,1,2,3,4,5,6,7,8,9", "--methods",
                                       "ga,ga+loreun,ga+loreun_static,npo,npo+loreun,npo+loreun_static", "--compare",
                                       "ga+loreun:ga,npo+loreun:npo,ga+loreun_static:ga,npo+loreun_static:npo",
                                       "--plot", str(HERE / "loreun_unlearning.png")),
            quick=(*_QUICK, "--methods", "npo,npo+loreun", "--compare", "npo+loreun:npo")))
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
    retain_eval = evaluate(retain, root / "eval-retain", tofu, None)
    retain_log = str(root / "eval-retain" / "eval_log.json")
    return {"root": root, "tofu": tofu, "full": full, "retain_log": retain_log, "retain": retain_eval,
            "start": evaluate(full, root / "eval-full", tofu, retain_log)}


def evaluate(model: Path, out: Path, tofu: Path, retain_log: str | None) -> dict:
    from negtune.evaluation.tofu import TofuEvalConfig, evaluate_tofu

    if not (out / "results.json").exists():
        evaluate_tofu(TofuEvalConfig(model=str(model), out=str(out), tofu_root=str(tofu), retain_log=retain_log))
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    return {k: metrics[k] for k in METRICS}


def unlearn_curve(base: dict, method: str, lr: float, steps: int, every: int, seed: int) -> dict:
    """Train ``method`` from the seed's model, evaluate every checkpoint; the curve starts at the model itself."""
    from negtune.demo import LORA  # the demo's adapter: r16 on every projection
    from negtune.train import main as train_main

    run = base["root"] / f"{method}-lr{lr:g}"
    done = run / "curve.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.monotonic()
    name, plugin_flags = variant_args(method)
    if not (run / "adapter_config.json").exists():
        rc = train_main([name, *plugin_flags, "--model_name_or_path", str(base["full"]), "--output_dir", str(run),
                         "--tofu_root", str(base["tofu"]), "--forget", "forget10", "--max_steps", str(steps),
                         "--per_device_train_batch_size", "4", "--learning_rate", str(lr), "--seed", str(seed),
                         "--save_strategy", "steps", "--save_steps", str(every), "--save_only_model", "true",
                         "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true",
                         "--ref_cache_dir", str(base["root"] / "cache"), *LORA])
        if rc != 0:
            raise SystemExit(f"negtune train {method} failed for seed {seed} (exit {rc}); see above")
    train_s = time.monotonic() - t0
    points = [{"step": 0, **base["start"]}]
    for step in range(every, steps + 1, every):
        points.append({"step": step, **evaluate(run / f"checkpoint-{step}", run / f"eval-{step}", base["tofu"],
                                                base["retain_log"])})
    curve = {"method": method, "lr": lr, "seed": seed, "points": points, "train_s": round(train_s, 1),
             "total_s": round(time.monotonic() - t0, 1)}
    done.write_text(json.dumps(curve, indent=1))
    return curve


def matched_utility(curve: dict, level: float) -> float | None:
    from negtune.evaluation.stats import value_at_level

    pts = curve["points"]
    return value_at_level([p["forget_prob"] for p in pts], [p["model_utility"] for p in pts], level)


def plot(curves: dict[str, list[dict]], path: str) -> None:
    """Forget quality (log scale) against model utility over training, one curve per method (mean over seeds),
    as the NPO paper draws it; the start (the model to unlearn) is the shared first point."""
    from negtune.evaluation.report import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, runs in curves.items():
        n = min(len(r["points"]) for r in runs)
        mu = [statistics.fmean(r["points"][i]["model_utility"] for r in runs) for i in range(n)]
        fq = [statistics.fmean(max(r["points"][i]["forget_quality"], 1e-30) for r in runs) for i in range(n)]
        ax.plot(mu, fq, marker="o", ms=3, label=f"{label(method)} (lr {runs[0]['lr']:g})")
        for r in runs:  # each seed, faint
            ax.plot([p["model_utility"] for p in r["points"]],
                    [max(p["forget_quality"], 1e-30) for p in r["points"]], alpha=0.15, color=ax.lines[-1].get_color())
    ax.set_yscale("log")
    ax.set_xlabel("model utility")
    ax.set_ylabel("forget quality (log)")
    ax.set_title("unlearning forget10, synthetic TOFU (mean of seeds)")
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
    claim = " ".join(claims)
    loreun = any("loreun" in m for m in r["methods"])
    title = ("LoReUn's reweighting vs the plain unlearning methods, synthetic TOFU (`benchmarks/negatives_unlearning.py`"
             ", run `loreun_unlearning`)" if loreun else
             "Negatives that matter: NPO vs GA unlearning, synthetic TOFU (`benchmarks/negatives_unlearning.py`)")
    plot_name = "loreun_unlearning.png" if loreun else "negatives_unlearning.png"
    extra = (" LoReUn at its defaults (tau 1; dynamic: the current model's mean answer-token NLL; static: the model "
             "before unlearning's, from the cached reference log-probs), with the same learning-rate grid as the "
             "plain methods (tau not tuned)." if loreun else "")
    return section(title,
        f"Seeds {r['seeds']} (each its own synthetic TOFU, model to unlearn and retain model; facts "
        f"{s['facts_steps']} steps); forget10, LoRA r16, batch 4, {s['steps']} steps, evaluated every "
        f"{s['eval_every']}. Learning rate per method chosen on tuning seed {s['tune_seed']} from the same grid "
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
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.tune_seed in seeds:
        ap.error("--tune-seed must not be an evaluation seed")
    methods, lrs = a.methods.split(","), [float(x) for x in a.lrs.split(",")]
    work = Path(a.work) / f"facts{a.facts_steps}-steps{a.steps}-every{a.eval_every}"

    from negtune.evaluation.stats import paired_difference
    from negtune.utils import threads

    threads.configure()  # negtune's policy: the free cores, adapted while it runs
    tune_base = base_models(work, a.tune_seed, a.facts_steps)
    level = tune_base["retain"]["forget_prob"]
    tuning, chosen, spent = {}, {}, []
    for m in methods:
        tuned = {lr: unlearn_curve(tune_base, m, lr, a.steps, a.eval_every, a.tune_seed) for lr in lrs}
        spent += [c["total_s"] for c in tuned.values()]
        scores = {lr: matched_utility(c, level) for lr, c in tuned.items()}
        tuning[m] = {f"{lr:g}": None if v is None else round(v, 4) for lr, v in scores.items()}
        reached = {lr: v for lr, v in scores.items() if v is not None}
        chosen[m] = max(reached, key=reached.get) if reached else max(lrs)
    curves: dict[str, list[dict]] = {m: [] for m in methods}
    bases = {}
    for s in seeds:
        bases[s] = base_models(work, s, a.facts_steps)
        for m in methods:
            curves[m].append(unlearn_curve(bases[s], m, chosen[m], a.steps, a.eval_every, s))
    table = {}
    for m in methods:
        matched = [matched_utility(c, bases[s]["retain"]["forget_prob"]) for c, s in zip(curves[m], seeds)]
        ok = [v for v in matched if v is not None]
        table[m] = {"lr": chosen[m], "matched_utility": matched,
                    "mean_matched_utility": statistics.fmean(ok) if len(ok) == len(matched) else None,
                    "reached": f"{len(ok)}/{len(matched)}",
                    "mean_final": {k: statistics.fmean(c["points"][-1][k] for c in curves[m]) for k in METRICS},
                    "curves": [[{k: round(p[k], 6) for k in ("step", *METRICS)} for p in c["points"]]
                               for c in curves[m]]}
    differences = {}
    for pair in a.compare.split(","):
        x, _, y = pair.partition(":")
        if x not in table or y not in table:
            ap.error(f"--compare {pair}: both sides must be among --methods")
        both = table[x]["mean_matched_utility"] is not None and table[y]["mean_matched_utility"] is not None
        differences[pair] = paired_difference(table[x]["matched_utility"], table[y]["matched_utility"]) if both else None
    if a.plot:
        plot(curves, a.plot)
    write_result({"benchmark": "negatives_unlearning", "seeds": seeds,
                  "settings": {"steps": a.steps, "eval_every": a.eval_every, "facts_steps": a.facts_steps,
                               "lrs": lrs, "tune_seed": a.tune_seed, "lora_r": 16, "batch": 4},
                  "retain_forget_prob": statistics.fmean(bases[s]["retain"]["forget_prob"] for s in seeds),
                  "start_forget_prob": statistics.fmean(bases[s]["start"]["forget_prob"] for s in seeds),
                  "start_utility": statistics.fmean(bases[s]["start"]["model_utility"] for s in seeds),
                  "tuning": tuning, "methods": table, "differences": differences,
                  "run_seconds": round(sum(spent) + sum(c["total_s"] for cs in curves.values() for c in cs), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
