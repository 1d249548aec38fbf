"""The method registry: every training method negtune has, named in one place.

Each :class:`Method` entry says what the method is (its loss, paper and one-line objective), how it is
configured (config class and the defaults that set it apart from that class's), which trainer runs it and
what data it reads. Everything else is generated from or checked against this table: ``negtune train``'s
choices and per-method defaults, ``online_config``, the unlearning trainer's objective, the recipes folder
(one ``recipes/<name>/tiny.yaml`` per entry), the model card, the demo's labels and the README's method
tables (``tests/test_methods.py`` checks that they all agree).

Adding a method is one pure loss in ``negtune.losses`` (equation in its docstring, hand-computed tests),
one entry here and one ``recipes/<name>/tiny.yaml``.

Config and trainer classes are named by import path so that this module imports nothing heavy (the trainers
import it for their own tables).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from negtune.losses import click as _click
from negtune.losses import goldfish as _goldfish
from negtune.losses import likra as _likra
from negtune.losses import nat as _nat
from negtune.losses import negassist as _negassist
from negtune.losses import npo as _npo
from negtune.losses import reweight as _reweight
from negtune.losses import rlvr as _rlvr
from negtune.losses import steps as _steps
from negtune.losses import token_forget as _token_forget
from negtune.losses.contrastive import contrastive_rationale_loss
from negtune.losses.unlikelihood import negative_unlikelihood_loss

FAMILIES = {
    "unlearn": "unlearning: a forget set (and a retain set) of question/answer pairs",
    "labeled": "a labeled dataset: positive and negative completions (token_forget: fine-tuning text, label "
               "optional)",
    "offline_rlvr": "a labeled rollout with group pass rates (`negtune rollout` output)",
    "online_rlvr": "prompts with gold answers; completions sampled and verified during training",
    "step_rlvr": "a labeled rollout whose samples carry Monte-Carlo step values (`negtune step-values` output)",
}


@dataclass(frozen=True)
class UnlearnTerms:
    """What the unlearning trainer hands a method's objective for one batch (tensors of shape (B,) or scalars).

    ``logps``: summed answer log-probs of the forget examples; ``n_tokens``: their answer lengths;
    ``forget_nll``: mean token NLL over the batch's forget answers; ``ref_logps``: cached reference log-probs
    (methods with ``needs_reference``); ``retain_nll`` / ``retain_kl``: the retain term the entry asks for
    (``retain="nll"`` / ``"kl"``), None when the batch has no retain examples; ``weights``: per-example weights
    of the forget term (``reweight: loreun``; mean 1), None for the plain mean."""

    logps: Any
    n_tokens: Any
    forget_nll: Any
    ref_logps: Any = None
    retain_nll: Any = None
    retain_kl: Any = None
    weights: Any = None


def _forget_nll(t: UnlearnTerms) -> Any:
    """The forget NLL GradDiff ascends: token-mean over the batch, each example's tokens scaled by its weight."""
    return t.forget_nll if t.weights is None else -_npo.ga_loss(t.logps, t.n_tokens.sum(), t.weights)


def _plus_retain(loss, terms: UnlearnTerms, a) -> Any:
    """forget term + alpha * the retain term (NLL or KL), when the batch has one."""
    retain = terms.retain_kl if terms.retain_kl is not None else terms.retain_nll
    return loss if retain is None else loss + a.retain_weight * retain


@dataclass(frozen=True)
class Method:
    """One training method. ``defaults`` are the config fields that differ from the config class's defaults;
    they are applied before anything else is resolved (a config file and the command line override them)."""

    name: str
    family: str  # a key of FAMILIES: decides which data the method reads
    config: str  # "module:Class" of its config dataclass
    trainer: str  # "module:Class" of its trainer
    loss: Callable  # the pure loss in negtune.losses with the paper's equation
    objective: str  # one line for tables and model cards
    paper: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    baseline: bool = False  # a comparison point (GRPO, RFT, ...), not a method from the negatives literature
    # unlearning only
    unlearn_objective: Callable[[UnlearnTerms, Any], Any] | None = None
    needs_reference: bool = False  # log pi_ref of the forget answers (computed once, cached on disk)
    retain: str | None = None  # the retain term: "nll", "kl" (needs pi_ref on retain batches) or None
    needs_retain: bool = False  # refuses to run without retain data

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def config_class(self) -> type:
        return _load(self.config)

    @property
    def trainer_class(self) -> type:
        return _load(self.trainer)

    @property
    def loss_name(self) -> str:
        return f"{self.loss.__module__}.{self.loss.__qualname__}"

    def make_config(self, **kwargs: Any):
        """The method's config: its defaults, then ``kwargs``."""
        return self.config_class(**{**self.defaults, **kwargs})


def _load(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_UNLEARN = ("negtune.trainers.unlearn_config:UnlearnConfig", "negtune.trainers.unlearn_trainer:UnlearnTrainer")
_NFT_OFFLINE = ("negtune.trainers.nft_config:OfflineNFTConfig",
                "negtune.trainers.nft_offline_trainer:OfflineNFTTrainer")
_NFT = ("negtune.trainers.nft_config:NFTConfig", "negtune.trainers.nft_trainer:NFTTrainer")
_GRPO = ("negtune.trainers.rlvr_config:GRPOBaselineConfig",  # TRL's, + updates_per_generation and exact resume
         "negtune.trainers.grpo_trainer:GRPOTrainer")
_NPO_PAPER = "Zhang et al. 2024, Negative Preference Optimization (arXiv:2404.05868)"
_NFT_PAPER = "Chen et al. 2025, Bridging Supervised Learning and RL in Math Reasoning (NFT, arXiv:2505.18116)"

_ENTRIES = [
    # --- unlearning: a forget set, optionally a retain set --------------------------------------------------
    Method("ga", "unlearn", *_UNLEARN, loss=_npo.ga_loss,
           objective="gradient ascent: minimise the forget log-likelihood",
           paper="Jang et al. 2023, Knowledge Unlearning (arXiv:2210.01504); TOFU (Maini et al. 2024)",
           defaults={"method": "ga"}, baseline=True,
           unlearn_objective=lambda t, a: a.forget_weight * _npo.ga_loss(t.logps, t.n_tokens.sum(), t.weights)),
    Method("graddiff", "unlearn", *_UNLEARN, loss=_npo.graddiff_loss,
           objective="-gamma NLL_forget + alpha NLL_retain",
           paper="Liu et al. 2022, Continual Learning and Private Unlearning; TOFU (Maini et al. 2024)",
           defaults={"method": "graddiff"}, baseline=True, retain="nll", needs_retain=True,
           unlearn_objective=lambda t, a: _npo.graddiff_loss(_forget_nll(t), t.retain_nll, a.forget_weight,
                                                             a.retain_weight)),
    Method("npo", "unlearn", *_UNLEARN, loss=_npo.npo_loss,
           objective="(2/beta) softplus(beta (log pi - log pi_ref)) on the forget set",
           paper=_NPO_PAPER, defaults={"method": "npo", "beta": 0.1}, needs_reference=True,
           unlearn_objective=lambda t, a: a.forget_weight * _npo.npo_loss(t.logps, t.ref_logps, a.beta, t.weights)),
    Method("npo_rt", "unlearn", *_UNLEARN, loss=_npo.npo_loss,
           objective="NPO + alpha NLL_retain", paper=_NPO_PAPER,
           defaults={"method": "npo_rt", "beta": 0.1}, needs_reference=True, retain="nll", needs_retain=True,
           unlearn_objective=lambda t, a: _plus_retain(
               a.forget_weight * _npo.npo_loss(t.logps, t.ref_logps, a.beta, t.weights), t, a)),
    Method("npo_kl", "unlearn", *_UNLEARN, loss=_npo.kl_ref_policy,
           objective="NPO + alpha KL(pi_ref || pi) on the retain set", paper=_NPO_PAPER,
           defaults={"method": "npo_kl", "beta": 0.1}, needs_reference=True, retain="kl", needs_retain=True,
           unlearn_objective=lambda t, a: _plus_retain(
               a.forget_weight * _npo.npo_loss(t.logps, t.ref_logps, a.beta, t.weights), t, a)),
    Method("simnpo", "unlearn", *_UNLEARN, loss=_npo.simnpo_loss,
           objective="reference-free, length-normalised NPO (+ alpha NLL_retain when a retain set is given)",
           paper="Fan et al. 2024, Simplicity Prevails: Rethinking NPO for LLM Unlearning (arXiv:2410.07163)",
           defaults={"method": "simnpo", "beta": 2.5}, retain="nll",
           unlearn_objective=lambda t, a: _plus_retain(
               a.forget_weight * _npo.simnpo_loss(t.logps, t.n_tokens, a.beta, a.simnpo_delta,
                                                  a.simnpo_delta_form, t.weights), t, a)),
    # --- labeled positives and negatives --------------------------------------------------------------------
    Method("unlikelihood", "labeled", "negtune.trainers.unlikelihood_config:UnlikelihoodConfig",
           "negtune.trainers.unlikelihood_trainer:UnlikelihoodTrainer", loss=negative_unlikelihood_loss,
           objective="NLL on positives + alpha * -log(1 - p) on every negative token (+ token/sequence UL)",
           paper="Welleck et al. 2019, Neural Text Generation with Unlikelihood Training (arXiv:1908.04319)"),
    Method("contrastive", "labeled", "negtune.trainers.contrastive_config:ContrastiveRationaleConfig",
           "negtune.trainers.contrastive_trainer:ContrastiveRationaleTrainer", loss=contrastive_rationale_loss,
           objective="a1 L_answer + a2 weighted NLL(positives) + a3 weighted max(0, delta - NLL(negatives))",
           paper="Wang et al. 2024, QCRD: Quality-guided Contrastive Rationale Distillation"),
    Method("nat", "labeled", "negtune.trainers.nat_config:NATConfig", "negtune.trainers.nat_trainer:NATTrainer",
           loss=_nat.nat_loss,
           objective="NLL of positives under a positive marker and negatives under a negative one; sample with +",
           paper="Wang et al. 2024, Learning From Failure: Integrating Negative Examples when Fine-tuning LLMs "
                 "as Agents (NAT, arXiv:2402.11651)"),
    Method("likra", "labeled", "negtune.trainers.likra_config:LikraConfig",
           "negtune.trainers.likra_trainer:LikraTrainer", loss=_likra.likra_score,
           objective="a positive and a negative LoRA head (NLL each); answers scored by log P+ - beta log P-",
           paper="Hamdan and Yuret 2025, How much do LLMs learn from negative examples? (Likra, arXiv:2503.14391)"),
    Method("click", "labeled", "negtune.trainers.click_config:ClickConfig",
           "negtune.trainers.click_trainer:ClickTrainer", loss=_click.click_loss,
           objective="NLL of positives + alpha * max(0, gamma - log p(y+) + log p(y-)) on likelihood-ranked pairs",
           paper="Zheng et al. 2023, Click: Controllable Text Generation with Sequence Likelihood Contrastive "
                 "Learning (arXiv:2306.03350)"),
    Method("negassist", "labeled", "negtune.trainers.negassist_config:NegAssistConfig",
           "negtune.trainers.negassist_trainer:NegAssistTrainer", loss=_negassist.nce_loss,
           objective="a LoRA on the wrong rationales, a gated positive LoRA beside it, then a student distilled "
                     "with each example weighted by 0.5 + tanh(KL(negative || integrated))",
           paper="Li et al. 2024, Turning Dust into Gold: Distilling Complex Reasoning Capabilities from LLMs by "
                 "Leveraging Negative Data (arXiv:2312.12832)"),
    Method("token_forget", "labeled", "negtune.trainers.token_forget_config:TokenForgetConfig",
           "negtune.trainers.token_forget_trainer:TokenForgetTrainer", loss=_token_forget.token_forget_loss,
           objective="NLL of the answer tokens a reference model learned (top rho by influence) - lambda(t) * NLL "
                     "of the rest",
           paper="Taheri Ghahrizjani et al. 2025, Forgetting: A New Mechanism Towards Better Large Language Model "
                 "Fine-tuning (arXiv:2508.04329)"),
    # --- RLVR from a labeled rollout --------------------------------------------------------------------------
    Method("nft_offline", "offline_rlvr", *_NFT_OFFLINE, loss=_rlvr.nft_token_loss,
           objective="NFT on a fixed rollout: positives up, negatives through the implicit negative policy",
           paper=_NFT_PAPER, defaults={"method": "nft"}),
    Method("rft_offline", "offline_rlvr", *_NFT_OFFLINE, loss=_rlvr.nft_token_loss,
           objective="rejection-sampling fine-tuning on a fixed rollout (NFT with neg_weight 0)",
           paper=_NFT_PAPER, defaults={"method": "rft"}, baseline=True),  # OfflineNFTConfig: rft = neg_weight 0
    # --- RLVR from a rollout with step values -----------------------------------------------------------------
    Method("step_pg", "step_rlvr", "negtune.trainers.step_pg_config:StepPGConfig",
           "negtune.trainers.step_pg_trainer:StepPGTrainer", loss=_steps.step_pg_loss,
           objective="clipped policy gradient with per-step advantages Q_i - Q_{i-1} from Monte-Carlo "
                     "continuations: a wrong answer's first wrong step is penalised, its correct steps are not",
           paper="Setlur et al. 2024, RL on Incorrect Synthetic Data Scales the Efficiency of LLM Math Reasoning "
                 "by Eight-Fold (arXiv:2406.14532); --credit nsa: BCPG-NSA (arXiv:2505.14403)"),
    Method("step_dpo", "step_rlvr", "negtune.trainers.step_dpo_config:StepDPOConfig",
           "negtune.trainers.step_dpo_trainer:StepDPOTrainer", loss=_steps.step_dpo_loss,
           objective="DPO on step-level pairs: prompt + prefix before the first pit, a correct continuation from "
                     "it (chosen) against the pit step (rejected)",
           paper="Hwang et al. 2024, Self-Explore: Enhancing Mathematical Reasoning in Language Models with "
                 "Fine-grained Rewards (arXiv:2404.10346)"),
    # --- online RLVR (TRL's GRPO machinery) -------------------------------------------------------------------
    Method("grpo", "online_rlvr", *_GRPO, loss=_rlvr.grpo_advantages,
           objective="GRPO: group-normalised advantages, PPO clip, token-mean loss as NFT/NGRPO (TRL)",
           paper="Shao et al. 2024, DeepSeekMath (arXiv:2402.03300)", defaults={"loss_type": "dapo"},
           baseline=True),
    Method("dr_grpo", "online_rlvr", *_GRPO, loss=_rlvr.grpo_advantages,
           objective="Dr.GRPO: unscaled advantages, constant normaliser (TRL)",
           paper="Liu et al. 2025, Understanding R1-Zero-Like Training (arXiv:2503.20783)",
           defaults={"loss_type": "dr_grpo", "scale_rewards": "none"}, baseline=True),
    Method("ngrpo", "online_rlvr", "negtune.trainers.ngrpo_config:NGRPOConfig",
           "negtune.trainers.ngrpo_trainer:NGRPOTrainer", loss=_rlvr.ngrpo_advantages,
           objective="GRPO + advantage calibration (virtual max-reward sample) + asymmetric clipping",
           paper="Nan et al. 2025, NGRPO: Negative-enhanced Group Relative Policy Optimization"),
    Method("nft", "online_rlvr", *_NFT, loss=_rlvr.nft_token_loss,
           objective="NFT: likelihood on positives, implicit negative policy on negatives", paper=_NFT_PAPER),
    Method("rft", "online_rlvr", *_NFT, loss=_rlvr.nft_token_loss,
           objective="rejection-sampling fine-tuning online (NFT with neg_weight 0)", paper=_NFT_PAPER,
           defaults={"neg_weight": 0.0}, baseline=True),
]

METHODS: dict[str, Method] = {m.name: m for m in _ENTRIES}


@dataclass(frozen=True)
class Plugin:
    """An option that changes one part of several methods' losses (a config field, not a method of its own)."""

    name: str
    flag: str  # the config field that switches it on, and the value
    methods: tuple[str, ...]  # the methods whose config has the field
    loss: Callable  # its pure function in negtune.losses
    what: str
    paper: str
    recipe: str


PLUGINS: dict[str, Plugin] = {p.name: p for p in (
    Plugin("loreun", "--reweight loreun", tuple(m.name for m in _ENTRIES if m.family == "unlearn"),
           _reweight.loreun_weights,
           "loss-based reweighting of the forget examples: w_i = B softmax(-NLL_i / tau)",
           "Li et al. 2025, LoReUn: Data Itself Implicitly Provides Cues to Improve Machine Unlearning "
           "(arXiv:2507.22499)", "recipes/npo/tiny-loreun.yaml"),
    Plugin("goldfish", "--goldfish_k K", ("unlikelihood", "contrastive", "nat"), _goldfish.goldfish_drop_mask,
           "1 in k positive answer tokens left out of the likelihood loss, by a hash of the tokens ending at it",
           "Hans et al. 2024, Be like a Goldfish, Don't Memorize! (arXiv:2406.10209)",
           "recipes/unlikelihood/tiny-goldfish.yaml"),
)}


def get(name: str) -> Method:
    """The registry entry, or a ValueError that lists the known methods."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def names(family: str | None = None) -> tuple[str, ...]:
    """Method names, optionally of one family (``unlearn``, ``labeled``, ``offline_rlvr``, ``online_rlvr``)."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    return tuple(m.name for m in _ENTRIES if family is None or m.family == family)


def retain_methods() -> tuple[str, ...]:
    """The unlearning methods that train on a retain set (named where another method is given one)."""
    return tuple(m.name for m in _ENTRIES if m.family == "unlearn" and m.retain)


def make_config(name: str, **kwargs: Any):
    """``make_config("simnpo", output_dir=...)``: the method's config with its defaults, then ``kwargs``."""
    return get(name).make_config(**kwargs)


def markdown_table(family: str | None = None) -> str:
    """The README's table of methods (generated here; ``tests/test_methods.py`` checks the README has it)."""
    lines = ["| `negtune train ...` | config / trainer | objective | loss (`negtune.losses`) | paper |",
             "|---|---|---|---|---|"]
    for m in _ENTRIES:
        if family is not None and m.family != family:
            continue
        cls = f"`{m.config.split(':')[1]}` / `{m.trainer.split(':')[1]}`"
        defaults = ", ".join(f"{k}={v}" for k, v in m.defaults.items() if k != "method")
        cells = [f"`{m.name}`{' (baseline)' if m.baseline else ''}", f"{cls}{f' ({defaults})' if defaults else ''}",
                 m.objective, f"`{m.loss.__name__}`", m.paper]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
