"""The dual-LoRA layer of negative-assisted distillation (:mod:`negtune.losses.negassist`): a frozen base
linear layer with a negative LoRA branch, a positive one and the integrate unit that mixes them per position.

A model gets the layers with :func:`attach` (every linear module whose name ends with one of
``target_modules``), trains in ``mode="negative"`` (base + the negative branch: the negative assistant) or
``mode="integrate"`` (both branches through the gate, the negative one frozen), and is saved with
:func:`save` as a small safetensors file plus ``negassist.json`` next to it; :func:`load` rebuilds it on its
base model. Neither PEFT nor vLLM knows this layer: such a model is evaluated with the transformers engine.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from negtune.losses.negassist import integrate_gate

CONFIG_FILE = "negassist.json"
WEIGHTS_FILE = "negassist.safetensors"
MODES = ("negative", "integrate")


@dataclass
class IntegrateConfig:
    """The layers' shape: LoRA rank and alpha of both branches, dropout, the gate's width, beta and temperature
    (the authors: r 8, alpha 16, dropout 0.05, q_proj/v_proj, width 128, beta 0.5, T 1)."""

    base_model: str = ""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    r: int = 8
    lora_alpha: float = 16.0
    dropout: float = 0.05
    width: int = 128
    beta: float = 0.5
    temperature: float = 1.0
    stage: str = "negative"  # the last stage trained: negative (assistant only) or integrate


class IntegratedLoRALinear(nn.Module):
    """out = W0 x + s B- A- x (mode negative) or W0 x + (1 - alpha) v+ + alpha v- (mode integrate)."""

    def __init__(self, base: nn.Linear, cfg: IntegrateConfig):
        super().__init__()
        self.base, self.cfg, self.mode = base, cfg, "negative"
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        n_in, n_out = base.in_features, base.out_features
        self.scaling = cfg.lora_alpha / cfg.r
        self.drop = nn.Dropout(cfg.dropout)
        self.pos_A, self.pos_B = nn.Linear(n_in, cfg.r, bias=False), nn.Linear(cfg.r, n_out, bias=False)
        self.neg_A, self.neg_B = nn.Linear(n_in, cfg.r, bias=False), nn.Linear(cfg.r, n_out, bias=False)
        self.gate_Q, self.gate_K = nn.Linear(n_in, cfg.width, bias=False), nn.Linear(n_out, cfg.width, bias=False)
        self.value_in, self.value_out = nn.Linear(n_out, cfg.width, bias=False), nn.Linear(cfg.width, n_out, bias=False)
        for A in (self.pos_A, self.neg_A, self.gate_Q, self.gate_K, self.value_in):
            nn.init.kaiming_uniform_(A.weight, a=math.sqrt(5))
        for B in (self.pos_B, self.neg_B, self.value_out):  # every branch starts at zero: the model is the base
            nn.init.zeros_(B.weight)
        dtype, device = base.weight.dtype, base.weight.device
        for name, p in self.named_parameters():
            if not name.startswith("base."):
                p.data = p.data.to(device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        dropped = self.drop(x)
        h_neg = out + self.scaling * self.neg_B(self.neg_A(dropped))
        if self.mode == "negative":
            return h_neg
        h_pos = out + self.scaling * self.pos_B(self.pos_A(dropped))
        alpha = integrate_gate(self.gate_Q(x), self.gate_K(h_pos), self.gate_K(h_neg), self.cfg.beta,
                               self.cfg.temperature)
        value = lambda h: self.value_out(nn.functional.gelu(self.value_in(h)))  # noqa: E731
        return out + (1 - alpha) * value(h_pos) + alpha * value(h_neg)


def layers(model) -> dict[str, IntegratedLoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, IntegratedLoRALinear)}


def attach(model, cfg: IntegrateConfig) -> dict[str, IntegratedLoRALinear]:
    """Wrap every ``nn.Linear`` whose name ends with a target module; freezes every base parameter."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)
               and any(n == t or n.endswith("." + t) for t in cfg.target_modules)]
    if not targets:
        raise ValueError(f"no linear layer named {cfg.target_modules} in the model")
    for name, module in targets:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, IntegratedLoRALinear(module, cfg))
    return layers(model)


def set_stage(model, mode: str) -> None:
    """``negative``: only the negative branch trains and runs; ``integrate``: the negative branch frozen, the
    positive branch and the gate train."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for layer in layers(model).values():
        layer.mode = mode
        for name, p in layer.named_parameters():
            if name.startswith("base."):
                continue
            p.requires_grad_(name.startswith("neg_") if mode == "negative" else not name.startswith("neg_"))


def use(model, mode: str) -> None:
    """Switch the forward pass (``negative``: the assistant alone) without touching what trains."""
    for layer in layers(model).values():
        layer.mode = mode


def save(model, folder: str | Path, cfg: IntegrateConfig) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"{n}.{k}": v.detach().cpu().contiguous() for n, layer in layers(model).items()
             for k, v in layer.state_dict().items() if not k.startswith("base.")}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=2) + "\n")


def is_negassist(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file() and (Path(folder) / WEIGHTS_FILE).is_file()


def read_config(folder: str | Path) -> IntegrateConfig:
    return IntegrateConfig(**json.loads((Path(folder) / CONFIG_FILE).read_text()))


def load_weights(model, folder: str | Path) -> None:
    """Put the layers' weights saved in ``folder`` into ``model``'s (already attached) layers."""
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / WEIGHTS_FILE))
    missing = set()
    for name, layer in layers(model).items():
        own = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        if not own:
            missing.add(name)
            continue
        layer.load_state_dict(own, strict=False)
    if missing:
        raise ValueError(f"{Path(folder) / WEIGHTS_FILE}: no weights for layers {sorted(missing)[:5]} (another base "
                         "model?)")


def load(folder: str | Path, dtype: str = "float32", mode: str | None = None, model=None):
    """The base model named in ``negassist.json`` (or ``model``, already loaded) with the saved layers, in
    ``mode`` (default: the stage that was trained last), in eval mode with every parameter frozen."""
    from negtune.models.loading import load_model

    cfg = read_config(folder)
    model = model if model is not None else load_model(cfg.base_model, dtype=dtype)
    attach(model, cfg)
    load_weights(model, folder)
    for p in model.parameters():
        p.requires_grad_(False)
    use(model, mode or cfg.stage)
    return model.eval(), cfg
