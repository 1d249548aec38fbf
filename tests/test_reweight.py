"""LoReUn's loss-based reweighting of the forget term (``reweight: loreun``): the weights by hand, the weighted
losses and their gradients, and the trainer with every unlearning method, full and LoRA, static and dynamic."""

import math

import pytest
import torch
from test_trainers_offline import COMMON, LORA, _snapshot
from transformers import AutoTokenizer

from negtune import methods
from negtune.losses import ga_loss, npo_loss, simnpo_loss
from negtune.losses.reweight import loreun_weights
from negtune.methods import UnlearnTerms
from negtune.trainers import UNLEARN_METHODS, UnlearnConfig, UnlearnTrainer


def test_loreun_weights_by_hand():
    # losses 0.5, 1, 2 at tau 1: exp(-0.5), exp(-1), exp(-2) = 0.60653, 0.36788, 0.13534 (sum 1.10975), x 3
    w = loreun_weights(torch.tensor([0.5, 1.0, 2.0]), temperature=1.0)
    assert w.tolist() == pytest.approx([1.63965, 0.99449, 0.36587], abs=1e-4)
    assert w.mean().item() == pytest.approx(1.0)
    # tau 0.5 doubles the spread: exp(-1), exp(-2), exp(-4) = 0.36788, 0.13534, 0.01832 (sum 0.52154), x 3
    assert loreun_weights(torch.tensor([0.5, 1.0, 2.0]), 0.5).tolist() == pytest.approx([2.11612, 0.77849, 0.10538],
                                                                                         abs=1e-4)


def test_loreun_weights_limits_and_no_gradient():
    losses = torch.tensor([0.3, 2.0, 1.1, 0.9], requires_grad=True)
    assert loreun_weights(losses, 1e6).tolist() == pytest.approx([1.0] * 4, abs=1e-4)  # tau -> inf: plain mean
    assert loreun_weights(losses, 1e-3).tolist() == pytest.approx([4.0, 0, 0, 0], abs=1e-4)  # tau -> 0: argmin
    assert not loreun_weights(losses, 1.0).requires_grad  # the weights say how much, they are not optimised
    with pytest.raises(ValueError, match="temperature must be > 0"):
        loreun_weights(losses, 0.0)


def test_weighted_losses_values_and_gradients():
    logps = torch.tensor([-2.0, -8.0, -5.0], requires_grad=True)
    ref = torch.tensor([-3.0, -6.0, -5.0])
    w = torch.tensor([1.5, 0.5, 1.0])
    beta = 0.5
    # NPO: (2/beta) * (1/B) sum_i w_i softplus(beta * ratio_i); d/dlogp_i = (w_i / B) * 2 sigmoid(beta * ratio_i)
    loss = npo_loss(logps, ref, beta, w)
    ratio = [1.0, -2.0, 0.0]
    softplus = [math.log1p(math.exp(beta * r)) for r in ratio]
    assert loss.item() == pytest.approx((2 / beta) * sum(wi * s for wi, s in zip(w.tolist(), softplus)) / 3, rel=1e-5)
    loss.backward()
    expect = [wi / 3 * 2 / (1 + math.exp(-beta * r)) for wi, r in zip(w.tolist(), ratio)]
    assert logps.grad.tolist() == pytest.approx(expect, rel=1e-5)
    # weights of 1 are the plain losses
    ones = torch.ones(3)
    assert npo_loss(logps, ref, beta, ones).item() == pytest.approx(npo_loss(logps, ref, beta).item())
    lengths = torch.tensor([2, 4, 5])
    assert simnpo_loss(logps, lengths, 2.5, weights=ones).item() == pytest.approx(simnpo_loss(logps, lengths).item())
    # GA, token-normalised: sum_i w_i log p_i / N
    assert ga_loss(logps, 11, w).item() == pytest.approx((1.5 * -2 + 0.5 * -8 + 1.0 * -5) / 11)
    assert ga_loss(logps, 11, ones).item() == pytest.approx(ga_loss(logps, 11).item())


def test_graddiff_objective_weights_the_forget_term_only():
    logps, n = torch.tensor([-2.0, -8.0]), torch.tensor([2, 6])
    w = torch.tensor([1.5, 0.5])
    args = UnlearnConfig(output_dir="x", method="graddiff", forget_weight=1.0, retain_weight=2.0, use_cpu=True)
    terms = UnlearnTerms(logps=logps, n_tokens=n, forget_nll=-logps.sum() / n.sum(), retain_nll=torch.tensor(0.7),
                         weights=w)
    loss = methods.get("graddiff").unlearn_objective(terms, args)
    # -gamma * (sum_i w_i NLL_i / N) + alpha * NLL_retain = -(1.5*2 + 0.5*8)/8 + 2*0.7
    assert loss.item() == pytest.approx(-(1.5 * 2 + 0.5 * 8) / 8 + 1.4)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("method", UNLEARN_METHODS)
def test_every_unlearning_method_trains_with_loreun(method, lora, tiny_facts_model_dir, synthetic_tofu, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    args = UnlearnConfig(output_dir=str(tmp_path / "o"), method=method, ref_cache_dir=str(tmp_path / "c"),
                         reweight="loreun", reweight_temperature=0.5, **{**COMMON, "per_device_train_batch_size": 8})
    trainer = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                             retain_dataset=synthetic_tofu["retain90"], processing_class=tok,
                             peft_config=LORA if lora else None)
    before = _snapshot(trainer.model)
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed and (all("lora_" in n for n in changed) if lora else len(changed) >= len(before) // 2)
    logged = trainer.state.log_history[0]
    assert logged["reweight_max"] > 1.0 > logged["reweight_min"] > 0  # the batch's examples are told apart


def test_loreun_static_weights_come_from_the_model_before_unlearning(tiny_facts_model_dir, synthetic_tofu,
                                                                     tmp_path):
    """GA needs no reference; ``reweight_loss: reference`` makes the trainer cache the original model's
    log-probs, and the weights of a batch are then the same at every step (the original model does not move)."""
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    forget = synthetic_tofu["forget10"][:8]
    weights = {}
    for source in ("reference", "current"):
        args = UnlearnConfig(output_dir=str(tmp_path / source), method="ga", ref_cache_dir=str(tmp_path / "c"),
                             reweight="loreun", reweight_loss=source, **{**COMMON, "max_steps": 3,
                                                                         "per_device_train_batch_size": 8,
                                                                         "learning_rate": 5e-3})
        trainer = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=forget, processing_class=tok)
        assert (trainer.ref_cache_file is not None) == (source == "reference")
        trainer.train()
        weights[source] = [h["reweight_max"] for h in trainer.state.log_history if "reweight_max" in h]
    assert weights["reference"] == pytest.approx([weights["reference"][0]] * 3, rel=1e-5)
    assert weights["current"][0] == pytest.approx(weights["reference"][0], rel=1e-4)  # step 1: the same model
    assert weights["current"][-1] != pytest.approx(weights["current"][0], rel=1e-3)  # then the model moves


def test_reweight_config_errors():
    for bad, match in (({"reweight": "focal"}, "--reweight must be"), ({"reweight_loss": "old"}, "--reweight_loss"),
                       ({"reweight_temperature": 0.0}, "--reweight_temperature must be > 0"),
                       ({"reweight": "loreun", "per_device_train_batch_size": 1}, "every weight is 1")):
        with pytest.raises(ValueError, match=match):
            UnlearnConfig(output_dir="x", method="npo", use_cpu=True, **bad)


def test_the_loreun_recipe_runs_from_the_command_line(tiny_facts_model_dir, tmp_path):
    import json
    from pathlib import Path

    from negtune.cli import main
    from negtune.data.tasks.facts import write_tofu_synthetic

    recipe = Path(__file__).resolve().parents[1] / "recipes/npo/tiny-loreun.yaml"
    tofu, out = write_tofu_synthetic(tmp_path / "tofu"), tmp_path / "out"
    assert main(["train", "npo", "--config", str(recipe), "--model_name_or_path", str(tiny_facts_model_dir),
                 "--tofu_root", str(tofu), "--output_dir", str(out), "--max_steps", "2", "--disable_tqdm", "true",
                 "--ref_cache_dir", str(tmp_path / "c"), "--reweight_loss", "reference"]) == 0
    card = (out / "README.md").read_text()
    assert '"reweight": "loreun"' in card and '"reweight_loss": "reference"' in card
    logged = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert all(h["reweight_max"] > 1.0 for h in logged if "loss" in h)
