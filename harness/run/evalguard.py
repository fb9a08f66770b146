"""Evaluation must leave the model exactly as it found it.

Evaluation runs the live model, submission code included (norm layers,
``transform_model`` hooks), untimed and on validation data. A norm layer that
kept updating its running statistics in eval mode, or any other write to a
parameter or buffer during evaluation, would train on validation data for
free. The runner takes a :class:`ModelSnapshot` of every parameter and buffer
just before evaluating and checks it just after: at eval boundaries only, on
the device, outside the timed segment.

The comparison is on bit patterns, so it is exact (NaN equals itself, -0.0
differs from 0.0) wherever a copy is kept: the state is cloned on its device
when it is at most :data:`COPY_LIMIT_BYTES`, which every tiny model and the
full ResNet are. Above that, a copy would double the model's memory at every
evaluation; each tensor is then summarized by the sum and the sum of squares
of its bit patterns as integers (exact, in any order): a change to any one
element is always seen, and a change to several is missed only if it leaves
both sums equal modulo 2**64 (a permutation of a tensor's values does).
"""

from __future__ import annotations

from typing import Any

#: Up to this many bytes of parameters and buffers, the snapshot is a copy.
COPY_LIMIT_BYTES = 512 * 2**20

_INT_OF_SIZE: dict[int, Any] = {}


def _named_state(model) -> dict[str, Any]:
    """"parameter <name>" / "buffer <name>" -> tensor, as the model names them."""
    state = {f"parameter {n}": p for n, p in model.named_parameters()}
    state.update({f"buffer {n}": b for n, b in model.named_buffers() if b is not None})
    return state


def _bits(t):
    """The tensor's bit pattern as integers of its width: exact comparison, NaN included."""
    import torch

    if not _INT_OF_SIZE:
        _INT_OF_SIZE.update({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64})
    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    if t.is_floating_point() or t.dtype == torch.bool:
        return t.view(_INT_OF_SIZE[t.element_size()])
    return t


def _summaries(tensors: list) -> Any:
    """(len, 2) int64 on the device: the sum and the sum of squares of each
    tensor's bit patterns, wrapping modulo 2**64.

    Integer sums are exact in any order (the same on every device, no
    rounding), a NaN is a bit pattern like any other, and changing any one
    element always changes the first sum. Memory: one tensor at a time, as int64.
    """
    import torch

    rows = []
    for t in tensors:
        bits = _bits(t).to(torch.int64)
        rows.append(torch.stack([bits.sum(), (bits * bits).sum()]))
    return torch.stack(rows) if rows else None


class ModelSnapshot:
    """The model's parameters and buffers at one moment, to compare with later."""

    def __init__(self, model, copy_limit_bytes: int | None = None) -> None:
        limit = COPY_LIMIT_BYTES if copy_limit_bytes is None else copy_limit_bytes
        state = _named_state(model)
        self.names = list(state)
        self.layout = {k: (tuple(t.shape), t.dtype, t.device) for k, t in state.items()}
        tensors = list(state.values())
        size = sum(t.numel() * t.element_size() for t in tensors)
        self.copied = size <= limit
        self._copies = [t.detach().clone() for t in tensors] if self.copied else None
        self._sums = None if self.copied else _summaries(tensors)

    def changed(self, model) -> str | None:
        """What differs now, e.g. "buffer layer1.0.bn1.running_mean"; None when nothing does."""
        import torch

        state = _named_state(model)
        for key in self.names:
            if key not in state:
                return f"{key} (removed)"
        for key in state:
            if key not in self.layout:
                return f"{key} (added)"
        for key, t in state.items():
            if (tuple(t.shape), t.dtype, t.device) != self.layout[key]:
                return f"{key} (shape, dtype or device)"
        tensors = [state[k] for k in self.names]
        if not tensors:
            return None
        if self.copied:
            # One flag per tensor on the device, one transfer for all of them.
            flags = torch.stack([torch.ne(_bits(a), _bits(b)).any() for a, b in zip(self._copies, tensors)])
        else:
            flags = torch.ne(_summaries(tensors), self._sums).any(dim=1)
        hit = torch.nonzero(flags.cpu()).flatten().tolist()
        return self.names[hit[0]] if hit else None

    def release(self) -> None:
        self._copies = self._sums = None


def check_evaluation(snapshot: ModelSnapshot, model) -> str | None:
    """The run's failure reason when evaluation changed the model, else None."""
    changed = snapshot.changed(model)
    snapshot.release()
    return None if changed is None else f"evaluation changed {changed}"
