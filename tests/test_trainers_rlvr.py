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
                         max_completion_length=48, max_steps=3, learning_rate=1e-3, updates_per_generation=1, **CPU)
    # a reward that splits every group (see rl_rewards.py): each method must then move the weights
    trainer = build_online_trainer(method, model, prompts, tok, args=args, verifier="rl_rewards:length_parity")
    trainer.train()
    logged = set().union(*[h.keys() for h in trainer.state.log_history])
    assert "reward" in logged
    if method == "ngrpo":
        assert args.epsilon == 0.16 and args.epsilon_high == 0.24
        assert {"groups/all_wrong_frac", "ngrpo/zero_advantage_frac", "clip_ratio/low_mean"} <= logged
    if method in ("nft", "rft"):
        assert {"groups/filtered_frac", "nft/ratio_mean"} <= logged
        assert args.neg_weight == (0.0 if method == "rft" else 1.0)
    if method == "dr_grpo":
        assert args.loss_type == "dr_grpo" and args.scale_rewards == "none"
    if method == "grpo":  # the same token-level aggregation as NFT and NGRPO: only the loss differs
        assert args.loss_type == "dapo"
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
        online_config("ngrpo", output_dir=str(tmp_path), per_device_train_batch_size=6, num_generations=4,
                      updates_per_generation=1, **CPU)
    # undecidable rewards (None) are excluded and counted; a homogeneous batch warns and trains on
    reward = VerifierReward("math")
    assert reward(None, [[{"role": "assistant", "content": r"\boxed{1}"}]] * 2, ["1", ""]) == [1.0, None]
    assert reward.undecided == 1
    import datasets

    from negtune.data.prompts import format_prompt

    data = datasets.Dataset.from_list([{"prompt": format_prompt("Say 1."), "answer": "-424242"}] * 4)
    args = online_config("nft", output_dir=str(tmp_path / "h"), per_device_train_batch_size=4, num_generations=4,
                         max_completion_length=8, max_steps=1, updates_per_generation=1, max_sampling_rounds=2,
                         **CPU)
    with caplog.at_level(logging.WARNING):
        build_online_trainer("nft", str(tiny_model_dir), data, tok, args=args).train()
    assert "every group in this generation batch is homogeneous" in caplog.text


def _logged(trainer, key):
    return [h[key] for h in trainer.state.log_history if key in h]


def test_papers_train_off_policy_by_default(tmp_path):
    """NFT: 16 updates per rollout, NGRPO: 4 (the papers' ratios); the baselines keep TRL's 1 unless told, and a
    comparison sets the same number for every method."""
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4,
                gradient_accumulation_steps=2, **CPU)
    expected = {"nft": 16, "rft": 16, "ngrpo": 4, "grpo": 1, "dr_grpo": 1}
    for method, updates in expected.items():
        args = online_config(method, **base)
        assert args.steps_per_generation == updates * 2, method
        assert online_config(method, updates_per_generation=3, **base).steps_per_generation == 6
    assert online_config("nft", steps_per_generation=2, **base).steps_per_generation == 2  # TRL's field wins
    with pytest.raises(ValueError, match="updates_per_generation"):
        online_config("nft", updates_per_generation=0, **base)


def test_off_policy_ratio_acts(tiny_model_dir, prompts, tmp_path):
    """Several updates per rollout: pi_theta leaves pi_old, so NFT's ratio moves (NFT is no longer Dr.GRPO) and
    NGRPO's asymmetric clip fires; on-policy (1 update) the ratio is exactly 1 and the clip never acts."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    seen = {}
    for method in ("nft", "ngrpo"):
        for updates in (1, 4):
            args = online_config(method, output_dir=str(tmp_path / f"{method}{updates}"), per_device_train_batch_size=8,
                                 num_generations=4, max_completion_length=32, max_steps=4, learning_rate=3e-3,
                                 updates_per_generation=updates, **CPU)
            trainer = build_online_trainer(method, str(tiny_model_dir), prompts, tok, args=args,
                                           verifier="rl_rewards:length_parity")
            trainer.train()
            if method == "nft":
                seen[method, updates] = max(abs(r - 1.0) for r in _logged(trainer, "nft/ratio_mean"))
            else:
                seen[method, updates] = max(lo + hi for lo, hi in zip(_logged(trainer, "clip_ratio/low_mean"),
                                                                      _logged(trainer, "clip_ratio/high_mean")))
    assert seen["nft", 1] < 1e-6 and seen["ngrpo", 1] == 0.0
    assert seen["nft", 4] > 0.01 and seen["ngrpo", 4] > 0.0


def test_dynamic_sampling_refills_the_batch(tiny_model_dir, tmp_path):
    """Half the prompts give all-wrong groups (no NFT signal). With dynamic sampling the batch is refilled with
    informative groups from further rounds; without it they are masked and the batch trains on half."""
    import datasets

    from negtune.data.prompts import format_prompt

    rows = [{"prompt": format_prompt(r["prompt"]), "answer": str(a)}
            for a, r in zip(range(40), make_arith(40, seed=3, difficulty=1))]
    data = datasets.Dataset.from_list(rows)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    filtered = {}
    for dynamic in (True, False):
        args = online_config("nft", output_dir=str(tmp_path / str(dynamic)), per_device_train_batch_size=16,
                             num_generations=4, max_completion_length=16, max_steps=2, updates_per_generation=1,
                             dynamic_sampling=dynamic, seed=1, **CPU)
        trainer = build_online_trainer("nft", str(tiny_model_dir), data, tok, args=args,
                                       verifier="rl_rewards:odd_answers_split")
        trainer.model.train()  # dynamic sampling acts in training only
        batch = trainer._generate_and_score_completions([data[i] for i in range(4) for _ in range(4)])
        kept = batch["completion_mask"].sum(1) > 0
        filtered[dynamic] = 1.0 - kept.float().mean().item()
        if dynamic:
            assert trainer._metrics["train"]["sampling/rounds"][-1] >= 2
            # the batch has the size TRL expects, and the dapo normaliser counts its tokens
            assert batch["completion_ids"].shape[0] == 16
            assert int(batch["num_items_in_batch"]) == int(batch["completion_mask"].sum())
            trainer.train()
            assert _logged(trainer, "sampling/rounds")
    assert filtered[False] >= 0.5 and filtered[True] < 0.25


def test_offline_nft_uses_the_samplers_logprobs(tiny_model_dir, tmp_path):
    """A rollout made with --logprobs stores the sampler's tokens and log-probs; offline NFT trains on exactly
    those tokens with those log-probs as pi_old (equal to the initial model's here: the sampler is that model)
    and computes pi_old only for rows without them."""
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify

    write_jsonl(tmp_path / "arith.jsonl", make_arith(8, seed=11, difficulty=1))
    cfg = RolloutConfig(model=str(tiny_model_dir), dataset=str(tmp_path / "arith.jsonl"), out=str(tmp_path / "r"),
                        n=4, engine="hf", max_new_tokens=32, verify_workers=0, verifier="rl_rewards:length_parity",
                        logprobs=True)
    ds, _ = rollout_and_verify(cfg, progress=False)
    rows = ds.to_list()
    assert all(len(r["token_ids"]) == len(r["logprobs"]) == r["num_tokens"] for r in rows)
    rows[0] = {k: v for k, v in rows[0].items() if k not in ("token_ids", "logprobs")}  # an older rollout's row
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = OfflineNFTConfig(output_dir=str(tmp_path / "o"), max_steps=1, per_device_train_batch_size=4, **CPU)
    trainer = OfflineNFTTrainer(str(tiny_model_dir), args, train_dataset=rows, processing_class=tok)
    n = len(trainer.train_dataset)
    assert trainer.pi_old_source == {"sampler": n - 1, "initial_model": 1}
    from negtune.trainers.reference import compute_reference_logps

    item = trainer.train_dataset[1]
    recomputed = compute_reference_logps(trainer.model, [(item["input_ids"], item["labels"])], tok.pad_token_id,
                                         per_token=True)[0]
    answer = [t != -100 for t in item["labels"]]
    stored = [o for o, a in zip(item["old_logps"], answer) if a]
    fresh = [o for o, a in zip([0.0] + recomputed, answer) if a]
    assert stored == pytest.approx(fresh, abs=1e-4)
    trainer.train()


def test_nft_aggregations_and_vllm_correction(tiny_model_dir, prompts, tmp_path):
    """token_sum is the NFT reference's aggregation (token-loss sum / 1000); dapo (the default, as GRPO's and
    NGRPO's) divides by the batch's tokens; under vLLM, TRL's importance-sampling ratio scales every token."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = online_config("nft", output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                         max_completion_length=6, updates_per_generation=1, **CPU)
    trainer = build_online_trainer("nft", str(tiny_model_dir), prompts, tok, args=args)
    trainer.model.eval()  # one batch, no accumulation
    g = torch.Generator().manual_seed(0)
    inputs = {"prompt_ids": torch.randint(3, 20, (4, 5), generator=g), "prompt_mask": torch.ones(4, 5, dtype=torch.long),
              "completion_ids": torch.randint(3, 20, (4, 6), generator=g),
              "completion_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 6, [1] * 3 + [0] * 3]),
              "nft_pass_rate": torch.full((4,), 0.5), "nft_positive": torch.tensor([True, False, True, False]),
              "num_items_in_batch": torch.tensor(19.0),
              "old_per_token_logps": -torch.rand(4, 6, generator=g) - 1.0}
    losses = {}
    for loss_type in ("dapo", "token_sum", "bnpo"):
        trainer.loss_type = loss_type
        losses[loss_type] = trainer._compute_loss(trainer.model, inputs).item()
    assert losses["token_sum"] == pytest.approx(losses["dapo"] * 19 / 1000, rel=1e-5)
    assert losses["bnpo"] == pytest.approx(losses["dapo"], rel=1e-5)  # one batch: both divide by its 19 tokens
    trainer.loss_type = "dapo"
    trainer.use_vllm, trainer.vllm_importance_sampling_correction = True, True
    scaled = trainer._compute_loss(trainer.model, inputs | {"importance_sampling_ratio": torch.full((4, 6), 0.5)})
    assert scaled.item() == pytest.approx(0.5 * losses["dapo"], rel=1e-5)
    with pytest.raises(ValueError, match="token_sum_divisor"):
        online_config("nft", output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                      token_sum_divisor=0, **CPU)
