"""Fault injection: kill -9 a rollout and a math eval at random points, rerun, compare with an uninterrupted run.

    python benchmarks/faults.py [--kills 5] [--prompts 12] [--seed 0]

Each stage runs once uninterrupted (the reference); then, per kill, the same command into a fresh folder is
killed (SIGKILL) after a random delay within the reference's wall time (even kills) or right after a random
number of its 2-prompt shards is written (odd kills), killed once more during its rerun (odd kills), and
finally rerun to the end. The finished folder must hold exactly the reference's rows
(rollout: every labeled row; math eval: ``samples.jsonl`` and the metrics of ``results.json``, timings aside).
The model is a small random Qwen2 (completions run to --max-new-tokens: what is measured is recovery, not
accuracy).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Run, parser, section, write_result

RUNS = (Run("faults", full=("--kills", "5", "--prompts", "12"), quick=("--kills", "2", "--prompts", "6")),)
_TIMING = {"seconds", "tokens_per_second", "generate_seconds", "verifier_seconds"}


def results_section(r: dict) -> str:
    rows = [[stage, s["kills"], s["killed_mid_run"], s["equal"], s["reference_seconds"]]
            for stage, s in r["stages"].items()]
    return section(
        "Fault injection: kill -9 and rerun (`benchmarks/faults.py`)",
        f"{r['prompts']} prompts x n={r['n']} on a small random model; each kill is a SIGKILL at a random moment "
        "or after a random number of shards (those killed a second time during their rerun), then a rerun to the end, compared "
        "row for row with an uninterrupted run.",
        ["stage", "kills", "runs actually killed mid-way", "reruns equal to the reference", "reference s"],
        rows)


def _model(root: Path) -> str:
    from negtune.models.tiny import TinySize, build_model, train_tokenizer

    tok = train_tokenizer(["Ava has 3 coins. What is 2+2? \\boxed{4} Then Ben buys 4 more."] * 20, vocab_size=320)
    path = root / "model"
    build_model(tok, TinySize(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                              intermediate_size=64), seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _command(stage: str, model: str, data: str, out: Path, n: int) -> list[str]:
    common = ["--model", model, "--out", str(out), "--n", str(n), "--max-new-tokens", "24", "--engine", "hf",
              "--verify-workers", "0", "--no-progress", "--batch-size", "2"]
    if stage == "rollout":
        return [sys.executable, "-m", "negtune.cli", "rollout", "--dataset", data, "--shard-size", "2", *common]
    return [sys.executable, "-m", "negtune.cli", "eval", "math", "--benchmarks", data, *common]


def _outcome(stage: str, out: Path):
    if stage == "rollout":
        from negtune.data.schema import read_labeled

        return sorted(read_labeled(out), key=lambda r: (r["prompt_id"], r["sample_idx"]))
    results = json.loads((out / "results.json").read_text())
    metrics = {b: {k: v for k, v in m.items() if k not in _TIMING} for b, m in results["benchmarks"].items()}
    return metrics, results["average"], (out / "samples.jsonl").read_text()


def _run(cmd: list[str], kill_after: float | None = None, out: Path | None = None, shards: int = 0) -> bool:
    """Run ``cmd``; SIGKILL it after ``kill_after`` seconds, or once ``out`` holds ``shards`` finished shards
    (any depth). True when it was killed before finishing."""
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    while p.poll() is None:
        late = kill_after is not None and time.monotonic() - start >= kill_after
        if late or (shards and out is not None and len(list(out.rglob("shard-*.parquet"))) >= shards):
            p.send_signal(signal.SIGKILL)
            p.wait()
            return True
        time.sleep(0.02)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.read().decode()[-2000:]}")
    return False


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith

    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="negtune-faults-"))
    model = _model(root)
    data = root / "arith.jsonl"
    write_jsonl(data, make_arith(args.prompts, seed=7, difficulty=1))
    stages = {}
    for stage in ("rollout", "math_eval"):
        t0 = time.monotonic()
        _run(_command(stage, model, str(data), root / stage / "reference", args.n))
        ref_s = time.monotonic() - t0
        reference = _outcome(stage, root / stage / "reference")
        killed = equal = 0
        for k in range(args.kills):
            out = root / stage / f"kill-{k}"
            if k % 2 == 0:  # a random moment (start-up, model load, generation, writing)
                killed += _run(_command(stage, model, str(data), out, args.n), kill_after=rng.uniform(0.1, 1) * ref_s)
            else:  # mid-generation: right after a random number of shards are written
                killed += _run(_command(stage, model, str(data), out, args.n), out=out,
                               shards=rng.randint(1, max(1, args.prompts // 2 - 1)))
            if k % 2:  # killed again while resuming
                _run(_command(stage, model, str(data), out, args.n), kill_after=rng.uniform(0.3, 1.0) * ref_s)
            _run(_command(stage, model, str(data), out, args.n))
            equal += _outcome(stage, out) == reference
        stages[stage] = {"kills": args.kills, "killed_mid_run": killed, "equal": equal,
                         "reference_seconds": round(ref_s, 1)}
    write_result({"prompts": args.prompts, "n": args.n, "stages": stages}, args.json)


if __name__ == "__main__":
    main()
