"""Two-process data parallelism on CPU (gloo) through `accelerate launch`, the way users launch on GPUs.

`accelerate launch --cpu --num_processes 2` starts only ONE process (accelerate's CPU launcher runs the script
once unless it goes through mpirun), so the tests launch with the project's DDP config instead:
`accelerate launch --config_file recipes/accelerate/ddp.yaml --num_processes 2 --mixed_precision no`. That
config's MULTI_GPU type makes accelerate start its multi-process launcher (torch.distributed.run, 2 processes)
even without a GPU; the tiny recipes' `use_cpu: true` then puts each process on the CPU, where the process group
is gloo. `--mixed_precision no` overrides the config's bf16, meant for GPUs.

The NGRPO run covers the part that must be right under data parallelism: group advantages are computed over
the rewards gathered from every rank, then sliced back to each rank's own samples. The NFT run adds dynamic
sampling: filtered groups are replaced from further rounds, chosen on gathered rewards and re-distributed. The NPO run checks that
two processes with 2 examples each save the same adapter as one process with 4.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import negtune.train as train_mod
from negtune.data.io import write_jsonl
from negtune.data.tasks import make_arith
from negtune.data.tasks.facts import write_tofu_synthetic

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def _launch(args, tmp_path, module="negtune.train"):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",  # tests/ for the test-only verifiers
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(RECIPES / "accelerate/ddp.yaml"),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", "0",
           "-m", module, *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("method", ["npo", "ngrpo", "nft"])
def test_two_process_ddp(method, tiny_facts_model_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    if method == "npo":
        tofu = write_tofu_synthetic(tmp_path / "tofu")
        args = [method, "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tiny_facts_model_dir),
                "--tofu_root", str(tofu)]
    else:  # off-policy (4 updates per rollout) with 2 x 8 completions per step: a rollout is 16 prompts
        write_jsonl(tmp_path / "a.jsonl", make_arith(16, seed=2, difficulty=1))
        args = [method, "--config", str(RECIPES / f"{method}/tiny.yaml"), "--model_name_or_path", str(tiny_model_dir),
                "--dataset", str(tmp_path / "a.jsonl"), "--max_completion_length", "32",
                "--per_device_train_batch_size", "8"]
        if method == "nft":  # half the prompts give all-wrong groups: dynamic sampling refills across ranks
            args += ["--verifier", "rl_rewards:odd_answers_split"]
    log = _launch([*args, "--output_dir", str(out), "--max_steps", "2", "--disable_tqdm", "true"], tmp_path,
                  module="exit_threads")
    assert log.count("saved ") == 1  # rank 0 alone reports and writes
    # the process group is gone, threads and all, before interpreter teardown (issue 17, item 14)
    assert log.count("process-group threads left at exit: []") == 2, log[-3000:]
    assert (out / "README.md").exists()
    assert (out / "adapter_model.safetensors").exists() or (out / "model.safetensors").exists()
    if method == "nft":
        import json

        logged = json.loads((out / "trainer_state.json").read_text())["log_history"]
        assert any(h.get("sampling/rounds", 0) >= 2 for h in logged)


def test_two_processes_match_one_process_with_the_same_global_batch(tiny_facts_model_dir, tmp_path):
    """NPO (LoRA) on the synthetic TOFU forget10, 3 steps: 2 processes x 2 examples vs 1 process x 4.

    Same seed, so the same LoRA initialisation and the same shuffle (the Trainer's seedable sampler draws one
    permutation from the seed; accelerate hands rank r the batches r, r+2, ... of size 2 from it, so a global step
    sees exactly the 4 examples of the single process's batch). NPO's loss is a mean over the batch and DDP
    averages the two ranks' gradients, so the update is the same up to float summation order. Each forget row
    carries its paired retain row, so the pairing does not depend on the layout either.

    LoRA dropout is switched off (``--lora_dropout 0``; TRL's default is 0.05): its masks are drawn per process
    for the tensor shapes that process sees, so one 4-row batch and two 2-row batches get different masks, a
    genuine difference between the layouts (measured: 0.019 max |diff| with dropout, 1.4e-6 without).
    """
    tofu = write_tofu_synthetic(tmp_path / "tofu")
    common = ["npo", "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tiny_facts_model_dir),
              "--tofu_root", str(tofu), "--ref_cache_dir", str(tmp_path / "ref"), "--max_steps", "3",
              "--save_strategy", "steps", "--save_steps", "3", "--disable_tqdm", "true", "--seed", "3",
              "--lora_dropout", "0"]
    two, one, half = tmp_path / "two", tmp_path / "one", tmp_path / "half"
    log = _launch([*common, "--per_device_train_batch_size", "2", "--output_dir", str(two)], tmp_path)
    assert train_mod.main([*common, "--per_device_train_batch_size", "4", "--output_dir", str(one)]) == 0
    assert train_mod.main([*common, "--per_device_train_batch_size", "2", "--output_dir", str(half)]) == 0

    # both ranks stepped: each saved its RNG state in the step-3 checkpoint (and DDP would hang otherwise)
    ckpt = two / "checkpoint-3"
    assert (ckpt / "rng_state_0.pth").exists() and (ckpt / "rng_state_1.pth").exists()
    assert '"global_step": 3' in (ckpt / "trainer_state.json").read_text()
    # rank 0 alone writes the outputs: one report line, the same files as a single-process run
    assert log.count("saved adapter") == 1
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())

    a, b, c = (load_file(str(d / "adapter_model.safetensors")) for d in (two, one, half))
    assert a.keys() == b.keys() and a
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-4, f"2 x 2 vs 1 x 4: max |diff| {diff}"
    # and the comparison can tell: rank 0's half of the batch alone gives another adapter
    assert max((a[k] - c[k]).abs().max().item() for k in a) > 10 * max(diff, 1e-6)
    assert all(torch.isfinite(t).all() for t in a.values())


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """The other way to make a global batch: 2 accumulated micro-batches of 4 = one batch of 8 (one process).

    negtune's losses are batch means and ignore ``num_items_in_batch``: the Trainer must divide each micro-batch's
    loss by the accumulation steps (it skipped that for models whose forward takes loss kwargs, assuming the loss
    was normalised by the token count, which ours is not: the accumulated gradient was 2x). Plain SGD without
    clipping, so a wrong gradient scale shows.
    """
    from negtune.models.tiny import TinySize, build_model, train_tokenizer

    tok = train_tokenizer(["What is 2+2? \\boxed{4} wrong \\boxed{5}"] * 20, vocab_size=300)
    model = build_model(tok, TinySize(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=1, intermediate_size=64))
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    # every completion has the same number of tokens (one token per digit), so the token mean over 8 rows is
    # the mean of the two 4-row token means: the two layouts are then the same objective exactly
    rows = [{"prompt": f"What is {i}+0?", "completion": f"\\boxed{{{i}}}", "label": True} for i in range(8)]
    write_jsonl(tmp_path / "labeled.jsonl", rows)
    common = ["unlikelihood", "--model_name_or_path", str(tmp_path / "m"), "--dataset", str(tmp_path / "labeled.jsonl"),
              "--max_steps", "2", "--optim", "sgd", "--learning_rate", "0.5", "--max_grad_norm", "0", "--use_cpu",
              "true", "--report_to", "none", "--disable_tqdm", "true", "--seed", "0"]
    assert train_mod.main([*common, "--per_device_train_batch_size", "8", "--output_dir", str(tmp_path / "big")]) == 0
    assert train_mod.main([*common, "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                           "--output_dir", str(tmp_path / "acc")]) == 0
    big, acc, base = (load_file(str(d / "model.safetensors")) for d in (tmp_path / "big", tmp_path / "acc",
                                                                         tmp_path / "m"))
    moved = max((big[k] - base[k]).abs().max().item() for k in big)
    diff = max((big[k] - acc[k]).abs().max().item() for k in big)
    assert moved > 1e-2 and diff < 1e-5, (moved, diff)


def test_two_process_contrastive_keeps_one_discriminator(tiny_model_dir, labeled_rollout, tmp_path):
    """The contrastive trainer's online discriminator is no DDP module: its gradient (gathered over the 2
    accumulated micro-batches of each step) is all-reduced before its single Adam step per optimizer step, so
    both ranks, fed different batches, save the same discriminator in every checkpoint."""
    data, out = tmp_path / "labeled.parquet", tmp_path / "out"
    labeled_rollout.to_parquet(str(data))
    _launch(["contrastive", "--config", str(RECIPES / "contrastive/tiny.yaml"), "--model_name_or_path",
             str(tiny_model_dir), "--dataset", str(data), "--output_dir", str(out), "--max_steps", "2",
             "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--self_adversarial",
             "false", "--disc_warmup_steps", "0", "--save_strategy", "steps", "--save_steps", "2",
             "--disable_tqdm", "true"], tmp_path)
    ranks = [torch.load(out / "checkpoint-2" / f"negtune_state_{r}.pt", weights_only=True) for r in (0, 1)]
    for state in ranks:  # Adam ran once per optimizer step on each rank
        assert {int(s["step"]) for s in state["disc_opt"]["state"].values()} == {2}
    a, b = (state["discriminator"] for state in ranks)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
