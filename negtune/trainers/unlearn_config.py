"""Configuration of :class:`negtune.trainers.UnlearnTrainer` (GA, GradDiff, NPO, NPO+RT, NPO+KL, SimNPO)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from negtune import methods

UNLEARN_METHODS = methods.names("unlearn")


@dataclass
class UnlearnConfig(TrainingArguments):
    """Unlearning on a forget set; each forget example is paired with a retain example drawn afresh at every
    access (open-unlearning's ``ForgetRetainDataset``; reproducible from ``data_seed``/``seed``).

    Each method's objective is its entry in the registry (``negtune.methods``; the losses are in
    ``negtune.losses.npo``), with gamma = ``forget_weight`` and alpha = ``retain_weight``:
    ``ga``: gamma * L_GA; ``graddiff``: -gamma * NLL_forget + alpha * NLL_retain; ``npo``: gamma * L_NPO;
    ``npo_rt``: gamma * L_NPO + alpha * NLL_retain; ``npo_kl``: gamma * L_NPO + alpha * KL(pi_ref || pi_theta) on
    the retain batch (averaged as ``kl_reduction`` says); ``simnpo``: gamma * L_SimNPO (+ alpha * NLL_retain when a
    retain set is given; its margin as ``simnpo_delta_form`` says).
    ``reweight: loreun`` replaces the forget term's plain mean over the batch by LoReUn's weighted mean
    (:func:`negtune.losses.reweight.loreun_weights`), whatever the method.
    Unset fields take the method's registry defaults (``beta``: 0.1 for the NPO family, 2.5 for SimNPO).
    """

    method: str = field(default="npo", metadata={"help": f"one of {', '.join(UNLEARN_METHODS)}"})
    beta: float | None = field(
        default=None,
        metadata={"help": "inverse temperature; default 0.1 for NPO, 2.5 for SimNPO (TOFU forget05; 4.5 for forget10)"},
    )
    forget_weight: float = field(default=1.0, metadata={"help": "gamma: weight of the forget term "
                                                                 "(open-unlearning SimNPO on TOFU: 0.1375 / 0.125)"})
    retain_weight: float = field(default=1.0, metadata={"help": "alpha: weight of the retain term"})
    simnpo_delta: float = field(default=0.0, metadata={"help": "SimNPO's reward margin gamma (0 on TOFU)"})
    simnpo_delta_form: str = field(default="reference", metadata={"help": (
        "how SimNPO's margin enters: 'reference' (default; the SimNPO authors' code and open-unlearning): "
        "-(2/beta) log sigmoid(-(beta/|y|) log pi(y|x) - beta*delta), the margin scaled by beta, as every published "
        "SimNPO setting was tuned; 'paper' (the paper's equation): ... - delta), unscaled. Equal when delta = 0"),
        "choices": ["reference", "paper"]})
    kl_reduction: str = field(default="batchmean", metadata={"help": (
        "npo_kl: how KL(pi_ref || pi) on the retain batch is averaged. 'batchmean' (default; open-unlearning's "
        "F.kl_div(..., reduction='batchmean', log_target=True) over the flattened logits): the mean over every "
        "position of the padded retain batch (B x T: prompt, answer and padding), so it also holds the prompt "
        "distributions to pi_ref and its scale depends on the padding; 'answer_mean' (negtune's earlier form): "
        "the mean over the retain answer tokens only"), "choices": ["batchmean", "answer_mean"]})
    reweight: str = field(default="none", metadata={"help": (
        "per-example weights of the forget term, for every method: 'none' (the plain mean) or 'loreun' (LoReUn, "
        "Li et al. 2025: w_i = B softmax(-l_i / tau), more weight to the forget examples the model still "
        "predicts well; l_i = mean answer-token NLL; the retain term is not reweighted)"),
        "choices": ["none", "loreun"]})
    reweight_temperature: float = field(default=1.0, metadata={"help": (
        "tau of reweight=loreun: small tau concentrates the batch's weight on its lowest-loss examples, "
        "large tau tends to the plain mean")})
    reweight_loss: str = field(default="current", metadata={"help": (
        "whose loss sets LoReUn's weights: 'current' (LoReUn's dynamic variant: the model being unlearned, from "
        "the same forward pass) or 'reference' (static: the model before unlearning, from the cached "
        "reference log-probs)"), "choices": ["current", "reference"]})
    max_length: int = field(default=512, metadata={"help": "truncate prompt+answer to this many tokens"})
    system_prompt: str | None = field(default=None, metadata={
        "help": "system message before each question (chat templates); give the one the model will be "
                "evaluated with (open-unlearning's Llama-3.2 models: 'You are a helpful assistant.', as "
                "negtune eval tofu --system-prompt)"})
    ref_cache_dir: str | None = field(
        default=None, metadata={"help": "cache of reference log-probs (default $NEGTUNE_CACHE/ref_logps)"}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the paired forget/retain columns"})

    def __post_init__(self):
        super().__post_init__()
        if self.method not in UNLEARN_METHODS:
            raise ValueError(f"--method {self.method!r}: expected one of {', '.join(UNLEARN_METHODS)}")
        if self.beta is None:  # the method's own default (GA and GradDiff do not use beta)
            self.beta = methods.get(self.method).defaults.get("beta", 0.1)
        if self.beta <= 0:
            raise ValueError(f"--beta must be > 0, got {self.beta}")
        if self.forget_weight < 0 or self.retain_weight < 0:  # a negative one would flip its term's direction
            raise ValueError(f"--forget_weight and --retain_weight must be >= 0, got {self.forget_weight} and "
                             f"{self.retain_weight}")
        if self.simnpo_delta_form not in ("reference", "paper"):
            raise ValueError(f"--simnpo_delta_form must be 'reference' or 'paper', got {self.simnpo_delta_form!r}")
        if self.reweight not in ("none", "loreun"):
            raise ValueError(f"--reweight must be 'none' or 'loreun', got {self.reweight!r}")
        if self.reweight_loss not in ("current", "reference"):
            raise ValueError(f"--reweight_loss must be 'current' or 'reference', got {self.reweight_loss!r}")
        if self.reweight == "loreun" and self.per_device_train_batch_size < 2:
            raise ValueError("--reweight loreun normalises its weights within each process's batch: with "
                             "--per_device_train_batch_size 1 every weight is 1 (the plain method); use 2 or more")
        if self.reweight_temperature <= 0:
            raise ValueError(f"--reweight_temperature must be > 0, got {self.reweight_temperature}")
        if self.kl_reduction not in ("batchmean", "answer_mean"):
            raise ValueError(f"--kl_reduction must be 'batchmean' or 'answer_mean', got {self.kl_reduction!r}")
