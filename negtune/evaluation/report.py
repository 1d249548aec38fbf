"""Markdown reports and plots for evaluation results (math and TOFU), and side-by-side comparisons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from negtune.data.io import DataError


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (every report plot goes through it)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if (value != 0 and abs(value) < 1e-3) else f"{value:.3f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def settings_block(settings: dict[str, Any]) -> str:
    """A run's settings as a fenced JSON block for a Markdown report."""
    return "```json\n" + json.dumps(settings, indent=2) + "\n```"


def write_math_report(results: dict[str, Any], out: Path) -> Path:
    """``report.md`` with the metric table, the settings, an accuracy bar chart and pass@k curves."""
    plt = pyplot()
    n = results["settings"]["n"]
    benches = results["benchmarks"]
    names = list(benches)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names) + 2), 3.5))
    width = 0.4
    xs = range(len(names))
    ax.bar([x - width / 2 for x in xs], [benches[b][f"avg@{n}"] for b in names], width, label=f"avg@{n}")
    ax.bar([x + width / 2 for x in xs], [benches[b][f"maj@{n}"] for b in names], width, label=f"maj@{n}")
    ax.set_xticks(list(xs), names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(plots / "accuracy.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for b in names:
        ks = sorted(int(k) for k in benches[b]["pass@k"])
        ax.plot(ks, [benches[b]["pass@k"][str(k)] for k in ks], marker="o", label=b)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (unbiased)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(plots / "pass_at_k.png", dpi=120)
    plt.close(fig)

    ks = [str(k) for k in range(1, n + 1)]
    header = ["benchmark", "problems", f"avg@{n}", f"maj@{n}", *[f"pass@{k}" for k in ks], "undecidable", "truncated"]
    rows = [[b, m["problems"], m[f"avg@{n}"], m[f"maj@{n}"], *[m["pass@k"][k] for k in ks],
             f"{m['undecidable']}/{m['samples']}", f"{m['truncated']}/{m['samples']}"] for b, m in benches.items()]
    avg = results["average"]
    rows.append(["**average**", "", avg[f"avg@{n}"], avg[f"maj@{n}"], *[""] * n, "", ""])
    s = results["settings"]
    text = [
        f"# Math evaluation: {s['model']}" + (f" + {s['adapter']}" if s.get("adapter") else ""),
        "",
        f"{n} samples per problem, temperature {s['temperature']}, top-p {s['top_p']}, "
        f"max {s['max_new_tokens']} new tokens, template `{s['template']}`, verifier `{s['verifier']}`, "
        f"engine `{s['engine']}`, seed {s['seed']}.",
        "pass@k is the unbiased estimator 1 − C(n−c, k)/C(n, k); maj@n takes the most frequent extracted answer, "
        "answers the verifier finds equal being one vote (math-verify: 1/2 = \\frac{1}{2}; ties: the one sampled "
        "first); undecidable = the verifier could not decide (timeout, unparsable gold).",
        "",
        markdown_table(header, rows),
        "",
        "![accuracy](plots/accuracy.png)",
        "![pass@k](plots/pass_at_k.png)",
        "",
        "## Settings",
        settings_block(s),
        "",
        "Per-problem samples: `samples.jsonl`; raw labeled rollouts: `rollouts/<benchmark>/`.",
    ]
    path = out / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path


def _read_results(run: str | Path) -> dict[str, Any]:
    path = Path(run) / "results.json" if Path(run).is_dir() else Path(run)
    if not path.exists():
        raise DataError(f"{path}: no results.json (give a folder written by `negtune eval math|tofu`)")
    return json.loads(path.read_text())


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``{"benchmark/metric": value}`` for a math results.json, or the metrics of a TOFU results.json."""
    if "benchmarks" in results:
        n = results["settings"]["n"]
        flat = {}
        for b, m in results["benchmarks"].items():
            flat[f"{b}/avg@{n}"] = m[f"avg@{n}"]
            flat[f"{b}/maj@{n}"] = m[f"maj@{n}"]
            flat[f"{b}/pass@{n}"] = m["pass@k"][str(n)]
        flat.update({f"average/{k}": v for k, v in results["average"].items()})
        return flat
    return {k: v for k, v in results["metrics"].items() if isinstance(v, (int, float)) or v is None}


def compare_runs(run_a: str | Path, run_b: str | Path, out: str | Path | None = None) -> str:
    """A Markdown table of two runs side by side (A, B, B − A) for every metric both have; written to
    ``out/compare.md`` with a bar chart when ``out`` is given."""
    results_a, results_b = _read_results(run_a), _read_results(run_b)
    a, b = flat_metrics(results_a), flat_metrics(results_b)
    keys = [k for k in a if k in b]
    kind = lambda r: "a math eval" if "benchmarks" in r else "a TOFU eval"  # noqa: E731
    if not keys and kind(results_a) != kind(results_b):
        raise DataError(f"{run_a} is {kind(results_a)} and {run_b} {kind(results_b)}: no metric to compare")
    if not keys:
        raise DataError(f"{run_a} and {run_b} have no metric in common (different benchmarks or n?)")
    diff = lambda x, y: (y - x) if (x is not None and y is not None) else None  # noqa: E731
    rows = [[k, a[k], b[k], diff(a[k], b[k])] for k in keys]
    text = f"# Comparison\n\nA = `{run_a}`, B = `{run_b}`\n\n" + markdown_table(["metric", "A", "B", "B − A"], rows)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        plt = pyplot()
        shown = [k for k in keys if a[k] is not None and b[k] is not None]
        fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(shown) + 2), 3.8))
        xs = range(len(shown))
        ax.bar([x - 0.2 for x in xs], [a[k] for k in shown], 0.4, label="A")
        ax.bar([x + 0.2 for x in xs], [b[k] for k in shown], 0.4, label="B")
        ax.set_xticks(list(xs), shown, rotation=60, ha="right", fontsize=7)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "compare.png", dpi=120)
        plt.close(fig)
        (out / "compare.md").write_text(text + "\n\n![comparison](compare.png)\n")
    return text
