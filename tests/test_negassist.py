"""Negative-assisted distillation: the gate, the calibration and the distillation loss by hand; the dual-LoRA
layer's formula and its start at the base; the three stages on the tiny model (what each trains, the saved
model reloads to the same logits, the student's loss by hand); the CLI recipes."""

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import DataError
from negtune.losses.negassist import integrate_gate, kl_rows, nce_calibration, nce_loss
from negtune.models import integrate
from negtune.trainers import NegAssistConfig, NegAssistTrainer

COMMON = dict(per_device_train_batch_size=4, use_cpu=True, save_strategy="no", report_to="none",
              disable_tqdm=True, logging_steps=1)
RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "negassist"


def test_gate_calibration_and_loss_by_hand():
    q = torch.tensor([[1.0, 0.0]])
    k_pos, k_neg = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 5.0]])
    a_neg = math.exp(0) / (math.exp(2) + math.exp(0))  # softmax over scores (2, 0)
    assert integrate_gate(q, k_pos, k_neg).item() == pytest.approx(2 * 0.5 * a_neg - 0.5)
    assert integrate_gate(q, k_pos, k_pos).item() == pytest.approx(0.0)  # equal keys: no preference
    big = integrate_gate(torch.tensor([[100.0]]), torch.tensor([[-1.0]]), torch.tensor([[1.0]]), beta=0.3)
    assert big.item() == pytest.approx(0.3)  # bounded by beta
    # calibration: tanh of the mean KL(p_neg || p_nat) over the masked positions, per example
    neg = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]], [[0.2, 0.8], [0.5, 0.5]]]))
    nat = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.8, 0.2], [0.1, 0.9]]]))
    mask = torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)
    kl = lambda p, q: sum(a * math.log(a / b) for a, b in zip(p, q))  # noqa: E731
    expect = [math.tanh((0 + kl([0.9, 0.1], [0.5, 0.5])) / 2), math.tanh(kl([0.2, 0.8], [0.8, 0.2]))]
    beta = nce_calibration(neg, nat, mask)
    assert beta.tolist() == pytest.approx(expect)
    assert kl_rows(neg, nat)[0, 1].item() == pytest.approx(kl([0.9, 0.1], [0.5, 0.5]), rel=1e-5)
    # the loss: (1 - a) CE + a * sum_i (0.5 + beta_i) sum_t CE(p_nat, q) / |M|
    student = torch.log(torch.tensor([[[0.6, 0.4], [0.3, 0.7]], [[0.5, 0.5], [0.9, 0.1]]])).requires_grad_(True)
    ce = torch.tensor(1.2)
    cross = lambda p, q: -sum(a * math.log(b) for a, b in zip(p, q))  # noqa: E731
    kd = ((cross([0.5, 0.5], [0.6, 0.4]) + cross([0.5, 0.5], [0.3, 0.7])) * (0.5 + expect[0])
          + cross([0.8, 0.2], [0.5, 0.5]) * (0.5 + expect[1])) / 3
    assert nce_loss(student, nat, mask, ce, beta, 0.5).item() == pytest.approx(0.5 * 1.2 + 0.5 * kd, rel=1e-5)


def test_the_layer_starts_at_the_base_and_follows_its_formula():
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 4)
    cfg = integrate.IntegrateConfig(r=2, lora_alpha=4, dropout=0.0, width=3)
    layer = integrate.IntegratedLoRALinear(base, cfg)
    x = torch.randn(2, 5, 6)
    for mode in integrate.MODES:  # every branch's last matrix starts at zero
        layer.mode = mode
        assert torch.allclose(layer(x), base(x))
    with torch.no_grad():
        for p in layer.parameters():
            if p is not base.weight and p is not base.bias:
                p.normal_()
    out = base(x)
    h_neg = out + 2 * x @ layer.neg_A.weight.T @ layer.neg_B.weight.T
    h_pos = out + 2 * x @ layer.pos_A.weight.T @ layer.pos_B.weight.T
    q, kp, kn = x @ layer.gate_Q.weight.T, h_pos @ layer.gate_K.weight.T, h_neg @ layer.gate_K.weight.T
    a_neg = torch.softmax(torch.stack([(q * kp).sum(-1), (q * kn).sum(-1)], -1), -1)[..., 1:]
    alpha = a_neg - 0.5
    v = lambda h: torch.nn.functional.gelu(h @ layer.value_in.weight.T) @ layer.value_out.weight.T  # noqa: E731
    layer.mode = "integrate"
    assert torch.allclose(layer(x), out + (1 - alpha) * v(h_pos) + alpha * v(h_neg), atol=1e-5)
    layer.mode = "negative"
    assert torch.allclose(layer(x), h_neg, atol=1e-5)


def _params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_three_stages_train_what_they_should(tiny_model_dir, labeled_rollout, tmp_path):
    from peft import LoraConfig

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    neg = NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(output_dir=str(tmp_path / "neg"), max_steps=2,
                                                                learning_rate=1e-2, **COMMON),
                           train_dataset=labeled_rollout, processing_class=tok, peft_config=lora)
    n_neg = sum(not r["label"] for r in labeled_rollout.to_list())
    assert len(neg.train_dataset) == n_neg
    before = _params(neg.model)
    neg.train()
    changed = {n for n, p in neg.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all(".neg_" in n for n in changed)
    assert {n.split(".")[-2] for n in changed} == {"neg_A", "neg_B"}
    neg.save_model()
    saved = json.loads((tmp_path / "neg" / integrate.CONFIG_FILE).read_text())
    assert (saved["r"], saved["lora_alpha"], saved["target_modules"], saved["stage"]) == (4, 8, ["q_proj", "v_proj"],
                                                                                        "negative")
    mix = NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(
        output_dir=str(tmp_path / "mix"), stage="integrate", negative_adapter=str(tmp_path / "neg"), max_steps=3,
        learning_rate=1e-2, **COMMON), train_dataset=labeled_rollout, processing_class=tok)
    loaded = {n: p for n, p in mix.model.named_parameters() if ".neg_" in n}
    trained = {n: p for n, p in neg.model.named_parameters() if ".neg_" in n}
    assert loaded.keys() == trained.keys() and all(torch.equal(loaded[n], trained[n]) for n in loaded)
    before = _params(mix.model)
    mix.train()  # 3 steps: W_V's zero start lets the gradient reach B+ at step 2 and A+ at step 3
    changed = {n for n, p in mix.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and not any(".neg_" in n or ".base." in n for n in changed)
    assert {"pos_A", "pos_B", "gate_Q", "gate_K", "value_in", "value_out"} <= {n.split(".")[-2] for n in changed}
    mix.save_model()
    ids = torch.tensor([mix.train_dataset[0]["input_ids"]])
    from negtune.models.loading import load_model

    reloaded = load_model(str(tmp_path / "mix"), dtype="float32")
    mix.model.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, mix.model(input_ids=ids).logits, atol=1e-5)
    # stage 3: the student's loss on a batch = (1 - a) CE + a KD weighted by the calibration, by hand
    student = NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(
        output_dir=str(tmp_path / "student"), stage="distill", teacher=str(tmp_path / "mix"), max_steps=2,
        learning_rate=1e-2, **COMMON), train_dataset=labeled_rollout, processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    batch = student.data_collator([student.train_dataset[i] for i in range(3)])
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        got = student.compute_loss(student.model, batch).item()
        labels = batch["labels"][:, 1:]
        mask = labels != -100
        q_logits = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        integrate.use(reloaded, "integrate")
        nat = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        integrate.use(reloaded, "negative")
        negl = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    ce = torch.nn.functional.cross_entropy(q_logits.reshape(-1, q_logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=-100)
    kl = (negl.softmax(-1) * (negl.log_softmax(-1) - nat.log_softmax(-1))).sum(-1)
    beta = torch.tanh((kl * mask).sum(-1) / mask.sum(-1))
    kd = ((-(nat.softmax(-1) * q_logits.log_softmax(-1)).sum(-1) * mask).sum(-1) * (0.5 + beta)).sum() / mask.sum()
    assert got == pytest.approx((0.5 * ce + 0.5 * kd).item(), rel=1e-4)
    before = _params(student.model)
    student.train()
    changed = {n for n, p in student.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all("lora_" in n for n in changed)
    assert any("nce_beta" in h for h in student.state.log_history)
    student.save_model()
    assert (tmp_path / "student" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("stage", ["negative", "integrate"])
def test_a_resumed_stage_equals_an_uninterrupted_one(stage, tiny_model_dir, labeled_rollout, tmp_path):
    """Stages 1-2 checkpoint the dual-LoRA layers in their own format and load them back on resume."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    common = {**COMMON, "save_strategy": "steps", "save_steps": 2, "max_steps": 4, "learning_rate": 1e-2}
    extra = {}
    if stage == "integrate":
        first = NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(output_dir=str(tmp_path / "neg"), **COMMON,
                                                                      max_steps=2, learning_rate=1e-2),
                                 train_dataset=labeled_rollout, processing_class=tok)
        first.train()
        first.save_model()
        extra = {"negative_adapter": str(tmp_path / "neg")}

    def run(out, resume=None):
        trainer = NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(output_dir=str(out), stage=stage, **common,
                                                                        **extra),
                                   train_dataset=labeled_rollout, processing_class=tok)
        trainer.train(resume_from_checkpoint=resume)
        return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if ".base." not in n}

    weights = run(tmp_path / "a")
    assert (tmp_path / "a" / "checkpoint-2" / integrate.WEIGHTS_FILE).exists()
    resumed = run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-2"))
    assert weights.keys() == resumed.keys()
    for name in weights:
        assert torch.allclose(weights[name], resumed[name], atol=1e-6), name


def test_stage_inputs_are_checked(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for stage, flag in (("integrate", "--negative_adapter"), ("distill", "--teacher")):
        with pytest.raises(DataError, match=flag):
            NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(output_dir=str(tmp_path / "o"), stage=stage,
                                                                  **COMMON),
                             train_dataset=labeled_rollout, processing_class=tok)
    only_pos = [dict(r, label=True) for r in labeled_rollout.to_list()]
    with pytest.raises(DataError, match="no negative completion"):
        NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(output_dir=str(tmp_path / "o"), **COMMON),
                         train_dataset=only_pos, processing_class=tok)
    with pytest.raises(ValueError, match="--stage"):
        NegAssistConfig(output_dir="x", use_cpu=True, stage="all")
    neg = NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(output_dir=str(tmp_path / "neg"), max_steps=1,
                                                                **COMMON),
                           train_dataset=labeled_rollout, processing_class=tok)
    neg.save_model()
    for bad, match in (({"gate_width": 64}, "--gate_width 64"), ({}, None)):
        args = NegAssistConfig(output_dir=str(tmp_path / "mix"), stage="integrate", max_steps=1,
                               negative_adapter=str(tmp_path / "neg"), **COMMON, **bad)
        if match:
            with pytest.raises(DataError, match=match):
                NegAssistTrainer(str(tiny_model_dir), args, train_dataset=labeled_rollout, processing_class=tok)
        else:
            NegAssistTrainer(str(tiny_model_dir), args, train_dataset=labeled_rollout, processing_class=tok).save_model()
    with pytest.raises(DataError, match="trained to stage 'integrate'"):  # a stage-2 folder is not a stage-1 one
        NegAssistTrainer(str(tiny_model_dir), NegAssistConfig(output_dir=str(tmp_path / "o"), stage="integrate",
                                                              negative_adapter=str(tmp_path / "mix"), **COMMON),
                         train_dataset=labeled_rollout, processing_class=tok)
    model, _ = integrate.load(tmp_path / "mix")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not any(m.training for m in integrate.layers(model).values())


def test_cli_recipes_three_stages(tiny_model_dir, labeled_rollout, tmp_path):
    from negtune.cli import main

    labeled_rollout.to_parquet(str(tmp_path / "ro.parquet"))
    common = ["--model_name_or_path", str(tiny_model_dir), "--dataset", str(tmp_path / "ro.parquet"),
              "--max_steps", "1", "--disable_tqdm", "true"]
    run = lambda recipe, out, *extra: main(["train", "negassist", "--config", str(RECIPES / recipe), *common,  # noqa: E731
                                            "--output_dir", str(tmp_path / out), *extra])
    assert run("tiny.yaml", "neg", "--lora_r", "4") == 0  # the --lora_* flags shape the layers without --use_peft
    assert json.loads((tmp_path / "neg" / integrate.CONFIG_FILE).read_text())["r"] == 4
    assert run("tiny-integrate.yaml", "mix", "--negative_adapter", str(tmp_path / "neg")) == 0
    assert run("tiny-distill.yaml", "student", "--teacher", str(tmp_path / "mix")) == 0
    assert (tmp_path / "student" / "adapter_model.safetensors").exists()
    assert "stage integrate" in (tmp_path / "mix" / "README.md").read_text()


def test_ranking_loss_and_weighted_votes_by_hand():
    from negtune.losses.negassist import ranking_loss, weighted_vote

    pos, neg = torch.tensor([0.9, 0.5], requires_grad=True), torch.tensor([0.2, 0.6], requires_grad=True)
    loss = ranking_loss(pos, neg)
    assert loss.item() == pytest.approx(((0.1 ** 3 + 0.2 ** 3) + (0.5 ** 3 + 0.6 ** 3)) / 2)
    loss.backward()
    assert pos.grad.tolist() == pytest.approx([-3 * 0.1 ** 2 / 2, -3 * 0.5 ** 2 / 2])
    clusters, scores = [0, 1, 1, None, 0, 2], [0.9, 0.2, 0.3, 0.99, 0.8, 0.1]
    assert weighted_vote(clusters, scores, "count") == 0  # 2 vs 2: the answer seen first
    assert weighted_vote([1, 0, 0], [0.9, 0.2, 0.3], "count") == 1
    assert weighted_vote([1, 0, 0], [0.9, 0.2, 0.3], "score") == 0  # 0.9 > 0.5
    assert weighted_vote([1, 0, 0], [0.9, 0.2, 0.3], "one_plus_score") == 1  # 1.9 < 2.5
    assert weighted_vote([1, 0, 0], [0.9, 0.2, 0.3], "one_plus_two_score") == 1  # 2.8 < 3.0
    assert weighted_vote([None, None], [0.5, 0.5]) is None


def test_asc_ranker_learns_and_revotes_an_eval(tiny_model_dir, labeled_rollout, tmp_path):
    """A ranker trained on the rollout separates its right and wrong samples better than chance, and `negtune eval
    asc` re-votes an eval folder's samples with it (majority vote reproduced from the same records)."""
    from negtune.cli import main
    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith
    from negtune.evaluation.asc import RankerConfig, RankerScorer, train_ranker
    from negtune.evaluation.math import MathEvalConfig, evaluate_math

    rows = labeled_rollout.to_list()
    info = train_ranker(rows, tmp_path / "ranker", RankerConfig(backbone=str(tiny_model_dir), epochs=8,
                                                                learning_rate=1e-3))
    assert info["last_loss"] < info["first_loss"]
    scorer = RankerScorer(tmp_path / "ranker")
    by_label = {True: [], False: []}
    for r in rows:
        by_label[bool(r["label"])].append(scorer.scores(r["prompt"], [r["completion"]])[0])
    assert sum(by_label[True]) / len(by_label[True]) > sum(by_label[False]) / len(by_label[False])
    write_jsonl(tmp_path / "p.jsonl", make_arith(4, seed=9, difficulty=1))
    res = evaluate_math(MathEvalConfig(model=str(tiny_model_dir), out=str(tmp_path / "e"),
                                       benchmarks=[str(tmp_path / "p.jsonl")], n=4, temperature=1.0, max_new_tokens=24,
                                       verify_workers=0), progress=False)
    assert main(["eval", "asc", "--samples", str(tmp_path / "e"), "--ranker", str(tmp_path / "ranker"),
                 "--out", str(tmp_path / "asc")]) == 0
    got = json.loads((tmp_path / "asc" / "results.json").read_text())["accuracy"]
    assert got["problems"] == 4 and got["maj"] == pytest.approx(next(iter(res["benchmarks"].values()))["maj@4"])
    assert got["avg"] == pytest.approx(next(iter(res["benchmarks"].values()))["avg@4"])
    assert main(["eval", "asc", "--samples", str(tmp_path / "e"), "--ranker", str(tmp_path / "none"),
                 "--out", str(tmp_path / "asc2")]) == 2  # no ranker and nothing to train it on: named
