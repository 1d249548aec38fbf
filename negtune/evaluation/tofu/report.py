"""``report.md`` and ``tofu_metrics.png`` of a TOFU evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from negtune.evaluation.report import markdown_table, pyplot, settings_block
from negtune.evaluation.tofu.metrics import SPLITS


def write_tofu_report(results: dict[str, Any], out: Path) -> Path:
    m = results["metrics"]
    rows = [[split.replace("_", " "), m[f"{split}_prob"], m[f"{split}_rouge"], m[f"{split}_truth_ratio"]]
            for split in SPLITS]
    fq = m.get("forget_quality")
    s = results["settings"]
    text = [
        f"# TOFU evaluation: {s['model']}" + (f" + {s['adapter']}" if s.get("adapter") else ""),
        "",
        f"Forget split `{s['forget_split']}`, template `{s['template']}`, greedy generations of at most "
        f"{s['max_new_tokens']} tokens; {sum(results['questions'].values())} questions in {results['seconds']} s.",
        "",
        f"**Forget quality**: {'missing' if fq is None else f'{fq:.4g}'}"
        + (f" ({results['notes']['forget_quality']})" if fq is None else " (KS-test p-value vs the retain model)"),
        f"**Model utility**: {m['model_utility']:.4f} (harmonic mean of the 9 retain/real-author/world-fact numbers)",
        "",
        markdown_table(["eval set", "probability", "ROUGE-L recall", "truth ratio"], rows),
        "",
        "Truth ratio: forget = mean(min(TR, 1/TR)), others = mean(max(0, 1 − TR)), TR = P̄(perturbed)/P̄(paraphrased).",
        "",
        "![TOFU metrics](tofu_metrics.png)",
        "",
        "## Settings",
        settings_block(s),
        "",
        "Per-example values (reusable as another run's `--retain-log`): `eval_log.json`.",
    ]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    xs = np.arange(len(SPLITS))
    for j, metric in enumerate(("prob", "rouge", "truth_ratio")):
        ax.bar(xs + (j - 1) * 0.27, [m[f"{sp}_{metric}"] for sp in SPLITS], 0.27, label=metric)
    ax.set_xticks(xs, [sp.replace("_", " ") for sp in SPLITS])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(f"model utility {m['model_utility']:.3f}, forget quality "
                 f"{'missing' if fq is None else f'{fq:.3g}'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "tofu_metrics.png", dpi=120)
    plt.close(fig)
    path = out / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path
