"""Run every benchmark in this folder and rewrite ``benchmarks/RESULTS.md`` with the figures of this run.

    python benchmarks/run_all.py [--quick] [--only rollout,tofu_eval] [--out RESULTS.md]   (or: negtune bench)

Each benchmark script (``SCRIPTS``) says what it runs (``RUNS``: a section name, full and ``--quick``
arguments) and renders its own section (``results_section``), see ``common.py``; this runner only runs each in
its own process (it writes JSON) and puts the sections together with the machine and library versions, so every
number in RESULTS.md comes from one run of this script. ``--quick`` uses small settings (a smoke test of the
suite: ratios are noisier); the default settings are the ones RESULTS.md reports. A benchmark that fails is
reported as failed, the others still run; one that cannot run here (``gpu_check`` without CUDA) says so in its
section, or leaves an earlier run's figures in place.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from types import ModuleType

from common import Run

HERE = Path(__file__).resolve().parent
BLOCK = re.compile(r"<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->", re.S)
MANUAL = re.compile(r"<!-- manual -->.*?<!-- /manual -->", re.S)

# the benchmark scripts, in the order of their sections in RESULTS.md; each defines RUNS and results_section
# (see common.py); tests/test_benchmarks.py checks that this is every script in the folder
SCRIPTS = ("rollout", "vllm_cpu", "npo_memory", "rlvr_speed", "rlvr_quality", "negatives_unlearning",
           "open_unlearning_tofu", "negatives_unlikelihood", "negatives_unlikelihood_smollm2", "negatives_rlvr", "negatives_nat", "negatives_token_forget", "negatives_negassist", "negatives_trap", "negatives_steps", "likra_learning", "goldfish_memorisation", "tofu_eval", "busy", "gpu_check",
           "faults")
HELPERS = ("common", "step_timer", "open_unlearning", "run_all")  # the modules in this folder that are not benchmarks


def benchmarks() -> dict[str, tuple[ModuleType, Run]]:
    """Section name -> (its script's module, its Run), in RESULTS.md order."""
    found = {}
    for script in SCRIPTS:
        module = importlib.import_module(script)
        for spec in module.RUNS:
            found[spec.name] = (module, spec)
    return found


def versions() -> str:
    import importlib.metadata as md

    names = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify")
    found = []
    for n in names:
        try:
            found.append(f"{n} {md.version(n)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(found)


def machine() -> str:
    import os

    mem = ""
    try:
        kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, {gpu}, Python {platform.python_version()}"


def run(module: ModuleType, spec: Run, quick: bool, workdir: Path) -> tuple[dict | None, str, float]:
    out = workdir / f"{spec.name}.json"
    cmd = [sys.executable, module.__file__, *(spec.quick if quick else spec.full), "--json", str(out)]
    t0 = time.monotonic()
    print(f"== {spec.name}: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr or done.stdout)[-1500:]
        print(f"   FAILED ({done.returncode}) after {seconds:.0f} s:\n{tail}", flush=True)
        return None, tail, seconds
    print(f"   done in {seconds:.0f} s", flush=True)
    return json.loads(out.read_text()), " ".join(cmd[2:-2]), seconds


def block(module: ModuleType, spec: Run, result: dict | None, detail: str, seconds: float, quick: bool) -> str:
    """The section of one run, between its markers: the script's own Markdown, when and how it was measured,
    and the raw JSON."""
    if result is None:
        body = [f"## {spec.name}: FAILED", "", "```", detail, "```"]
    else:
        how = "`" + " ".join(filter(None, ["python", f"benchmarks/{Path(module.__file__).name}", detail])) + "`"
        body = [module.results_section(result), ""]
        if "skipped" in result:
            body += [f"Checked {date.today().isoformat()} with {how}."]
        else:
            body += [f"Measured {date.today().isoformat()}{' (--quick)' if quick else ''} with {how} "
                     f"({seconds:.0f} s).", "", "<details><summary>raw JSON</summary>", "", "```json",
                     json.dumps(result, indent=2), "```", "</details>"]
    return "\n".join([f"<!-- bench:{spec.name} -->", *body, f"<!-- /bench:{spec.name} -->"])


def main(argv: list[str] | None = None) -> int:
    known = benchmarks()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small settings (smoke test of the suite)")
    ap.add_argument("--only", help=f"comma-separated subset of {', '.join(known)}")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    a = ap.parse_args(argv)
    names = a.only.split(",") if a.only else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    work = Path(tempfile.mkdtemp(prefix="negtune-bench-"))
    old = Path(a.out).read_text() if Path(a.out).exists() else ""
    blocks = {m.group(1): m.group(0) for m in BLOCK.finditer(old)}  # earlier runs' sections
    manual = MANUAL.findall(old)  # hand-recorded figures (GPU checks, verification) are kept as they are
    failed = []
    for name in names:
        module, spec = known[name]
        result, detail, seconds = run(module, spec, a.quick, work)
        if result is None:
            failed.append(name)
        elif "skipped" in result:
            kept = "Measured " in blocks.get(name, "")
            print(f"   skipped: {result['skipped']}" + ("; the figures of an earlier run are kept" if kept else ""),
                  flush=True)
            if kept:
                continue
        blocks[name] = block(module, spec, result, detail, seconds, a.quick)
    text = ["# Benchmark results", "",
            "Written by `benchmarks/run_all.py` (`negtune bench`): each section's figures were measured side by side "
            "in one run of its script (ratios, not absolute times, carry over between machines); each says when.", "",
            f"- Machine of the latest run: {machine()}", f"- Versions: {versions()}", ""]
    for name in known:
        if name in blocks:
            text += [blocks[name], ""]
    text += [m.strip() + "\n" for m in manual]
    Path(a.out).write_text("\n".join(text) + "\n")
    print(f"wrote {a.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
