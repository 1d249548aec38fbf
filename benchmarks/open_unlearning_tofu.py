"""negtune's unlearning against open-unlearning's own code, on SmolLM2-135M-Instruct fine-tuned on a TOFU subset.

    python benchmarks/open_unlearning_tofu.py [--open-unlearning DIR --ou-python PY] [--methods npo,graddiff,simnpo]
        [--seeds 0,1,2] [--work DIR]

The model (SmolLM2-TOFU): SmolLM2-135M-Instruct (``negtune model prepare smollm2-135m-instruct``) fine-tuned
in full on a TOFU subset written from the shared TOFU files: the forget set is the last ``--forget-authors``
authors of TOFU's forget01 (20 questions each), the retain set the first ``--retain-authors`` authors of TOFU
(those of ``retain_perturbed``, so model utility's retain questions are questions the model learnt), and model
utility's real-authors and world-facts sets are the first ``--general`` rows of each. The retain model is the
same fine-tune without the forget authors (the reference of forget quality). Both are trained once (seeded) and
shared by every run.

Each method then unlearns the forget set from the same model twice, once with negtune (``negtune train``,
full-parameter) and once with open-unlearning's own ``src/train.py`` (a checkout of
https://github.com/locuslab/open-unlearning given by ``--open-unlearning``, run by ``--ou-python``, a Python
environment with its requirements; nothing of it is part of negtune), both with the same settings: open-unlearning's
TOFU ones (learning rate 1e-5, weight decay 0.01, one epoch of warm-up, linear decay, each forget example paired
with a random retain example; NPO beta 0.1; alpha = gamma = 1; SimNPO beta 4.5, gamma 0.125, delta 0) except the
batch and the length, for a 2-core CPU: batch 4 x 1 and 5 epochs (theirs: 8 x 4 and 10, which on 20 forget
questions is one step per epoch). open-unlearning's NPO adds the retain NLL: negtune's ``npo_rt``. Each model is
scored by its own framework's TOFU evaluation (negtune: ``negtune eval tofu``; open-unlearning: its
``src/eval.py``), the two base models by both, and with ``--cross-eval`` every model by both, so that training
and scoring are compared apart.

CPU deviations for open-unlearning, applied to both frameworks alike: fp32 instead of bf16, ``adamw_torch``
instead of ``paged_adamw_32bit`` (bitsandbytes' paged optimizer needs CUDA), SDPA attention instead of
FlashAttention-2. Reported per method: forget-set probability, forget quality and model utility of each
framework's model (mean and per seed; the difference negtune - open-unlearning with its 95% interval, paired by
seed), and the training wall time of each (ratio negtune / open-unlearning). Resumable: every model, run and
evaluation is kept under ``--work`` and skipped when present.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from common import Run, parser, section, table, write_result
from open_unlearning import METHOD_ARGS, ou_configs, ou_eval, ou_model_view, ou_unlearn, timed

METRICS = ("forget_prob", "forget_rouge", "forget_truth_ratio", "forget_quality", "model_utility")
SMOLLM2 = "smollm2-135m-instruct"
# open-unlearning's NPO always adds alpha * the retain NLL: negtune's name for that objective is npo_rt (its
# npo is the forget term alone); GradDiff and SimNPO (with a retain set) are the same objectives under one name
NEGTUNE_METHOD = {"npo": "npo_rt", "graddiff": "graddiff", "simnpo": "simnpo"}
_QUICK = ("--seeds", "0", "--methods", "npo", "--forget-authors", "1", "--retain-authors", "1", "--general", "4",
          "--retain-eval", "4",
          "--finetune-epochs", "1", "--epochs", "1", "--max-new-tokens", "8")
RUNS = (Run("open_unlearning_tofu", full=("--seeds", "0,1", "--max-new-tokens", "128", "--cross-eval", "negtune"),
            quick=_QUICK),)


def tofu_subset(out: Path, forget_authors: int, retain_authors: int, general: int, retain_eval: int) -> Path:
    """A TOFU-format folder (negtune's split names) holding the subset; rows are TOFU's own."""
    from negtune.data.paths import shared_data_dir
    from negtune.data.tofu import load_tofu_split

    if (out / "done").exists():
        return out
    root = shared_data_dir()
    src = root / "tofu" if root and (root / "tofu" / "forget01.json").exists() else None
    if src is None:
        raise SystemExit("the shared TOFU files are needed (../shared/data/tofu or $NEGTUNE_DATA_DIR/tofu)")
    out.mkdir(parents=True, exist_ok=True)
    n_forget, n_retain = 20 * forget_authors, 20 * retain_authors
    full = load_tofu_split("full", src)
    retain_questions = {r["question"] for r in full[:n_retain]}
    splits = {
        "forget01": load_tofu_split("forget01", src)[-n_forget:],
        "forget01_perturbed": load_tofu_split("forget01_perturbed", src)[-n_forget:],
        "retain99": full[:n_retain],
        "retain_perturbed": [r for r in load_tofu_split("retain_perturbed", src)
                             if r["question"] in retain_questions][:retain_eval],
        "real_authors_perturbed": load_tofu_split("real_authors_perturbed", src)[:general],
        "world_facts_perturbed": load_tofu_split("world_facts_perturbed", src)[:general],
    }
    for name, rows in splits.items():
        (out / f"{name}.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (out / "done").write_text(json.dumps({k: len(v) for k, v in splits.items()}))
    return out


def finetune(model: str, rows: list[dict], out: Path, epochs: int, lr: float, seed: int) -> dict:
    """Full fine-tune on question/answer rows in the model's chat template, encoded as negtune encodes them
    (prompt + answer + EOS; open-unlearning's encoding adds two tokens after SmolLM2's ``<|im_end|>``: see the
    README's table of differences); the model learns the answers only."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from negtune.data.prompts import encode_prompt_completion
    from negtune.trainers.base import PaddedCollator

    if (out / "finetune.json").exists():
        return json.loads((out / "finetune.json").read_text())
    t0 = time.monotonic()
    tok = AutoTokenizer.from_pretrained(model)
    net = AutoModelForCausalLM.from_pretrained(model, dtype="float32")
    enc = [encode_prompt_completion(tok, r["question"], r["answer"]) for r in rows]
    data = datasets.Dataset.from_list([{"input_ids": i, "labels": la} for i, la in enc])
    args = TrainingArguments(output_dir=str(out / "trainer"), num_train_epochs=epochs, learning_rate=lr,
                             per_device_train_batch_size=8, warmup_steps=0.1, weight_decay=0.01,
                             lr_scheduler_type="linear", seed=seed, use_cpu=True, report_to="none",
                             save_strategy="no", logging_steps=5, disable_tqdm=True)
    trainer = Trainer(model=net, args=args, train_dataset=data, data_collator=PaddedCollator(tok.pad_token_id))
    result = trainer.train()
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    info = {"rows": len(rows), "epochs": epochs, "lr": lr, "steps": result.global_step,
            "final_loss": round(result.training_loss, 4), "seconds": round(time.monotonic() - t0, 1)}
    (out / "finetune.json").write_text(json.dumps(info))
    return info


def negtune_unlearn(method: str, model: Path, root: Path, out: Path, a, seed: int) -> dict:
    """``negtune train`` with the objective open-unlearning calls ``method``, full-parameter, open-unlearning's
    settings, in a process of its own."""
    m = METHOD_ARGS[method]
    flags = ["--forget_weight", str(m["gamma"]), "--retain_weight", str(m["alpha"])]
    flags += ["--beta", str(m["beta"])] if "beta" in m else []
    flags += ["--simnpo_delta", str(m["delta"])] if "delta" in m else []
    cmd = [sys.executable, "-m", "negtune.cli", "train",
           NEGTUNE_METHOD[method], "--model_name_or_path", str(model), "--output_dir", str(out), "--tofu_root", str(root),
                     "--forget", "forget01", "--num_train_epochs", str(a.epochs), "--learning_rate", str(a.lr),
                     "--per_device_train_batch_size", str(a.batch), "--gradient_accumulation_steps", str(a.accumulation),
                     "--weight_decay", "0.01", "--warmup_steps", str(a.warmup_steps), "--optim", "adamw_torch",
                     "--seed", str(seed), "--save_strategy", "no", "--use_cpu", "true", "--report_to", "none",
           "--disable_tqdm", "true", "--ref_cache_dir", str(out / "ref_cache"), *flags]  # its own: the pass is timed
    return timed(cmd, None, out, f"negtune train {method}, seed {seed}", a.threads)


def negtune_eval(model: Path, root: Path, out: Path, retain_log: str | None, max_new_tokens: int) -> dict:
    from negtune.evaluation.tofu import TofuEvalConfig, evaluate_tofu

    if not (out / "results.json").exists():
        evaluate_tofu(TofuEvalConfig(model=str(model), out=str(out), forget_split="forget01", tofu_root=str(root),
                                     retain_log=retain_log, max_new_tokens=max_new_tokens, device="cpu"),
                      progress=False)
    results = json.loads((out / "results.json").read_text())
    return {**{k: results["metrics"][k] for k in METRICS}, "eval_s": results["seconds"]}


def summarize(runs: dict, frameworks: list[str], methods: list[str], seeds: list[int], cross: dict | None = None
              ) -> dict:
    """Per method: each framework's metrics by its own eval (mean, per seed), negtune - open-unlearning paired by
    seed, the time ratio; with ``cross`` (each framework's models scored by the other's eval) the same difference
    under each evaluator."""
    import statistics

    from negtune.evaluation.stats import paired_difference

    out = {}
    for method in methods:
        entry = {}
        for fw in frameworks:
            per = [runs[fw][method][s] for s in seeds]
            entry[fw] = {k: {"mean": statistics.fmean(r[k] for r in per), "per_seed": [r[k] for r in per]}
                         for k in (*METRICS, "wall_s", "loop_s", "eval_s")}
        if len(frameworks) == 2:
            entry["difference"] = {k: paired_difference(entry["negtune"][k]["per_seed"],
                                                        entry["open-unlearning"][k]["per_seed"])
                                   for k in METRICS}
            entry["time_ratio"] = {t: entry["negtune"][t]["mean"] / entry["open-unlearning"][t]["mean"]
                                   for t in ("wall_s", "loop_s", "eval_s")}
            if cross:
                # one evaluator for both trainers: what the training alone makes differ
                pairs = {"negtune": (runs["negtune"], cross["open-unlearning"])}
                if cross["negtune"][method]:
                    pairs["open-unlearning"] = (cross["negtune"], runs["open-unlearning"])
                entry["same_evaluator"] = {
                    ev: {"negtune": {k: statistics.fmean(mine[method][s][k] for s in seeds) for k in METRICS},
                         "open-unlearning": {k: statistics.fmean(theirs[method][s][k] for s in seeds)
                                             for k in METRICS},
                         "difference": {k: paired_difference([mine[method][s][k] for s in seeds],
                                                             [theirs[method][s][k] for s in seeds])
                                        for k in METRICS}}
                    for ev, (mine, theirs) in pairs.items()}
        out[method] = entry
    return out


def subset_home(a, work: Path) -> Path:
    """The folder of one model and subset: the fine-tunes, the subset, the evaluations and runs under it."""
    tag = a.model if a.model == SMOLLM2 else Path(a.model).name
    return work / (f"{tag}-f{a.forget_authors}-r{a.retain_authors}-g{a.general}-re{a.retain_eval}"
                   f"-ft{a.finetune_epochs}-lr{a.finetune_lr:g}")


def base_models(a, home: Path, root: Path, frameworks: list[str], cfg: Path | None) -> dict:
    """The subset, SmolLM2-TOFU and its retain model, each evaluated by every framework."""
    from negtune.data.tofu import load_tofu_split
    from negtune.models.prepare import KNOWN, prepare

    model = Path(a.model) if Path(a.model).exists() or a.model not in KNOWN else prepare(a.model, log=print)[0]
    forget, retain = load_tofu_split("forget01", root), load_tofu_split("retain99", root)
    base = {"root": root, "n_forget": len(forget), "n_retain": len(retain),
            "finetune": {"full": finetune(str(model), forget + retain, home / "full", a.finetune_epochs,
                                          a.finetune_lr, 0),
                         "retain": finetune(str(model), retain, home / "retain", a.finetune_epochs, a.finetune_lr, 0)},
            "model": {"negtune": home / "full"}, "evals": {}, "retain_log": {}}
    t = f"t{a.max_new_tokens}"
    for fw in frameworks:
        if fw == "negtune":
            ev = lambda m, out, log: negtune_eval(m, root, out, log, a.max_new_tokens)  # noqa: E731
            models, log_name = {"full": home / "full", "retain": home / "retain"}, "eval_log.json"
        else:
            base["model"][fw] = ou_model_view(home / "full", home / "full-ou")
            ev = lambda m, out, log: ou_eval(m, out, log, a, cfg)  # noqa: E731
            models = {"full": base["model"][fw], "retain": ou_model_view(home / "retain", home / "retain-ou")}
            log_name = "TOFU_EVAL.json"
        retain_eval = ev(models["retain"], home / f"eval-{fw}-retain-{t}", None)
        base["retain_log"][fw] = str(home / f"eval-{fw}-retain-{t}" / log_name)
        base["evals"][fw] = {"retain": retain_eval,
                             "full": ev(models["full"], home / f"eval-{fw}-full-{t}", base["retain_log"][fw])}
    return base


def add_model_args(ap) -> None:
    """The flags that make SmolLM2-TOFU (the model, the subset, the fine-tunes, the evaluation's generation length);
    ``negatives_unlearning.py --base tofu-subset`` takes them too and shares the models."""
    ap.add_argument("--model", default=SMOLLM2, help="the model to fine-tune on the subset (a folder, or "
                    f"{SMOLLM2}: prepared from its wheel)")
    ap.add_argument("--forget-authors", type=int, default=1, choices=(1, 2),
                    help="the last authors of TOFU's forget01 (20 questions each)")
    ap.add_argument("--retain-authors", type=int, default=4, help="TOFU's first authors")
    ap.add_argument("--general", type=int, default=20, help="real-authors and world-facts questions each")
    ap.add_argument("--retain-eval", type=int, default=40,
                    help="retain questions model utility scores (the first of the retain authors')")
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-lr", type=float, default=1e-4)
    ap.add_argument("--max-new-tokens", type=int, default=200,
                    help="greedy generation for ROUGE-L (default: open-unlearning's 200)")


def negtune_base(a, work: Path) -> dict:
    """SmolLM2-TOFU (or ``--model``'s fine-tune) and its retain model, scored by negtune's eval, built once under
    ``work`` for every benchmark that uses it."""
    home = subset_home(a, work)
    root = tofu_subset(home / "tofu", a.forget_authors, a.retain_authors, a.general, a.retain_eval)
    return {**base_models(a, home, root, ["negtune"], None), "home": home}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--open-unlearning", default=os.environ.get("NEGTUNE_OPEN_UNLEARNING"),
                    help="a checkout of open-unlearning (default $NEGTUNE_OPEN_UNLEARNING); without it only "
                         "negtune's side runs")
    ap.add_argument("--ou-python", default=os.environ.get("NEGTUNE_OU_PYTHON"),
                    help="the Python of an environment with open-unlearning's requirements "
                         "(default $NEGTUNE_OU_PYTHON)")
    ap.add_argument("--methods", default="npo,graddiff,simnpo", help="open-unlearning's names, lower case")
    ap.add_argument("--seeds", default="0,1,2")
    add_model_args(ap)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--accumulation", type=int, default=1)
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="OpenMP threads of every training process, both frameworks (default: every core)")
    ap.add_argument("--cross-eval", choices=("none", "negtune", "both"), default="none",
                    help="also score open-unlearning's models with negtune's eval (negtune), and negtune's with "
                         "open-unlearning's (both): one evaluator for both trainings")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "negtune" / "open_unlearning_tofu"))
    a = ap.parse_args()
    methods, seeds = a.methods.split(","), [int(s) for s in a.seeds.split(",")]
    unknown = [m for m in methods if m not in METHOD_ARGS]
    if unknown:
        raise SystemExit(f"--methods: {unknown[0]!r} is not one of {', '.join(METHOD_ARGS)}")
    frameworks = ["negtune"]
    if a.open_unlearning and a.ou_python:
        if not (Path(a.open_unlearning) / "src" / "train.py").exists():
            raise SystemExit(f"--open-unlearning {a.open_unlearning}: no src/train.py there")
        frameworks.append("open-unlearning")
    t0 = time.monotonic()
    home = subset_home(a, Path(a.work))
    root = tofu_subset(home / "tofu", a.forget_authors, a.retain_authors, a.general, a.retain_eval)
    cfg = ou_configs(home, Path(a.open_unlearning), a.ou_python, root, a.max_new_tokens) if len(frameworks) == 2 else None
    base = base_models(a, home, root, frameworks, cfg)
    # open-unlearning's warmup_epochs, in steps: int(epochs * rows // (batch * accumulation * devices))
    a.warmup_steps = int(a.warmup_epochs * base["n_forget"] // (a.batch * a.accumulation))
    t = f"t{a.max_new_tokens}"
    runs: dict = {fw: {m: {} for m in methods} for fw in frameworks}
    cross: dict = {fw: {m: {} for m in methods} for fw in frameworks}
    for seed in seeds:
        for method in methods:
            run = home / f"{method}-e{a.epochs}-lr{a.lr:g}-b{a.batch}x{a.accumulation}-w{a.warmup_steps}" / f"seed{seed}"
            # alternate which framework trains first, so neither always starts on a cold page cache
            for fw in frameworks if seed % 2 == 0 else frameworks[::-1]:
                out = run / fw
                if fw == "negtune":
                    times = negtune_unlearn(method, base["model"][fw], root, out, a, seed)
                    metrics = negtune_eval(out, root, run / f"eval-{fw}-{t}", base["retain_log"][fw], a.max_new_tokens)
                else:
                    times = ou_unlearn(method, base["model"][fw], root, out, a, seed, cfg)
                    metrics = ou_eval(out, run / f"eval-{fw}-{t}", base["retain_log"][fw], a, cfg)
                runs[fw][method][seed] = {**metrics, **times}
                print(f"seed {seed} {method} {fw}: {runs[fw][method][seed]}", flush=True)
            if a.cross_eval != "none" and len(frameworks) == 2:  # models scored by the other framework's eval
                if a.cross_eval == "both":
                    cross["negtune"][method][seed] = ou_eval(ou_model_view(run / "negtune", run / "negtune-ou"),
                                                             run / f"eval-negtune-by-ou-{t}",
                                                             base["retain_log"]["open-unlearning"], a, cfg)
                cross["open-unlearning"][method][seed] = negtune_eval(
                    run / "open-unlearning", root, run / f"eval-open-unlearning-by-negtune-{t}",
                    base["retain_log"]["negtune"], a.max_new_tokens)
                print(f"seed {seed} {method} cross: {cross['open-unlearning'][method][seed]}", flush=True)
    result = {
        "benchmark": "unlearning_vs_open_unlearning", "frameworks": frameworks, "methods": methods, "seeds": seeds,
        "negtune_methods": {m: NEGTUNE_METHOD[m] for m in methods},
        "settings": {k: v for k, v in vars(a).items() if k not in ("json", "ou_python")},
        "subset": {"forget": base["n_forget"], "retain": base["n_retain"], "general": a.general,
                   "retain_eval": a.retain_eval},
        "finetune": base["finetune"], "base_evals": base["evals"],
        "runs": {fw: {m: {str(s): r for s, r in v.items()} for m, v in per.items()} for fw, per in runs.items()},
        "cross": {fw: {m: {str(s): r for s, r in v.items()} for m, v in per.items() if v} for fw, per in cross.items()},
        "summary": summarize(runs, frameworks, methods, seeds, cross if a.cross_eval != "none" else None),
        "seconds": round(time.monotonic() - t0, 1)}
    if len(frameworks) == 1:  # run_all keeps the figures of an earlier run with both frameworks
        result["skipped"] = ("open-unlearning was not given (--open-unlearning and --ou-python, or "
                             "$NEGTUNE_OPEN_UNLEARNING and $NEGTUNE_OU_PYTHON): negtune's side only")
    write_result(result, a.json)


def _label(method: str) -> str:
    return {"graddiff": "GradDiff", "simnpo": "SimNPO"}.get(method, method.upper())


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.2e}" if 0 < abs(x) < 1e-3 else f"{x:.3f}"


def _ci(d: dict) -> str:
    if d["low"] is None:
        return f"{d['mean']:+.3f}"
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def results_section(r: dict) -> str:
    fws = r["frameworks"]
    s = r["settings"]
    sub = r["subset"]
    names = {"forget_prob": "forget probability", "forget_rouge": "forget ROUGE-L recall",
             "forget_truth_ratio": "forget truth ratio", "forget_quality": "forget quality",
             "model_utility": "model utility"}
    rows = []
    for which in ("full", "retain"):
        for fw in fws:
            ev = r["base_evals"][fw][which]
            rows.append([f"{'SmolLM2-TOFU' if which == 'full' else 'retain model'}, {fw}'s eval",
                         *(_fmt(ev.get(k)) for k in METRICS)])
    for method in r["methods"]:
        entry = r["summary"][method]
        for fw in fws:
            rows.append([f"{_label(method)}, {fw}",
                         *(_fmt(entry[fw][k]["mean"]) for k in METRICS)])
        if "difference" in entry:
            rows.append([f"  negtune - open-unlearning ({len(r['seeds'])} seeds)",
                         *(_ci(entry["difference"][k]) for k in METRICS)])
    cross_rows = []
    for method in r["methods"]:
        for ev, d in r["summary"][method].get("same_evaluator", {}).items():
            cross_rows.append([f"{_label(method)}, both scored by {ev}'s eval",
                               *(f"{_fmt(d['negtune'][k])} vs {_fmt(d['open-unlearning'][k])}: {_ci(d['difference'][k])}"
                                 for k in METRICS)])
    times = []
    for method in r["methods"]:
        entry = r["summary"][method]
        ratio = entry.get("time_ratio")
        times.append([_label(method), *(f"{entry[fw]['wall_s']['mean']:.0f} ({entry[fw]['loop_s']['mean']:.0f})"
                                        for fw in fws),
                      f"**{ratio['wall_s']:.2f}** ({ratio['loop_s']:.2f})" if ratio else "-",
                      *(f"{entry[fw]['eval_s']['mean']:.0f}" for fw in fws),
                      f"**{ratio['eval_s']:.2f}**" if ratio else "-"])
    model = "SmolLM2-135M-Instruct" if s["model"] == SMOLLM2 else f"`{Path(s['model']).name}`"
    text = (f"{model} fine-tuned in full on a TOFU subset ({sub['forget']} forget questions: TOFU's "
            f"last {s['forget_authors']} author(s); {sub['retain']} retain questions: its first "
            f"{s['retain_authors']} author(s); {s['finetune_epochs']} epochs at lr {s['finetune_lr']:g}), and the retain "
            f"model (the same without the forget author). Each method unlearns it with negtune and with "
            f"open-unlearning's own `src/train.py` ({s['epochs']} epoch(s), lr {s['lr']:g}, batch "
            f"{s['batch']} x {s['accumulation']}, warm-up {s['warmup_epochs']:g} epoch, weight decay 0.01, fp32, "
            f"AdamW), seeds {', '.join(map(str, r['seeds']))}; each model is scored by its own framework's TOFU "
            f"eval (model utility over the first {sub.get('retain_eval', sub['retain'])} retain questions and the first "
            f"{sub['general']} real-authors and "
            f"world-facts questions; greedy answers of up to {s['max_new_tokens']} tokens for ROUGE), the two "
            "base models by both. Differences are paired by seed, 95% t intervals. open-unlearning's NPO adds the "
            "retain NLL: negtune's `npo_rt` is that objective (its `npo` is the forget term alone). Training runs "
            f"one at a time, each in its own process with {s.get('threads', '?')} OpenMP threads, on the CPU; the "
            "model to unlearn was fine-tuned with negtune's encoding (answer + EOS), which open-unlearning's "
            "encoding extends by two tokens after SmolLM2's `<|im_end|>` (README, differences), so the "
            "same-evaluator table is the like-for-like comparison of the training.")
    if len(fws) == 1:
        text += " open-unlearning was not given (`--open-unlearning`, `--ou-python`): negtune's side only."
    after = ""
    if cross_rows:
        after = ("The same models, each scored by both evaluators: negtune-trained - open-unlearning-trained under "
                 "one evaluator (what the training alone makes differ; means, then the paired difference):\n\n"
                 + table(["", *(names[k] for k in METRICS)], cross_rows) + "\n\n")
    return section("Unlearning vs open-unlearning's own code, SmolLM2-TOFU (`benchmarks/open_unlearning_tofu.py`)",
                   text, ["", *(names[k] for k in METRICS)], rows,
                   after=after + "Training time per run, s, mean over seeds: the whole process (start to exit: imports, "
                                 "model and data loading, training, saving), in brackets the Trainer's loop "
                                 "alone (`train_runtime`); and each framework's TOFU eval of its own model, model loaded to metrics written "
                                 "(negtune: `results.json` seconds; open-unlearning: its `eval.log`'s first to last time "
                                 "stamp):\n\n"
                         + table(["method", *(f"training, {fw}" for fw in fws), "negtune / open-unlearning",
                                  *(f"eval, {fw}" for fw in fws), "eval: negtune / open-unlearning"], times)
                         + f"\n\nThis invocation took {r['seconds']:.0f} s (finished runs and evaluations are reused).")


if __name__ == "__main__":
    main()
