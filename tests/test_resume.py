"""`negtune train ... --resume`: an interrupted run resumed from its last checkpoint ends with the same weights as
an uninterrupted run.

Each case trains 6 steps with a checkpoint every 3 (uninterrupted), then trains again into another folder with
the same settings but stopped by a callback right after the step-3 checkpoint (so the LR schedule, which
depends on max_steps, is the same), then reruns the same command with ``--resume``. Both go through the CLI
entry point ``negtune.train.main``; the stop callback is added by wrapping ``build_trainer``. The datasets are
smaller than 6 batches, so the runs cross an epoch boundary (the resumed run must also reproduce the next
epoch's shuffle).
"""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import negtune.train as train_mod
from negtune.data.io import DataError
from negtune.data.tasks.facts import write_tofu_synthetic

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STEPS, SAVE_EVERY = 6, 3


class _StopAfter(TrainerCallback):
    """Simulates a kill right after the step-``n`` checkpoint (on_step_end runs before the save, so the
    checkpoint of step n is still written)."""

    def __init__(self, n: int):
        self.n = n

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.n:
            control.should_training_stop = True
        return control


def _run(argv, monkeypatch, stop_after=None):
    if stop_after is None:
        monkeypatch.setattr(train_mod, "build_trainer", _ORIGINAL_BUILD)
    else:
        def build(*args, **kwargs):
            trainer = _ORIGINAL_BUILD(*args, **kwargs)
            trainer.add_callback(_StopAfter(stop_after))
            return trainer

        monkeypatch.setattr(train_mod, "build_trainer", build)
    assert train_mod.main(argv) == 0


_ORIGINAL_BUILD = train_mod.build_trainer


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(str(folder / name))


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _check_resume(base_argv, tmp_path, monkeypatch, capsys, killed_during_save=False):
    full, cut = tmp_path / "full", tmp_path / "cut"
    common = [*base_argv, "--max_steps", str(STEPS), "--save_strategy", "steps", "--save_steps", str(SAVE_EVERY),
              "--logging_steps", "1", "--disable_tqdm", "true", "--report_to", "none", "--seed", "7"]
    _run([*common, "--output_dir", str(full)], monkeypatch)
    _run([*common, "--output_dir", str(cut)], monkeypatch, stop_after=SAVE_EVERY)
    assert sorted(p.name for p in cut.glob("checkpoint-*")) == [f"checkpoint-{SAVE_EVERY}"]
    interrupted = _weights(cut)
    if killed_during_save:  # a kill while saving: an empty folder, and one with weights but trainer_state cut short
        (cut / f"checkpoint-{SAVE_EVERY + 1}").mkdir()
        half = cut / f"checkpoint-{SAVE_EVERY + 2}"
        shutil.copytree(cut / f"checkpoint-{SAVE_EVERY}", half)
        state = (half / "trainer_state.json").read_text()
        (half / "trainer_state.json").write_text(state[: len(state) // 2])
    capsys.readouterr()
    _run([*common, "--output_dir", str(cut), "--resume"], monkeypatch)
    out = capsys.readouterr()
    assert f"resuming from {cut / f'checkpoint-{SAVE_EVERY}'}" in out.out
    if killed_during_save:
        assert (f"--resume: skipped incomplete checkpoint-{SAVE_EVERY + 2}, checkpoint-{SAVE_EVERY + 1} "
                "(no valid trainer_state.json: interrupted while saving)") in out.err
    assert (cut / f"checkpoint-{STEPS}").is_dir()
    uninterrupted, resumed = _weights(full), _weights(cut)
    assert _max_diff(uninterrupted, interrupted) > 1e-4, "steps 4-6 should move the weights (else the test is void)"
    assert _max_diff(uninterrupted, resumed) <= 1e-5
    return full, cut


def test_resume_npo_lora(tiny_facts_model_dir, tmp_path, monkeypatch, capsys):
    tofu = write_tofu_synthetic(tmp_path / "tofu")  # forget10: 20 rows, batch 4 -> 5 steps per epoch
    base = ["npo", "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tiny_facts_model_dir),
            "--tofu_root", str(tofu), "--ref_cache_dir", str(tmp_path / "ref")]
    full, _ = _check_resume(base, tmp_path, monkeypatch, capsys)
    argv = [*base, "--save_strategy", "steps", "--save_steps", str(SAVE_EVERY), "--report_to", "none"]
    # resuming a 6-step run's checkpoint as a run of another length is refused (it would train 0 steps and save
    # the checkpoint's weights as a 2-step result; or follow the 6-step schedule past its end), nothing written
    before = _weights(full)
    for steps in ("2", "9"):
        with pytest.raises(DataError, match=f"checkpoint-{STEPS} \\(step {STEPS}\\) was saved by a run of --max_steps "
                                            f"{STEPS}, and this run asks for --max_steps {steps}"):
            train_mod.main([*argv, "--max_steps", steps, "--output_dir", str(full), "--resume"])
    assert _max_diff(before, _weights(full)) == 0
    # a fresh run into that folder says the old checkpoints stay beside its own
    capsys.readouterr()
    _run([*argv, "--max_steps", "1", "--output_dir", str(full)], monkeypatch)
    assert (f"--output_dir {full} already holds checkpoint-{SAVE_EVERY}, checkpoint-{STEPS} from an earlier run"
            in capsys.readouterr().err)


def test_resume_goes_on_longer_with_a_constant_learning_rate(tiny_facts_model_dir, tmp_path, monkeypatch, capsys):
    """A finished run with a constant learning rate, resumed with a larger --max_steps, ends with the weights of
    one run of that length (across an epoch boundary); a schedule laid out over max_steps is refused."""
    tofu = write_tofu_synthetic(tmp_path / "tofu")  # forget10: 20 rows, batch 4 -> 5 steps per epoch
    common = ["npo", "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tiny_facts_model_dir),
              "--tofu_root", str(tofu), "--ref_cache_dir", str(tmp_path / "ref"), "--lr_scheduler_type", "constant",
              "--save_strategy", "steps", "--save_steps", str(SAVE_EVERY), "--disable_tqdm", "true",
              "--report_to", "none", "--seed", "7"]
    full, short = tmp_path / "full", tmp_path / "short"
    _run([*common, "--max_steps", str(STEPS), "--output_dir", str(full)], monkeypatch)
    _run([*common, "--max_steps", str(SAVE_EVERY), "--output_dir", str(short)], monkeypatch)
    three = _weights(short)
    capsys.readouterr()
    _run([*common, "--max_steps", str(STEPS), "--output_dir", str(short), "--resume"], monkeypatch)
    assert (f"the run of {short / f'checkpoint-{SAVE_EVERY}'} (step {SAVE_EVERY}) goes on to --max_steps {STEPS} "
            f"instead of {SAVE_EVERY}") in capsys.readouterr().err
    assert _max_diff(_weights(full), three) > 1e-4  # steps 4-6 move the weights (else the test is void)
    assert _max_diff(_weights(full), _weights(short)) <= 1e-5
    linear = [a if a != "constant" else "linear" for a in common]
    with pytest.raises(DataError, match="asks for --max_steps 9: its linear learning-rate schedule is laid out"):
        train_mod.main([*linear, "--max_steps", "9", "--output_dir", str(short), "--resume"])


def test_what_a_longer_resumed_run_would_change(tmp_path):
    from negtune.trainers.nft_config import OfflineNFTConfig
    from negtune.trainers.token_forget_config import TokenForgetConfig

    def change(cls, **kw):
        return train_mod._schedule_change(cls(output_dir=str(tmp_path), **kw), 10, 20)

    assert change(OfflineNFTConfig, lr_scheduler_type="constant") is None
    assert change(OfflineNFTConfig, lr_scheduler_type="constant_with_warmup", warmup_steps=3) is None
    assert "warm-up is a fraction of max_steps" in change(OfflineNFTConfig, lr_scheduler_type="constant_with_warmup",
                                                          warmup_steps=0.1)
    assert "cosine learning-rate schedule" in change(OfflineNFTConfig, lr_scheduler_type="cosine")
    assert "forgetting weight's rise" in change(TokenForgetConfig, lr_scheduler_type="constant", rho=1.0)


def test_resume_skips_checkpoints_cut_short_by_a_kill(tiny_facts_model_dir, tmp_path, monkeypatch, capsys):
    tofu = write_tofu_synthetic(tmp_path / "tofu")
    _check_resume(["npo", "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path",
                   str(tiny_facts_model_dir), "--tofu_root", str(tofu), "--ref_cache_dir", str(tmp_path / "ref")],
                  tmp_path, monkeypatch, capsys, killed_during_save=True)


def test_resume_with_only_incomplete_checkpoints_says_so(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    with pytest.raises(DataError, match=f"--resume: {tmp_path} has no complete checkpoint \\(checkpoint-2 lack"):
        train_mod.resume_checkpoint(str(tmp_path))


@pytest.fixture()
def labeled_file(labeled_rollout, tmp_path):
    path = tmp_path / "labeled.parquet"
    labeled_rollout.to_parquet(str(path))
    return path


def test_resume_nft_offline_full(tiny_model_dir, labeled_file, tmp_path, monkeypatch, capsys):
    # full-parameter; the usable (mixed-group) rows make fewer than 6 batches of 8
    _check_resume(["nft_offline", "--config", str(RECIPES / "nft_offline/tiny.yaml"), "--model_name_or_path",
                   str(tiny_model_dir), "--dataset", str(labeled_file), "--learning_rate", "0.002"],
                  tmp_path, monkeypatch, capsys)


def test_resume_contrastive_restores_snapshots_and_discriminator(tiny_model_dir, labeled_file, tmp_path,
                                                                 monkeypatch, capsys):
    # a snapshot every step, sampled one snapshot back, discriminator weights from step 1: at the resume point
    # the lagged snapshot, the self-adversarial pool and the discriminator all carry state into step 4
    full, cut = _check_resume(
        ["contrastive", "--config", str(RECIPES / "contrastive/tiny.yaml"), "--model_name_or_path",
         str(tiny_model_dir), "--dataset", str(labeled_file), "--per_device_train_batch_size", "16",
         "--snapshot_every", "1", "--snapshot_lag", "1", "--disc_warmup_steps", "1",
         "--adversarial_max_new_tokens", "8", "--adversarial_verifier", ""],
        tmp_path, monkeypatch, capsys)
    state = torch.load(cut / f"checkpoint-{SAVE_EVERY}" / "negtune_state_0.pt", weights_only=True)
    assert len(state["snapshots"]) == 2 and state["adversarial"] and "discriminator" in state


def test_resume_without_checkpoint_names_the_folder(tiny_facts_model_dir, tmp_path):
    argv = ["npo", "--config", str(RECIPES / "npo/tiny.yaml"), "--model_name_or_path", str(tiny_facts_model_dir),
            "--resume"]
    with pytest.raises(DataError, match=f"--resume: {tmp_path / 'none'} does not exist"):
        train_mod.main([*argv, "--output_dir", str(tmp_path / "none")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"--resume: {tmp_path / 'empty'} has no checkpoint-N folder"):
        train_mod.main([*argv, "--output_dir", str(tmp_path / "empty")])
    with pytest.raises(DataError, match="give one of them"):
        train_mod.main([*argv, "--output_dir", str(tmp_path / "empty"), "--resume_from_checkpoint", "x"])


def test_resume_online_ngrpo_inside_a_rollout(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Online (TRL's GRPO machinery): one rollout feeds 2 updates, so the step-3 checkpoint falls inside the
    second rollout. The resumed run must take that rollout's second half from the checkpoint (TRL alone
    regenerated at once and stayed out of phase with its data: measured 3.0e-3 max |diff| without the buffer)."""
    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith

    write_jsonl(tmp_path / "arith.jsonl", make_arith(12, seed=5, difficulty=1))
    full, cut = _check_resume(
        ["ngrpo", "--config", str(RECIPES / "ngrpo/tiny.yaml"), "--model_name_or_path", str(tiny_model_dir),
         "--dataset", str(tmp_path / "arith.jsonl"), "--verifier", "rl_rewards:length_parity",
         "--per_device_train_batch_size", "4", "--num_generations", "4", "--updates_per_generation", "2",
         "--max_completion_length", "16", "--learning_rate", "0.002"],
        tmp_path, monkeypatch, capsys)
    state = torch.load(cut / f"checkpoint-{SAVE_EVERY}" / "negtune_state_0.pt", weights_only=True)
    assert state["micro_step"] == SAVE_EVERY and len(state["buffered_inputs"]) == 2


def test_online_rollout_buffer_is_taken_back_only_under_its_layout():
    """Resumed on another number of processes (or batch, accumulation, steps per generation), no process reuses
    the saved rollout: a process without a state file starts a new one, so all must (else TRL's gathers hang)."""
    from types import SimpleNamespace

    from negtune.trainers.grpo_trainer import GRPOTrainer

    def fake(world_size):
        t = SimpleNamespace(args=SimpleNamespace(world_size=world_size, per_device_train_batch_size=4,
                                                 gradient_accumulation_steps=1, steps_per_generation=2),
                            num_iterations=1, _step=0, _buffered_inputs=None)
        t._layout = lambda: GRPOTrainer._layout(t)
        return t

    saved = fake(2)
    state = {"micro_step": 3, "buffered_inputs": ["slice 0", "slice 1"], "layout": saved._layout()}
    same, more = fake(2), fake(4)
    GRPOTrainer._load_extra_state(same, state)
    GRPOTrainer._load_extra_state(more, state)
    assert (same._step, same._buffered_inputs) == (3, ["slice 0", "slice 1"])
    assert (more._step, more._buffered_inputs) == (0, None)
