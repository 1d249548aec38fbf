"""A busy machine: negtune's stages idle and beside one busy process per core, with negtune's thread choice and
with torch's defaults (what negtune did before it chose its threads), in one run.

    python benchmarks/busy.py [--steps 200] [--repeats 3] [--demo] [--json OUT]

"Busy" = one pure-Python busy loop per core (``while True: pass``), started before the measured command and
stopped after it. Measured:

- a trainer: ``negtune train ga`` (the tiny GA recipe, LoRA, ``--steps`` steps on the synthetic TOFU forget10),
  its ``train_runtime`` (the training loop alone) and the whole command's wall time, ``--repeats`` times, the
  four settings interleaved;
- with ``--demo``: every stage of ``negtune demo --quick`` (fresh output folders), idle with both settings and
  busy with negtune's (busy with torch's defaults is not run: see the issue-18 figures in RESULTS.md).

"torch defaults" = ``OMP_NUM_THREADS`` = the core count (torch's own choice), which negtune then keeps as a
request; "negtune" = no variable set.
Target (issue 18): negtune beside one busy process per core <= 2.5x its idle time (a fair share is 2x), and no
stage slower at idle than with torch's defaults.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Run, parser, section, write_result

RUNS = (Run("busy", full=("--steps", "200", "--repeats", "3", "--demo"), quick=("--steps", "20", "--repeats", "1")),)
SETTINGS = {"negtune": {}, "torch defaults": {"OMP_NUM_THREADS": str(os.cpu_count() or 1)}}


def results_section(r: dict) -> str:
    rows = []
    for what, key in (("tiny GA recipe: training loop", "train_runtime"), ("tiny GA recipe: whole command", "wall")):
        t = r["trainer"]
        idle_n, busy_n = t["negtune"]["idle"][key], t["negtune"]["busy"][key]
        idle_t, busy_t = t["torch defaults"]["idle"][key], t["torch defaults"]["busy"][key]
        rows.append([what, idle_t, busy_t, f"{busy_t / idle_t:.1f}x", idle_n, busy_n,
                     f"**{busy_n / idle_n:.2f}x**", f"{idle_n / idle_t:.2f}"])
    for stage, v in r.get("demo", {}).get("stages", {}).items():
        rows.append([f"demo --quick: {stage}", v["torch_idle"], "", "", v["negtune_idle"], v["negtune_busy"],
                     f"**{v['negtune_busy'] / max(v['negtune_idle'], 0.1):.2f}x**",
                     f"{v['negtune_idle'] / max(v['torch_idle'], 0.1):.2f}"])
    return section(
        "Busy machine: idle vs one busy process per core (`benchmarks/busy.py`)",
        f"{r['cores']} cores; busy = {r['cores']} `while True: pass` processes. Seconds (median of "
        f"{r['repeats']} for the trainer; the demo once). negtune: threads chosen from the free cores, measured "
        "again during every stage (at most every 5 s); torch defaults: one thread per core. Target: negtune busy/idle <= 2.5x, negtune idle / torch idle <= 1 (noise: "
        "about 10%).",
        ["stage", "torch defaults idle", "torch defaults busy", "slowdown", "negtune idle", "negtune busy",
         "slowdown", "negtune idle / torch idle"], rows)


@contextlib.contextmanager
def busy(on: bool):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)] \
        if on else []
    try:
        if procs:
            time.sleep(1.0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def env_for(setting: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "NEGTUNE_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    return {**env, "HF_HUB_OFFLINE": "1", **SETTINGS[setting]}


def negtune_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "negtune.cli", *args]


def train_ga(work: Path, model: str, tofu: str, steps: int, setting: str) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "ga" / "tiny.yaml"
    cmd = negtune_cmd("train", "ga", "--config", str(recipe), "--model_name_or_path", model, "--tofu_root", tofu,
                      "--output_dir", str(out), "--max_steps", str(steps), "--logging_steps", str(steps),
                      "--disable_tqdm", "true", "--report_to", "none")
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env_for(setting), capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    runtime = re.search(r"'train_runtime': '?([0-9.]+)", done.stdout + done.stderr)
    return {"train_runtime": float(runtime[1]), "wall": round(wall, 2)}


def demo_stages(work: Path, setting: str) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    done = subprocess.run(negtune_cmd("demo", "--quick", "--out", str(out)), env=env_for(setting),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"negtune demo failed:\n{done.stderr[-2000:]}")
    return json.loads((out / "demo.json").read_text())["stage_seconds"]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--steps", type=int, default=200, help="training steps of the GA recipe")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--demo", action="store_true", help="also time every stage of `negtune demo --quick`")
    a = ap.parse_args()

    from negtune.data.tasks.facts import write_tofu_synthetic
    from negtune.models.tiny import create_tiny_model

    work = Path(tempfile.mkdtemp(prefix="negtune-busy-"))
    model, tofu = str(work / "tiny-facts"), str(work / "tofu")
    create_tiny_model(model, task="facts", facts_steps=200)
    write_tofu_synthetic(tofu)
    runs: dict = {s: {"idle": [], "busy": []} for s in SETTINGS}
    for _ in range(a.repeats):
        for load in ("idle", "busy"):
            for setting in SETTINGS:
                with busy(load == "busy"):
                    runs[setting][load].append(train_ga(work, model, tofu, a.steps, setting))
                print(setting, load, runs[setting][load][-1], flush=True)
    median = lambda xs, k: round(statistics.median(x[k] for x in xs), 2)  # noqa: E731
    trainer = {s: {load: {k: median(v, k) for k in ("train_runtime", "wall")} for load, v in loads.items()}
               for s, loads in runs.items()}
    result = {"cores": os.cpu_count(), "steps": a.steps, "repeats": a.repeats, "trainer": trainer,
              "trainer_runs": runs}
    if a.demo:
        torch_idle = demo_stages(work, "torch defaults")
        negtune_idle = demo_stages(work, "negtune")
        with busy(True):
            negtune_busy = demo_stages(work, "negtune")
        result["demo"] = {"stages": {k: {"torch_idle": torch_idle[k], "negtune_idle": negtune_idle[k],
                                         "negtune_busy": negtune_busy[k]} for k in negtune_idle},
                          "total": {"torch_idle": round(sum(torch_idle.values()), 1),
                                    "negtune_idle": round(sum(negtune_idle.values()), 1),
                                    "negtune_busy": round(sum(negtune_busy.values()), 1)}}
    write_result(result, a.json)


if __name__ == "__main__":
    main()
