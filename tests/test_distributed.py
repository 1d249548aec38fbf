"""Two-process DDP on CPU (gloo) through torchrun: the same entry point `accelerate launch` uses on GPUs.

The NGRPO run covers the part that must be right under data parallelism: group advantages are computed over
the rewards gathered from every rank, then sliced back to each rank's own samples.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from negtune.data.io import write_jsonl
from negtune.data.tasks import make_arith
from negtune.data.tasks.facts import write_tofu_synthetic

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _torchrun(args, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "negtune.train", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("method", ["npo", "ngrpo"])
def test_two_process_ddp(method, tiny_facts_model_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    if method == "npo":
        tofu = write_tofu_synthetic(tmp_path / "tofu")
        args = [method, "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tiny_facts_model_dir),
                "--tofu_root", str(tofu)]
    else:
        write_jsonl(tmp_path / "a.jsonl", make_arith(16, seed=2, difficulty=1))
        args = [method, "--config", str(RECIPES / "ngrpo/tiny.yaml"), "--model_name_or_path", str(tiny_model_dir),
                "--dataset", str(tmp_path / "a.jsonl"), "--max_completion_length", "32"]
    log = _torchrun([*args, "--output_dir", str(out), "--max_steps", "2", "--disable_tqdm", "true"], tmp_path)
    assert log.count("saved ") == 1  # rank 0 alone reports and writes
    assert (out / "README.md").exists()
    assert (out / "adapter_model.safetensors").exists() or (out / "model.safetensors").exists()
