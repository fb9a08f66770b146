"""Parameter typing and grouping helpers shared by workloads and submissions."""

from __future__ import annotations

from typing import Iterable

from torch import nn

from harness.api import ParamType, TypedParameter, infer_param_types  # noqa: F401  (re-exported for plugins)

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
