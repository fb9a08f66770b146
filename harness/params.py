"""Parameter typing and grouping helpers shared by workloads and submissions."""

from __future__ import annotations

from typing import Iterable

from torch import nn
from torch.nn.utils import parametrize

from harness.api import ParamType, TypedParameter

_NORM_MODULES = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
if hasattr(nn, "RMSNorm"):
    _NORM_MODULES = _NORM_MODULES + (nn.RMSNorm,)


def infer_param_types(model: nn.Module, head: str | None = None) -> dict[str, ParamType]:
    """Type every parameter from the module that owns it.

    ``head`` names the module whose weight is the final read-out (typed HEAD,
    so e.g. Muon leaves it to AdamW). Modules may declare ``is_norm = True`` to
    mark hand-written norm layers.
    """
    types: dict[str, ParamType] = {}
    modules = dict(model.named_modules())
    for module_name, module in modules.items():
        own = dict(module.named_parameters(recurse=False))
        owner_name, gains = module_name, set()
        if isinstance(module, parametrize.ParametrizationList):
            # The originals of a parametrized tensor (weight_norm, spectral_norm,
            # weight standardization) live in "<owner>.parametrizations.<tensor>":
            # type them by the owner. Originals smaller than the largest one
            # (weight_norm's magnitude g) are per-unit gains, typed NORM.
            owner_name = module_name.rsplit(".", 2)[0] if module_name.count(".") >= 2 else ""
            module = modules[owner_name]
            biggest = max((p.numel() for p in own.values()), default=0)
            gains = {n for n, p in own.items() if p.numel() < biggest}
        is_norm = isinstance(module, _NORM_MODULES) or getattr(module, "is_norm", False)
        for param_name, param in own.items():
            full = f"{module_name}.{param_name}" if module_name else param_name
            if is_norm or param_name in gains:
                types[full] = ParamType.NORM
            elif isinstance(module, nn.Embedding):
                types[full] = ParamType.EMBEDDING
            elif head is not None and owner_name == head and param.ndim >= 2:
                types[full] = ParamType.HEAD
            elif param.ndim == 1:
                types[full] = ParamType.BIAS
            elif param.ndim == 2:
                types[full] = ParamType.MATRIX
            elif param.ndim > 2:
                types[full] = ParamType.CONV
            else:
                types[full] = ParamType.OTHER
    return types


def typed_parameters(model: nn.Module, types: dict[str, ParamType]) -> list[TypedParameter]:
    """The trainable parameters of ``model`` with their types (shared ones once)."""
    out = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            out.append(TypedParameter(name, param, types.get(name, ParamType.OTHER)))
    return out


NO_DECAY = frozenset({ParamType.NORM, ParamType.BIAS})


def decay_groups(
    params: Iterable[TypedParameter], weight_decay: float, no_decay=NO_DECAY
) -> list[dict]:
    """Two param groups: decayed weights, and norms/biases without decay."""
    decay, plain = [], []
    for p in params:
        (plain if p.type in no_decay else decay).append(p.param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["infer_param_types", "typed_parameters", "decay_groups", "count_parameters"]
