"""Metrics over training: evaluate every ``checkpoint-N`` of a training run, and its final model (``--checkpoints``).

``negtune eval tofu|math --checkpoints --model RUN_DIR --out OUT`` evaluates each complete checkpoint folder that
``--save_strategy steps`` left in ``RUN_DIR`` (full weights or a LoRA adapter), then the final model saved there,
each into ``OUT/step-N`` with that evaluation's own outputs, and writes the curve: ``curve.json``, ``curve.md``
and ``curve.png`` (TOFU: forget quality on a log axis against model utility, one point per step, as the NPO
paper's figures; math: each benchmark's avg@n and pass@n by step). A rerun skips the points already evaluated
with the same settings from the same weights, so a killed sweep resumes where it stopped; a point whose weight
files changed since (the run retrained into the same folder) is refused rather than reported from the old ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from negtune.data.io import DataError, atomic_write_text
from negtune.utils.checkpoints import checkpoint_folders, global_step, is_complete

__all__ = ["evaluate_checkpoints", "run_points"]

_MODEL_FILES = ("config.json", "adapter_config.json")
_STAMP = "weights.json"


def weights_stamp(folder: Path) -> list[list[Any]]:
    """Name, size and modification time of each weight file of a point (not its optimizer or trainer state):
    retraining into the run folder rewrites them, so an evaluated point is tied to the weights it scored."""
    return sorted([p.name, st.st_size, st.st_mtime_ns] for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix in (".safetensors", ".bin") and p.name != "training_args.bin"
                  for st in (p.stat(),))


def _claim(point_out: Path, folder: Path) -> None:
    """Record which weights ``point_out`` evaluates (before any work, so a killed point resumes on the same ones);
    refuse when it holds an evaluation of other weights. An older sweep's point, with no record, is adopted."""
    stamp, path = weights_stamp(folder), point_out / _STAMP
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    if old is not None and old != stamp:
        raise DataError(f"--checkpoints: {point_out} holds an evaluation of other weights than {folder} holds now "
                        "(its weight files changed since: retrained into the same folder?); pass another --out, "
                        f"or delete {point_out} to evaluate them anew")
    if old is None:
        point_out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(stamp))


def run_points(run_dir: str | Path) -> list[tuple[int | None, Path]]:
    """(step, folder) of each complete checkpoint of a training output folder, then of its final model (its
    step from the run's saved ``trainer_state.json``; a checkpoint at the final step is the same point, kept once
    as the final model)."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise DataError(f"--checkpoints: --model {run_dir} is not a folder (it takes a training output folder "
                        "holding checkpoint-N folders)")
    points = [(global_step(c), c) for c in checkpoint_folders(folder) if is_complete(c)]
    if any((folder / f).exists() for f in _MODEL_FILES):
        final = global_step(folder)
        points = [p for p in points if final is None or p[0] != final] + [(final, folder)]
    if not points:
        raise DataError(f"--checkpoints: {folder} holds no complete checkpoint-N folder and no saved model "
                        "(train with --save_strategy steps --save_steps N to get checkpoints)")
    return points


def _headline(kind: str, results: dict[str, Any]) -> dict[str, float | None]:
    if kind == "tofu":
        m = results["metrics"]
        return {k: m.get(k) for k in ("forget_quality", "model_utility", "forget_prob", "forget_rouge",
                                      "forget_truth_ratio", "retain_prob", "retain_rouge")}
    n = results["settings"]["n"]
    out: dict[str, float | None] = {}
    for name, m in results["benchmarks"].items():
        out[f"{name} avg@{n}"] = m[f"avg@{n}"]
        out[f"{name} pass@{n}"] = m["pass@k"][str(n)]
    return out


def _reusable(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """A point's earlier results when they were made with these settings (a rerun of the sweep)."""
    try:
        old = json.loads((path / "results.json").read_text())
    except (OSError, ValueError):
        return None
    recorded = old.get("settings", {})
    # (an evaluation records the adapter it resolved from the folder and the engine it ran, not the flags)
    same = all(recorded.get(k) == v for k, v in settings.items() if k not in ("adapter", "engine"))
    return old if same else None


def evaluate_checkpoints(cfg, progress: bool = True) -> dict[str, Any]:
    """Evaluate every point of the run ``cfg.model`` (a ``TofuEvalConfig``: ``evaluate_tofu``; a
    ``MathEvalConfig``: ``evaluate_math``) and write the curve into ``cfg.out``; returns ``curve.json``'s content."""
    from negtune.evaluation.math import MathEvalConfig, evaluate_math
    from negtune.evaluation.tofu import TofuEvalConfig, evaluate_tofu

    if isinstance(cfg, TofuEvalConfig):
        kind, evaluate = "tofu", evaluate_tofu
    elif isinstance(cfg, MathEvalConfig):
        kind, evaluate = "math", evaluate_math
    else:
        raise TypeError(f"evaluate_checkpoints takes a TofuEvalConfig or a MathEvalConfig, got {type(cfg).__name__}")
    if cfg.adapter:
        raise DataError("--checkpoints with --adapter: the run's checkpoints are the models evaluated (a LoRA run's "
                        "checkpoints hold their adapters); drop --adapter")
    out = Path(cfg.out)
    rows = []
    for step, folder in run_points(cfg.model):
        name = f"step-{step}" if step is not None else "final"
        point = replace(cfg, model=str(folder), out=str(out / name), checkpoints=False)
        settings = asdict(point)
        _claim(out / name, folder)
        results = _reusable(out / name, settings) or evaluate(point, progress=progress)
        rows.append({"step": step, "model": str(folder), "out": point.out, "metrics": _headline(kind, results)})
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in rows[-1]["metrics"].items() if isinstance(v, float))
            print(f"{name}: {shown}", flush=True)
    curve = {"kind": kind, "run": cfg.model, "points": rows}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curve.json", json.dumps(curve, indent=2))
    _write_report(curve, out)
    return curve


def _write_report(curve: dict[str, Any], out: Path) -> None:
    from negtune.evaluation.report import markdown_table, pyplot

    rows, kind = curve["points"], curve["kind"]
    keys = list(rows[0]["metrics"])
    text = [f"# {'TOFU' if kind == 'tofu' else 'Math'} metrics over training: {curve['run']}", "",
            markdown_table(["step", "model", *keys],
                           [[r["step"] if r["step"] is not None else "final", Path(r["model"]).name,
                             *(r["metrics"][k] for k in keys)] for r in rows]),
            "", "![curve](curve.png)", ""]
    atomic_write_text(out / "curve.md", "\n".join(text))
    plt = pyplot()
    steps = [r["step"] if r["step"] is not None else i for i, r in enumerate(rows)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    if kind == "tofu":
        fq = [r["metrics"]["forget_quality"] for r in rows]
        mu = [r["metrics"]["model_utility"] for r in rows]
        axes[0].plot(steps, mu, marker="o", label="model utility")
        axes[0].plot(steps, [r["metrics"]["forget_prob"] for r in rows], marker="s", label="forget probability")
        axes[0].set_xlabel("step")
        axes[0].legend(fontsize=8)
        if all(v is not None for v in fq):
            axes[1].plot(mu, fq, marker="o")
            for s, x, y in zip(steps, mu, fq):
                axes[1].annotate(str(s), (x, y), fontsize=7)
            axes[1].set_yscale("log")
            axes[1].set_xlabel("model utility")
            axes[1].set_ylabel("forget quality (log)")
        else:
            axes[1].text(0.5, 0.5, "forget quality needs --retain-log", ha="center", va="center")
            axes[1].set_axis_off()
    else:
        for k in keys:
            axes[0 if " avg@" in k else 1].plot(steps, [r["metrics"][k] for r in rows], marker="o", label=k)
        for ax, what in zip(axes, ("avg@n", "pass@n")):
            ax.set_xlabel("step")
            ax.set_ylabel(what)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=110)
    plt.close(fig)
