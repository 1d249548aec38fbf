"""Fault injection: kill -9 every long stage at random points, rerun, compare with an uninterrupted run.

    python benchmarks/faults.py [--kills 5] [--prompts 12] [--seed 0] [--stages rollout,math_eval,...]

Stages: rollout, math eval, TOFU eval, NPO training, offline NFT training, online NGRPO training (TRL's
GRPO machinery: sampling inside training), the iterative loop. Each runs once
uninterrupted (the reference); then, per kill, the same command into a fresh folder is killed (SIGKILL) after
a random delay within the reference's wall time (even kills) or right after a random number of its shards /
checkpoints is written (odd kills), killed once more during its rerun (odd kills), and finally rerun to the
end (training with ``--resume`` when a complete checkpoint exists). The finished folder must hold exactly the
reference's outcome: rollout: every labeled row; evals: the samples and the metrics, timings aside; training:
the saved weights (max |difference| <= 1e-6); loop: the last iteration's rows and weights.
The models are small random Qwen2s (what is measured is recovery, not accuracy).
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
_TIMING = {"seconds", "tokens_per_second", "generate_seconds", "verifier_seconds", "elapsed_seconds", "timings",
           "seconds_per_set", "threads"}
STAGES = ("rollout", "math_eval", "tofu_eval", "train_npo", "train_nft_offline", "train_ngrpo", "loop")


def results_section(r: dict) -> str:
    rows = [[stage, s["kills"], s["killed_mid_run"], s["equal"],
             "-" if s.get("max_weight_diff") is None else f"{s['max_weight_diff']:.1e}", s["reference_seconds"]]
            for stage, s in r["stages"].items()]
    return section(
        "Fault injection: kill -9 and rerun (`benchmarks/faults.py`)",
        f"{r['prompts']} prompts x n={r['n']} on small random models; each kill is a SIGKILL at a random moment "
        "or after a random number of shards / checkpoints (those killed a second time during their rerun), then a "
        "rerun to the end (training: `--resume` when a complete checkpoint exists), compared with an uninterrupted "
        "run: rows and metrics exactly (the run's own folder name aside), weights within 1e-6.",
        ["stage", "kills", "runs actually killed mid-way", "reruns equal to the reference",
         "max weight difference", "reference s"],
        rows)


def _model(root: Path, texts: list[str] | None = None, name: str = "model") -> str:
    from negtune.models.tiny import TinySize, build_model, train_tokenizer

    tok = train_tokenizer(texts or ["Ava has 3 coins. What is 2+2? \\boxed{4} Then Ben buys 4 more."] * 20,
                          vocab_size=320)
    path = root / name
    build_model(tok, TinySize(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                              intermediate_size=64), seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def length_parity(completion: str, answer: str) -> float:
    """The loop's and the labeled rollout's reward (``--verifier faults:length_parity``): splits groups whatever
    the random model says, so NFT has data to train on (the ``math`` verifier would find every group wrong)."""
    return float(len(completion) % 2 == 0)


def _command(stage: str, ctx: dict, out: Path, n: int) -> list[str]:
    cli = [sys.executable, "-m", "negtune.cli"]
    common = ["--model", ctx["model"], "--out", str(out), "--n", str(n), "--max-new-tokens", "24", "--engine", "hf",
              "--verify-workers", "0", "--no-progress", "--batch-size", "2"]
    train = ["--output_dir", str(out), "--max_steps", "12", "--save_strategy", "steps", "--save_steps", "3",
             "--use_cpu", "true", "--bf16", "false", "--disable_tqdm", "true", "--report_to", "none",
             "--per_device_train_batch_size", "4", "--logging_steps", "1", "--seed", "0"]
    if stage == "rollout":
        return [*cli, "rollout", "--dataset", ctx["data"], "--shard-size", "2", *common]
    if stage == "math_eval":
        return [*cli, "eval", "math", "--benchmarks", ctx["data"], *common]
    if stage == "tofu_eval":
        return [*cli, "eval", "tofu", "--model", ctx["facts_model"], "--tofu-root", ctx["tofu"], "--forget-split",
                "forget05", "--out", str(out), "--max-new-tokens", "8", "--no-progress", "--batch-size", "4"]
    if stage == "train_npo":
        return [*cli, "train", "npo", "--model_name_or_path", ctx["facts_model"], "--tofu_root", ctx["tofu"],
                "--forget", "forget05", "--ref_cache_dir", str(out.parent / f"{out.name}-cache"), *train]
    if stage == "train_nft_offline":
        return [*cli, "train", "nft_offline", "--model_name_or_path", ctx["model"], "--dataset", ctx["rollout"],
                *train]
    if stage == "train_ngrpo":  # online (TRL's GRPO machinery): a rollout of 2 prompts x 4 feeds 2 updates
        return [*cli, "train", "ngrpo", "--model_name_or_path", ctx["model"], "--dataset", ctx["data"],
                "--verifier", "faults:length_parity", "--num_generations", "4", "--updates_per_generation", "2",
                "--max_completion_length", "24", "--learning_rate", "1e-3", *train]
    return [*cli, "loop", "--model", ctx["model"], "--dataset", ctx["data"], "--out", str(out), "--iterations", "2",
            "--method", "nft", "--n", "4", "--max-new-tokens", "24", "--max-steps", "3", "--batch-size", "4",
            "--use-cpu", "--no-progress", "--seed", "0", "--verifier", "faults:length_parity"]


def _resumable(stage: str, cmd: list[str], out: Path) -> list[str]:
    """A rerun of a training command resumes from the newest complete checkpoint, when there is one."""
    if not stage.startswith("train_"):
        return cmd
    from negtune.data.io import DataError
    from negtune.train import resume_checkpoint

    try:
        resume_checkpoint(str(out))
    except DataError:
        return cmd
    return [*cmd, "--resume"]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(next(p for p in (folder / "model.safetensors", folder / "adapter_model.safetensors")
                          if p.exists()))


def _outcome(stage: str, out: Path):
    from negtune.data.schema import read_labeled

    if stage == "rollout":
        return sorted(read_labeled(out), key=lambda r: (r["prompt_id"], r["sample_idx"]))
    if stage == "math_eval":
        results = json.loads((out / "results.json").read_text())
        metrics = {b: {k: v for k, v in m.items() if k not in _TIMING} for b, m in results["benchmarks"].items()}
        return metrics, results["average"], (out / "samples.jsonl").read_text()
    if stage == "tofu_eval":
        results = (out / "results.json").read_text().replace(str(out), "OUT")  # settings name the run's folder
        return json.dumps({k: v for k, v in json.loads(results).items() if k not in _TIMING}, sort_keys=True)
    if stage == "loop":
        last = sorted(out.glob("iter-*"))[-1]
        rows = sorted(read_labeled(last / "rollout"), key=lambda r: (r["prompt_id"], r["sample_idx"]))
        for r in rows:  # the sampler's path names the run's own folder: compare it relative to that folder
            r["meta"] = r["meta"].replace(str(out), "OUT")
        return rows, _weights(Path(json.loads((last / "DONE.json").read_text())["model"]))
    return _weights(out)


def _max_weight_diff(a, b) -> float | None:
    """Largest |difference| between the weights of two outcomes (None when the stage saves no weights)."""
    import torch

    if isinstance(a, tuple):
        diffs = [d for x, y in zip(a, b) if (d := _max_weight_diff(x, y)) is not None]
        return max(diffs) if diffs else None
    if isinstance(a, dict) and a and isinstance(next(iter(a.values())), torch.Tensor) and a.keys() == b.keys():
        return max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    return None


def _equal(a, b) -> bool:
    """Exact for rows and metrics; weights within 1e-6 (a resumed run's float sums may be ordered differently)."""
    import torch

    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and a and isinstance(next(iter(a.values())), torch.Tensor):
        return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    return a == b


def _run(cmd: list[str], kill_after: float | None = None, out: Path | None = None, shards: int = 0) -> bool:
    """Run ``cmd``; SIGKILL it after ``kill_after`` seconds, or once ``out`` holds ``shards`` finished shards
    (any depth). True when it was killed before finishing."""
    here = str(Path(__file__).resolve().parent)  # for --verifier faults:length_parity
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get(
        "PYTHONPATH")]))}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    while p.poll() is None:
        late = kill_after is not None and time.monotonic() - start >= kill_after
        done = len(list(out.rglob("shard-*.parquet"))) + len(list(out.rglob("checkpoint-*"))) if shards else 0
        if late or (shards and out is not None and done >= shards):
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
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ", ".join(STAGES))
    args = ap.parse_args()

    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith
    from negtune.data.tasks.facts import make_facts, write_tofu_synthetic

    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="negtune-faults-"))
    tofu = write_tofu_synthetic(root / "tofu")
    facts_text = [r["question"] + " " + r["answer"] for rows in make_facts(20, 0).values() for r in rows][:200]
    ctx = {"model": _model(root), "data": str(root / "arith.jsonl"), "tofu": str(tofu),
           "facts_model": _model(root, facts_text, "facts-model")}
    write_jsonl(ctx["data"], make_arith(args.prompts, seed=7, difficulty=1))
    # offline NFT trains on a labeled rollout: one made here, outside the measured stages
    _run([*_command("rollout", ctx, root / "labeled", 4), "--verifier", "faults:length_parity"])
    ctx["rollout"] = str(root / "labeled")
    stages = {}
    for stage in [s for s in args.stages.split(",") if s]:
        if stage not in STAGES:
            raise SystemExit(f"--stages: unknown stage {stage!r}; known: {', '.join(STAGES)}")
        t0 = time.monotonic()
        _run(_command(stage, ctx, root / stage / "reference", args.n))
        ref_s = time.monotonic() - t0
        reference = _outcome(stage, root / stage / "reference")
        parts = 4 if stage.startswith("train_") else max(1, args.prompts // 2 - 1)  # checkpoints or shards
        killed = equal = 0
        diffs = []
        for k in range(args.kills):
            out = root / stage / f"kill-{k}"
            cmd = _command(stage, ctx, out, args.n)
            if k % 2 == 0:  # a random moment (start-up, model load, generation, training, writing)
                killed += _run(cmd, kill_after=rng.uniform(0.1, 1) * ref_s)
            else:  # right after a random number of shards / checkpoints are written
                killed += _run(cmd, out=out, shards=rng.randint(1, parts))
            if k % 2:  # killed again while resuming
                _run(_resumable(stage, cmd, out), kill_after=rng.uniform(0.3, 1.0) * ref_s)
            _run(_resumable(stage, cmd, out))
            outcome = _outcome(stage, out)
            equal += _equal(outcome, reference)
            if (d := _max_weight_diff(outcome, reference)) is not None:
                diffs.append(d)
        stages[stage] = {"kills": args.kills, "killed_mid_run": killed, "equal": equal,
                         "reference_seconds": round(ref_s, 1), "max_weight_diff": max(diffs) if diffs else None}
    write_result({"prompts": args.prompts, "n": args.n, "stages": stages}, args.json)


if __name__ == "__main__":
    main()
