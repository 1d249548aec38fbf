"""Configuration of :class:`negtune.trainers.NegAssistTrainer` (negative-assisted distillation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

STAGES = ("negative", "integrate", "distill")


@dataclass
class NegAssistConfig(TrainingArguments):
    """Negative-assisted distillation (Li et al. 2024, "Turning Dust into Gold"; :mod:`negtune.losses.negassist`),
    one stage per run, all three on the same labeled dataset (a teacher's rationales, labeled right or wrong):

    1. ``--stage negative``: the negative assistant, a LoRA branch trained on the wrong rationales;
    2. ``--stage integrate --negative_adapter OUT1``: a positive LoRA branch and the integrate unit trained on
       the right rationales, the negative branch frozen (the paper's NAT model: usable as ``--model OUT2``
       with the transformers engine);
    3. ``--stage distill --teacher OUT2``: a fresh student (LoRA with ``--use_peft``, else full) learns the
       right rationales, cross-entropy plus distillation from the integrated model, each example's
       distillation weighted by 0.5 + tanh(KL(assistant || integrated)).

    The LoRA rank, alpha, dropout and target modules of stages 1-2 come from the usual ``--lora_r``,
    ``--lora_alpha``, ``--lora_dropout``, ``--lora_target_modules`` at stage 1, ``--use_peft`` or not (TRL's
    defaults 16 / 32 / 0.05 unless given; the authors': 8, 16, 0.05, q_proj/v_proj, as the tiny recipe sets);
    stage 2 reads them and the gate width from stage 1's folder and takes its own ``--gate_beta`` and
    ``--gate_temperature`` (the gate trains there). The loss covers the answer tokens (the authors' code also
    trains on the question's tokens).
    """

    method: str = field(default="negassist", metadata={"help": "fixed: lets a recipe name its method"})
    stage: str = field(default="negative", metadata={
        "help": "negative (assistant on the wrong rationales), integrate (positive branch + gate on the right "
                "ones), distill (a student from the integrated model)", "choices": list(STAGES)})
    negative_adapter: str | None = field(default=None, metadata={
        "help": "stage integrate: the output folder of --stage negative"})
    teacher: str | None = field(default=None, metadata={"help": "stage distill: the output folder of --stage "
                                                                "integrate"})
    gate_width: int = field(default=128, metadata={"help": "width of the integrate unit's query/key/value (128)"})
    gate_beta: float = field(default=0.5, metadata={"help": "beta: the negative branch's weight lies in "
                                                            "[-beta, beta] (0.5)"})
    gate_temperature: float = field(default=1.0, metadata={"help": "T of the gate's softmax (1)"})
    kd_weight: float = field(default=0.5, metadata={"help": "stage distill: a in (1 - a) CE + a KD (0.5)"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+completion to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the label column"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "negassist":
            raise ValueError(f"--method {self.method!r} does not match this config (negassist)")
        if self.stage not in STAGES:
            raise ValueError(f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if not 0.0 <= self.kd_weight <= 1.0 or self.gate_beta < 0 or self.gate_temperature <= 0:
            raise ValueError("need 0 <= --kd_weight <= 1, --gate_beta >= 0, --gate_temperature > 0")
