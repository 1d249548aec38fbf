"""Online (TRL GRPO machinery, HF generation on CPU) and offline RLVR trainers on the tiny model."""

import logging

import pytest
import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import DataError, write_jsonl
from negtune.data.tasks import make_arith
from negtune.trainers import (
    ONLINE_METHODS,
    NGRPOConfig,
    NGRPOTrainer,
    OfflineNFTConfig,
    OfflineNFTTrainer,
    VerifierReward,
    build_online_trainer,
    online_config,
    prompt_dataset,
)

CPU = dict(use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none", save_strategy="no",
           disable_tqdm=True, logging_steps=1)
LORA = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("p") / "arith.jsonl"
    write_jsonl(path, make_arith(32, seed=21, difficulty=1))  # easy: the briefly warmed model gets some right
    return prompt_dataset(str(path))


def _changed(before, model):
    return [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]


@pytest.mark.parametrize("method", ONLINE_METHODS)
def test_online_methods_step(method, tiny_model_dir, prompts, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = online_config(method, output_dir=str(tmp_path), per_device_train_batch_size=16, num_generations=4,
                         max_completion_length=48, max_steps=3, learning_rate=1e-3, **CPU)
    # a reward that splits every group (see rl_rewards.py): each method must then move the weights
    trainer = build_online_trainer(method, model, prompts, tok, args=args, verifier="rl_rewards:length_parity")
    trainer.train()
    logged = set().union(*[h.keys() for h in trainer.state.log_history])
    assert "reward" in logged
    if method == "ngrpo":
        assert args.epsilon == 0.16 and args.epsilon_high == 0.24
        assert {"groups/all_wrong_frac", "ngrpo/zero_advantage_frac", "clip_ratio/low_mean"} <= logged
    if method in ("nft", "rft"):
        assert {"nft/dropped_frac", "nft/ratio_mean"} <= logged
        assert args.neg_weight == (0.0 if method == "rft" else 1.0)
    if method == "dr_grpo":
        assert args.loss_type == "dr_grpo" and args.scale_rewards == "none"
    assert _changed(before, model), f"{method}: no parameter changed in 3 steps"


def test_ngrpo_lora_keeps_base(tiny_model_dir, prompts, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = NGRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4,
                       max_completion_length=48, max_steps=2, learning_rate=5e-3, **CPU)
    trainer = NGRPOTrainer(model=str(tiny_model_dir), reward_funcs=VerifierReward("math"), args=args,
                           train_dataset=prompts, processing_class=tok, peft_config=LORA)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = _changed(before, trainer.model)
    assert changed and all("lora_" in n for n in changed)


def test_ngrpo_learns_from_all_wrong_groups(tiny_model_dir, tmp_path):
    """Gold answers no sample can match: every group is all-wrong. GRPO has zero advantages; NGRPO does not."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    import datasets

    from negtune.data.prompts import format_prompt

    rows = [{"prompt": format_prompt(r["prompt"]), "answer": "-99999"} for r in make_arith(8, seed=5)]
    data = datasets.Dataset.from_list(rows)
    deltas = {}
    for method in ("grpo", "ngrpo"):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        args = online_config(method, output_dir=str(tmp_path / method), per_device_train_batch_size=8,
                             num_generations=4, max_completion_length=32, max_steps=2, learning_rate=1e-3, **CPU)
        build_online_trainer(method, model, data, tok, args=args).train()
        deltas[method] = sum((p.detach() - before[n]).abs().sum().item() for n, p in model.named_parameters())
    assert deltas["grpo"] == 0.0 and deltas["ngrpo"] > 0.0


def test_offline_nft_and_rft(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for method in ("nft", "rft"):
        for lora in (False, True):
            model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
            args = OfflineNFTConfig(output_dir=str(tmp_path / f"{method}{lora}"), method=method, max_steps=3,
                                    per_device_train_batch_size=8, learning_rate=1e-3, use_cpu=True,
                                    save_strategy="no", disable_tqdm=True, logging_steps=1)
            trainer = OfflineNFTTrainer(model, args, train_dataset=labeled_rollout, processing_class=tok,
                                        peft_config=LORA if lora else None)
            before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
            trainer.train()
            changed = _changed(before, trainer.model)
            assert changed and (all("lora_" in n for n in changed) if lora else len(changed) > 10)
            assert trainer.state.log_history[0]["ratio_mean"] == pytest.approx(1.0, abs=1e-5)  # pi_old = initial
            if method == "rft":
                assert trainer.state.log_history[0]["positive_frac"] == 1.0


def test_offline_nft_bad_input(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = OfflineNFTConfig(output_dir=str(tmp_path), use_cpu=True)
    rows = labeled_rollout.to_list()
    homogeneous = [{**r, "group_pass_rate": 0.0, "label": False} for r in rows]
    with pytest.raises(DataError, match="no usable samples: all .* rows are in groups that are all right or all wrong"):
        OfflineNFTTrainer(str(tiny_model_dir), args, train_dataset=homogeneous, processing_class=tok)
    no_rate = [{k: v for k, v in r.items() if k != "group_pass_rate"} for r in rows]
    with pytest.raises(DataError, match="row 0: missing column 'group_pass_rate'"):
        OfflineNFTTrainer(str(tiny_model_dir), args, train_dataset=no_rate, processing_class=tok)
    with pytest.raises(ValueError, match="--method 'ppo'"):
        OfflineNFTConfig(output_dir=str(tmp_path), method="ppo")


def test_online_bad_input(tiny_model_dir, prompts, tmp_path, caplog):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="num_generations|divisible"):
        online_config("ngrpo", output_dir=str(tmp_path), per_device_train_batch_size=6, num_generations=4, **CPU)
    # undecidable rewards (None) are excluded and counted; a homogeneous batch warns and trains on
    reward = VerifierReward("math")
    assert reward(None, [[{"role": "assistant", "content": r"\boxed{1}"}]] * 2, ["1", ""]) == [1.0, None]
    assert reward.undecided == 1
    import datasets

    from negtune.data.prompts import format_prompt

    data = datasets.Dataset.from_list([{"prompt": format_prompt("Say 1."), "answer": "-424242"}] * 4)
    args = online_config("nft", output_dir=str(tmp_path / "h"), per_device_train_batch_size=4, num_generations=4,
                         max_completion_length=8, max_steps=1, **CPU)
    with caplog.at_level(logging.WARNING):
        build_online_trainer("nft", str(tiny_model_dir), data, tok, args=args).train()
    assert "every group in this generation batch is homogeneous" in caplog.text
