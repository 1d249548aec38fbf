"""Step-level negatives: steps, values, advantages, pits and the clipped loss by hand; the step-values stage with a
scripted policy (exact values and pits) and with the tiny model (resume, budget, settings); the trainer's
per-token advantages and its loss at the start; full and LoRA training; the CLI; errors that name the row or
the missing stage."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.cli import main
from negtune.data.io import DataError
from negtune.data.prompts import as_chat, render_prompt_text
from negtune.data.schema import read_labeled
from negtune.losses.steps import (
    best_of_k,
    first_pit,
    nsa_step_scale,
    step_advantages,
    step_dpo_loss,
    step_ends,
    step_pg_loss,
    token_steps,
)
from negtune.rollout.engines import Completion
from negtune.rollout.stage import RolloutSettingsError
from negtune.rollout.steps import StepValuesConfig, estimate_step_values
from negtune.trainers import StepDPOConfig, StepDPOTrainer, StepPGConfig, StepPGTrainer
from negtune.trainers.step_dpo_trainer import self_explore_pair
from negtune.trainers.step_pg_trainer import completion_offsets, step_credit

COMMON = dict(per_device_train_batch_size=4, use_cpu=True, save_strategy="no", report_to="none",
              disable_tqdm=True, logging_steps=1)
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "step_pg" / "tiny.yaml"


def test_steps_values_advantages_and_loss_by_hand():
    text = "Ava starts with 5. 5 + 3 = 9. 9 * 2 = 18. The answer is \\boxed{18}."
    ends = step_ends(text, "sentence")
    assert [text[a:b] for a, b in zip([0, *ends], ends)] == [
        "Ava starts with 5.", " 5 + 3 = 9.", " 9 * 2 = 18.", " The answer is \\boxed{18}."]
    # line breaks end the step before ("x.\n\n" is one token for Qwen/Llama tokenizers), spaces start the next
    assert step_ends("a.\n\nb\n", "newline") == [4, 6] and step_ends("a.\n b", "\\s+") == [3, 5]
    assert step_ends("one step", "newline") == [8] and step_ends("x 1.5 y", "sentence") == [7]  # no cut in 1.5
    assert step_ends("a;b;c", ";") == [1, 3, 5]  # a regular expression
    assert best_of_k(torch.tensor([0.0, 0.5, 1.0]), 2).tolist() == [0.0, 0.75, 1.0]
    assert best_of_k(torch.tensor([0.3]), 1).item() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="k >= 1"):
        best_of_k(torch.tensor([0.3]), 0)
    values = torch.tensor([0.75, 0.0, 0.25, 0.0])  # Q after each step; the last is the label
    adv = step_advantages(values, 0.5)
    assert adv.tolist() == [0.25, -0.75, 0.25, -0.25]
    assert adv.sum().item() == pytest.approx(0.0 - 0.5)  # telescopes to the outcome advantage r - Q_0
    assert first_pit([0.75, 0.0, 0.25, 0.0]) == 1 and first_pit([1.0, 1.0]) is None
    assert first_pit([0.5, 0.5, 0.5, 0.0], [4, 0, 0, 0]) == 1  # no later than the first step not valued
    assert nsa_step_scale([0.75, 0.0, 0.25, 0.0], False, 0.5) == [0.5, 1.0, 1.0, 1.0]
    assert nsa_step_scale([0.5, 1.0], True, 0.5) == [1.0, 1.0]
    assert token_steps([-3, 0, 4, 18, 19, 29, 69, 99], ends) == [0, 0, 0, 1, 1, 2, 3, 3]
    # the clipped surrogate: on-policy its gradient is -A d log pi; off-policy the clip stops the push
    logps = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    old = torch.tensor([[-1.0, -2.0 - 0.5, -0.5 + 0.5]])  # ratios 1, e^0.5 (clipped for A > 0), e^-0.5
    a = torch.tensor([[2.0, 1.0, -1.0]])
    loss = step_pg_loss(logps, old, a, 0.2, 0.2)
    r3 = torch.exp(torch.tensor(-0.5))
    assert loss[0, 0].item() == pytest.approx(-2.0)
    assert loss[0, 1].item() == pytest.approx(-1.2)  # min(r2 * 1, 1.2 * 1)
    assert loss[0, 2].item() == pytest.approx(max(r3.item(), 0.8) * 1.0)  # -min(-r3, -0.8) = max(r3, 0.8)
    loss.sum().backward()
    assert logps.grad[0].tolist() == pytest.approx([-2.0, 0.0, 0.0])  # both off-policy tokens are clipped
    # step-level DPO: -log sigmoid(beta (chosen log-ratio - rejected log-ratio)), gradient -beta sigmoid(-m)
    chosen = torch.tensor([-3.0, -1.0], requires_grad=True)
    rejected = torch.tensor([-2.0, -4.0], requires_grad=True)
    dpo = step_dpo_loss(chosen, rejected, torch.tensor([-4.0, -1.0]), torch.tensor([-2.0, -2.0]), beta=0.5)
    margins = torch.tensor([1.0 - 0.0, 0.0 - (-2.0)])  # (pi - ref) of chosen minus that of rejected
    assert dpo.tolist() == pytest.approx(torch.nn.functional.softplus(-0.5 * margins).tolist())
    dpo.sum().backward()
    assert chosen.grad.tolist() == pytest.approx((-0.5 * torch.sigmoid(-0.5 * margins)).tolist())
    assert rejected.grad.tolist() == pytest.approx((0.5 * torch.sigmoid(-0.5 * margins)).tolist())


class _ScriptedPolicy:
    """A policy that finishes a prefix of "Ava starts with 5. 5 + 3 = 8. 8 * 2 = 16." without error from the
    prefix's last number: a prefix is worth 1 when its arithmetic so far is right, else 0. From the prompt alone
    every other continuation is right (Q_0 = 1/2 for even k). So the values and the first pit are known exactly.
    It records what it was asked to continue."""

    name = "hf"
    OPS = [lambda v: v + 3, lambda v: v * 2]

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls, self.seen = 0, []

    def generate_ids(self, encoded, sampling):
        self.calls += 1
        out = []
        for ids in encoded:
            text = self.tokenizer.decode(ids)
            self.seen.append(text)
            if "Ava starts with" not in text:
                out.append([Completion(f" The answer is \\boxed{{{16 + j % 2}}}.", [1, 2], "stop")
                            for j in range(sampling.n)])
                continue
            solution = text.split("Ava starts with")[-1]
            value = int(solution.replace(".", " ").split()[-1])
            for op in self.OPS[solution.count("="):]:
                value = op(value)
            out.append([Completion(f" The answer is \\boxed{{{value}}}.", [1, 2], "stop")] * sampling.n)
        return out


def _row(completion, label, rate, pid="p0", answer="16"):
    return {"prompt": "Ava has 5 apples. Then Ava finds 3 more. Then the number of them doubles. How many?",
            "completion": completion, "prompt_id": pid, "sample_idx": 0, "reward": float(label), "label": label,
            "answer": answer, "extracted": None, "verifier": "math", "finish_reason": "stop",
            "group_pass_rate": rate, "source": "test", "meta": "{}"}


def _scripted_rollout(tmp_path) -> Path:
    import datasets

    rows = [_row("Ava starts with 5. 5 + 3 = 9. 9 * 2 = 18. The answer is \\boxed{18}.", False, 0.5),
            _row("Ava starts with 5. 5 + 3 = 8. 8 * 2 = 16. The answer is \\boxed{16}.", True, 0.5),
            _row("Ava starts with 5. 5 + 3 = 8. 8 * 3 = 24. The answer is \\boxed{24}.", False, 0.5, "p1"),
            _row("Ava starts with 5. 5 + 3 = 8. 8 * 2 = 16. The answer is \\boxed{16}.", True, 0.5, "p1")]
    for i, r in enumerate(rows):
        r["sample_idx"] = i % 2
    path = tmp_path / "rollout.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def _scripted_values(tiny_model_dir, tmp_path) -> tuple:
    """The scripted rollout valued by the scripted policy (k 2) into ``tmp_path/sv``: (tokenizer, its rows)."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = StepValuesConfig(rollout=str(_scripted_rollout(tmp_path)), model=str(tiny_model_dir),
                           out=str(tmp_path / "sv"), k=2, separator="sentence", verify_workers=0)
    estimate_step_values(cfg, engine=_ScriptedPolicy(tok), progress=False)
    return tok, read_labeled(tmp_path / "sv")


def test_stage_finds_the_first_wrong_step_with_a_scripted_policy(tiny_model_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    policy = _ScriptedPolicy(tok)
    cfg = StepValuesConfig(rollout=str(_scripted_rollout(tmp_path)), model=str(tiny_model_dir),
                           out=str(tmp_path / "sv"), k=3, separator="sentence", verify_workers=0, shard_size=2)
    stats = estimate_step_values(cfg, engine=policy, progress=False)
    rows = read_labeled(tmp_path / "sv")
    assert [r["step_values"] for r in rows] == [[1.0, 0.0, 0.0, 0.0], None, [1.0, 1.0, 0.0, 0.0], None]
    assert [r["step_samples"] for r in rows if r["step_samples"]] == [[3, 3, 3, 0]] * 2
    assert [r["step_q0"] for r in rows] == pytest.approx([2 / 3] * 4)  # the prompt alone, valued once per prompt
    assert rows[0]["step_q0_continuation"] == rows[0]["step_continuation"][0] == " The answer is \\boxed{16}."
    assert rows[0]["step_continuation"][1] is None
    assert rows[0]["step_ends"] == step_ends(rows[0]["completion"], "sentence")
    # the pit is the wrong addition (step 1) in the first negative, the wrong product (step 2) in the second
    assert stats["negatives_pit_histogram"] == {"1": 1, "2": 1}
    assert stats["continuation_samples"] == (2 + 6) * 3 and stats["prefixes"] == 8 and stats["prompts_valued"] == 2
    assert stats["negative_steps_before_pit"] == pytest.approx(3 / 8)
    # what was continued: the rendered prompt, alone and followed by each prefix of each negative
    prompt_text, _ = render_prompt_text(tok, as_chat(rows[0]["prompt"]))
    prefixes = {"", "Ava starts with 5.", "Ava starts with 5. 5 + 3 = 9.", "Ava starts with 5. 5 + 3 = 9. 9 * 2 = 18.",
                "Ava starts with 5. 5 + 3 = 8.", "Ava starts with 5. 5 + 3 = 8. 8 * 3 = 24."}
    assert set(policy.seen) == {prompt_text + p for p in prefixes}
    # finished shards are not redone; other settings are refused
    calls = policy.calls
    assert estimate_step_values(cfg, engine=policy, progress=False)["continuation_samples"] == 24
    assert policy.calls == calls
    with pytest.raises(RolloutSettingsError, match="step values made with other settings .*k: 3 -> 2"):
        estimate_step_values(StepValuesConfig(**{**cfg.__dict__, "k": 2}), engine=policy, progress=False)
    # --max-prefixes 1: later prefixes are not valued; the pit is placed no later than the first of them
    short = StepValuesConfig(**{**cfg.__dict__, "out": str(tmp_path / "short"), "max_prefixes": 1})
    stats = estimate_step_values(short, engine=policy, progress=False)
    rows = read_labeled(tmp_path / "short")
    assert rows[2]["step_values"] == [1.0, 1.0, 1.0, 0.0] and rows[2]["step_samples"] == [3, 0, 0, 0]
    assert stats["negatives_pit_histogram"] == {"1": 2} and stats["prefixes"] == 4


def test_stage_on_the_tiny_model_resumes_to_the_same_values(tiny_model_dir, labeled_rollout, tmp_path):
    src = tmp_path / "rollout.parquet"
    labeled_rollout.to_parquet(str(src))
    cfg = StepValuesConfig(rollout=str(src), model=str(tiny_model_dir), out=str(tmp_path / "sv"), k=2,
                           separator="sentence", max_new_tokens=32, engine="hf", verify_workers=0, shard_size=24)
    stats = estimate_step_values(cfg, progress=False)
    rows = read_labeled(tmp_path / "sv")
    negatives = [r for r in rows if not r["label"]]
    assert json.loads((tmp_path / "sv" / "shard-00001.budget.json").read_text())["prefixes"] > 0
    assert negatives and all(r["step_values"] is not None for r in negatives)
    assert all(r["step_values"] is None for r in rows if r["label"])
    for r in negatives:
        assert r["step_ends"] == step_ends(r["completion"], "sentence") and r["step_values"][-1] == 0.0
        assert all(v in (0.0, 0.5, 1.0) for v in r["step_values"])
    valued_prompts = {r["prompt_id"] for r in negatives}
    assert stats["continuation_samples"] == 2 * (sum(len(r["step_ends"]) - 1 for r in negatives) + len(valued_prompts))
    assert all((r["step_q0"] is None) == (r["prompt_id"] not in valued_prompts) for r in rows)
    assert stats["continuation_tokens"] > 0
    (tmp_path / "sv" / "shard-00001.parquet").unlink()
    assert estimate_step_values(cfg, progress=False)["continuation_samples"] == stats["continuation_samples"]
    again = read_labeled(tmp_path / "sv")
    assert [r["step_values"] for r in again] == [r["step_values"] for r in rows]  # per-shard seeds


def test_trainer_advantages_and_loss_at_the_start(tiny_model_dir, tmp_path):
    tok, rows = _scripted_values(tiny_model_dir, tmp_path)
    args = StepPGConfig(output_dir=str(tmp_path / "o"), max_steps=1, **COMMON)
    assert step_credit(rows[0], args) == pytest.approx([0.5, -1.0, 0.0, 0.0])  # Q: 0.5 -> 1 -> 0 -> 0 -> 0
    assert step_credit(rows[1], args) == [0.5]  # a positive without values: its outcome, 1 - Q_0
    nsa = StepPGConfig(output_dir=str(tmp_path / "o"), max_steps=1, credit="nsa", **COMMON)
    assert step_credit(rows[0], nsa) == pytest.approx([-0.25, -0.5, -0.5, -0.5])  # beta 0.5 before the pit
    bok = StepPGConfig(output_dir=str(tmp_path / "o"), max_steps=1, bok_k=2, **COMMON)
    assert step_credit(rows[0], bok) == pytest.approx([0.25, -1.0, 0.0, 0.0])  # Q_0 = 1 - 0.5^2

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = StepPGTrainer(model, args, train_dataset=tmp_path / "sv", processing_class=tok)
    item = trainer.train_dataset[0]
    ids, adv = item["input_ids"], item["advantages"]
    steps = token_steps(completion_offsets(tok, rows[0]["prompt"], rows[0]["completion"], ids), rows[0]["step_ends"])
    expected = [[0.5, -1.0, 0.0, 0.0][s] if lab != -100 else 0.0 for s, lab in zip(steps, item["labels"])]
    assert adv == pytest.approx(expected) and -1.0 in adv and 0.5 in adv
    # tokens of " 5 + 3 = 9." (the wrong step) carry -1: decode them back
    wrong = tok.decode([t for t, a in zip(ids, adv) if a == -1.0])
    assert wrong.strip() == "5 + 3 = 9."
    # at the start R = 1: the loss is minus the token-mean advantage of the batch
    batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(len(trainer.train_dataset))])
    loss = trainer.compute_loss(trainer.model, batch)
    labels = batch["labels"][:, 1:]
    adv_t = batch["advantages"][:, 1:]
    mask = labels != -100
    assert loss.item() == pytest.approx(-(adv_t[mask].sum() / mask.sum()).item(), abs=1e-5)


def test_step_dpo_pairs_and_loss_at_the_start(tiny_model_dir, tmp_path):
    tok, rows = _scripted_values(tiny_model_dir, tmp_path)
    right = " The answer is \\boxed{16}."
    assert self_explore_pair(rows[0], None) == ("Ava starts with 5.", right, " 5 + 3 = 9.")
    assert self_explore_pair(rows[2], None) == ("Ava starts with 5. 5 + 3 = 8.", right, " 8 * 3 = 24.")
    # a pit at the first step: the stage's right continuation of the prompt alone, else a right sample
    first = dict(rows[0], step_values=[0.0, 0.0, 0.0, 0.0])
    assert self_explore_pair(first, "sol") == ("", right, "Ava starts with 5.")
    assert self_explore_pair(dict(first, step_q0_continuation=None), "sol") == ("", "sol", "Ava starts with 5.")
    assert self_explore_pair(first, "sol", "skip") is None
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = StepDPOConfig(output_dir=str(tmp_path / "o"), max_steps=1, **COMMON)
    trainer = StepDPOTrainer(model, args, train_dataset=tmp_path / "sv", processing_class=tok)
    assert trainer.pairs == 2 and trainer.unpaired == 0
    item = trainer.train_dataset[0]
    rejected = [t for t, lab in zip(item["rejected_input_ids"], item["rejected_labels"]) if lab != -100]
    assert tok.decode(rejected).strip() == "5 + 3 = 9." and rejected[-1] != tok.eos_token_id  # the pit step alone
    assert item["chosen_labels"][-1] == tok.eos_token_id  # a correct continuation ends the solution
    batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(2)])
    loss = trainer.compute_loss(trainer.model, batch)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-4)  # policy = reference


@pytest.mark.parametrize("method,lora", [("step_pg", False), ("step_pg", True), ("step_dpo", False),
                                         ("step_dpo", True)])
def test_trainers_train_full_and_lora(tiny_model_dir, tmp_path, method, lora):
    from peft import LoraConfig

    tok, _ = _scripted_values(tiny_model_dir, tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM") if lora else None
    config, trainer_class = (StepPGConfig, StepPGTrainer) if method == "step_pg" else (StepDPOConfig, StepDPOTrainer)
    args = config(output_dir=str(tmp_path / "o"), max_steps=3, learning_rate=5e-3, **COMMON)
    trainer = trainer_class(model, args, train_dataset=tmp_path / "sv", processing_class=tok, peft_config=peft)
    trainer.train()
    named = dict(trainer.model.named_parameters())
    if lora:
        assert all(torch.equal(before[n], named[f"base_model.model.{n}"].detach())
                   for n in before if f"base_model.model.{n}" in named)
        assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in named.items() if "lora_B" in n)
    else:
        assert any(not torch.equal(before[n], p.detach()) for n, p in named.items())
    assert any(("clip_frac" if method == "step_pg" else "reward_margin") in h for h in trainer.state.log_history)


def test_errors_name_the_missing_stage_and_the_row(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = StepPGConfig(output_dir=str(tmp_path / "o"), max_steps=1, **COMMON)
    with pytest.raises(DataError, match="negtune step-values"):
        StepPGTrainer(model, args, train_dataset=labeled_rollout, processing_class=tok)
    # outcome credit needs no step values: the same loss with r - r_hat on every token
    outcome = StepPGConfig(output_dir=str(tmp_path / "o"), max_steps=1, credit="outcome", **COMMON)
    trainer = StepPGTrainer(model, outcome, train_dataset=labeled_rollout, processing_class=tok)
    rates = {r["prompt_id"]: r["group_pass_rate"] for r in labeled_rollout}
    assert trainer.left_out_rows == sum(rates[r["prompt_id"]] in (0.0, 1.0) for r in labeled_rollout)
    bad = [dict(r, step_ends=[3], step_values=[0.5, 0.0]) for r in labeled_rollout.to_list()[:2]]
    with pytest.raises(DataError, match=r"row 0 \(prompt_id .*'step_ends' and 'step_values' must have one entry"):
        StepPGTrainer(model, args, train_dataset=bad, processing_class=tok)
    short = [dict(r, step_ends=[3, len(r["completion"]) - 1], step_values=[0.5, 0.0]) for r in bad]
    with pytest.raises(DataError, match="must rise to the completion's length"):
        StepPGTrainer(model, args, train_dataset=short, processing_class=tok)
    with pytest.raises(ValueError, match="--bok_k 5 acts on the step values of --credit step only"):
        StepPGConfig(output_dir=str(tmp_path / "o"), credit="nsa", bok_k=5, **COMMON)
    with pytest.raises(ValueError, match="--temperature 0 is greedy"):
        StepValuesConfig(rollout="r", model="m", out="o", temperature=0.0)
    with pytest.raises(DataError, match="negtune step-values"):
        StepDPOTrainer(model, StepDPOConfig(output_dir=str(tmp_path / "o"), **COMMON), train_dataset=labeled_rollout,
                       processing_class=tok)
    with pytest.raises(ValueError, match="--credit"):
        StepPGConfig(output_dir=str(tmp_path / "o"), credit="token", **COMMON)
    with pytest.raises(ValueError, match="--k must be"):
        StepValuesConfig(rollout="r", model="m", out="o", k=0)
    with pytest.raises(ValueError, match="--separator"):
        StepValuesConfig(rollout="r", model="m", out="o", separator="(")
    with pytest.raises(DataError, match="--rollout .*no such"):
        estimate_step_values(StepValuesConfig(rollout=str(tmp_path / "none"), model="m", out=str(tmp_path / "x")))


def test_cli_step_values_then_train(tiny_model_dir, labeled_rollout, tmp_path, capsys):
    src = tmp_path / "rollout.parquet"
    labeled_rollout.to_parquet(str(src))
    sv = tmp_path / "sv"
    assert main(["step-values", "--rollout", str(src), "--model", str(tiny_model_dir), "--out", str(sv), "--k", "2",
                 "--separator", "sentence", "--max-new-tokens", "48", "--engine", "hf", "--verify-workers", "0",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    stats = json.loads((sv / "stats.json").read_text())
    assert f"= {stats['continuation_samples']} continuations" in printed and "first pit" in printed
    out = tmp_path / "out"
    assert main(["train", "step_pg", "--config", str(RECIPE), "--model_name_or_path", str(tiny_model_dir),
                 "--dataset", str(sv), "--output_dir", str(out), "--max_steps", "2", "--disable_tqdm", "true"]) == 0
    card = (out / "README.md").read_text()
    assert "`step_pg`" in card and "Setlur et al. 2024" in card and "with step values" in card
    assert (out / "model.safetensors").exists()
    dpo = tmp_path / "dpo"
    assert main(["train", "step_dpo", "--config", str(RECIPE.parent.parent / "step_dpo" / "tiny.yaml"),
                 "--model_name_or_path", str(tiny_model_dir), "--dataset", str(sv), "--output_dir", str(dpo),
                 "--max_steps", "1", "--disable_tqdm", "true"]) == 0
    assert "step-level pairs" in (dpo / "README.md").read_text()


def test_outcome_credit_on_policy_is_nft(tiny_model_dir, labeled_rollout, tmp_path):
    """DESIGN's invariant through step_pg: with outcome credit its first gradient is Dr.GRPO's (advantages 1 - r
    and -r), which is on-policy NFT's with its default prompt weight 1 - r: both trainers, same rows, same
    gradient."""
    from negtune.trainers import OfflineNFTConfig, OfflineNFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    grads = []
    for trainer_class, args in [
        (StepPGTrainer, StepPGConfig(output_dir=str(tmp_path / "a"), credit="outcome", **COMMON)),
        (OfflineNFTTrainer, OfflineNFTConfig(output_dir=str(tmp_path / "b"), pass_rate_min=0.0, pass_rate_max=1.0,
                                             **COMMON)),
    ]:
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        trainer = trainer_class(model, args, train_dataset=labeled_rollout, processing_class=tok)
        features = [dict(trainer.train_dataset[i]) for i in range(len(trainer.train_dataset))]
        batch = trainer.data_collator(features)
        trainer.model.zero_grad()
        trainer.compute_loss(trainer.model, batch).backward()
        grads.append((len(features), torch.cat([p.grad.flatten() for p in trainer.model.parameters()
                                                if p.grad is not None])))
    (n_a, g_a), (n_b, g_b) = grads
    assert n_a == n_b and g_a.abs().max() > 0
    assert torch.allclose(g_a, g_b, atol=1e-6, rtol=1e-4)
