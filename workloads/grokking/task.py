"""The grokking task: the whole table on the device, full-batch steps, and the
loss variants of Prieto et al. 2025.

Every step is the whole training set (full batch, as in Power et al. 2022's
small-table runs), so ``next_batch`` returns the same two tensors every time:
no randomness and nothing to transfer in the timed loop. Runs differ by their
seed only through the model's initialization (the runner seeds it).

Loss settings
-------------
The task takes ``settings``, a mapping with two keys (see ``DEFAULT_SETTINGS``):

* ``loss``: ``"softmax"`` (softmax cross-entropy, the default) or
  ``"stablemax"`` (StableMax cross-entropy, Prieto et al., "Grokking at the
  Edge of Numerical Stability", ICLR 2025; workloads/grokking/losses.py);
* ``dtype``: ``"float32"`` (default) or ``"float64"``, the precision of the
  whole model, hence of its logits and the loss (the paper's float64 runs
  delay Softmax Collapse).

``GrokkingTask(size, device, data_dir, seed, settings={"loss": "stablemax"})``.
The harness passes settings only for a workload variant (``bench run --variant
stablemax``; the variants are named in workloads/grokking/__init__.py), so a
plain ``bench run`` trains the defaults; ``task.settings`` is the full mapping
in use. Unknown keys or values are errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from harness.api import NormFactory, Outputs, ParamType, Size, Task
from harness.common.losses import mean_loss
from harness.common.datacache import arrays_digest
from harness.errors import UserInputError
from harness.params import infer_param_types

from . import data, losses
from .model import HEAD, GrokMLP, MLPConfig

DEFAULT_SETTINGS: Mapping[str, str] = {"loss": "softmax", "dtype": "float32"}
SETTING_CHOICES: Mapping[str, tuple[str, ...]] = {"loss": losses.LOSSES, "dtype": ("float32", "float64")}


@dataclass(frozen=True)
class _SizeSettings:
    """What each size fixes beyond ``Size`` (the table and the model's shape)."""

    data: data.DataConfig
    model: MLPConfig


SIZES = {
    "tiny": _SizeSettings(data.DataConfig(p=97, train_fraction=0.5), MLPConfig(p=97, embed_dim=64, hidden=256)),
    "full": _SizeSettings(data.DataConfig(p=113, train_fraction=0.3), MLPConfig(p=113, embed_dim=256, hidden=2048)),
}


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, str]:
    """``DEFAULT_SETTINGS`` updated by ``settings``, checked key by key."""
    merged = dict(DEFAULT_SETTINGS)
    for key, value in (settings or {}).items():
        if key not in SETTING_CHOICES:
            raise ValueError(f"grokking has no setting {key!r} (have: {', '.join(SETTING_CHOICES)})")
        if value not in SETTING_CHOICES[key]:
            raise ValueError(f"grokking setting {key}={value!r} is not one of {', '.join(SETTING_CHOICES[key])}")
        merged[key] = value
    return merged


class GrokkingTask(Task):
    DEFAULT_SETTINGS = DEFAULT_SETTINGS

    def __init__(self, size: Size, device: torch.device, data_dir: Path, seed: int,
                 settings: Mapping[str, Any] | None = None, *, synthetic: bool = False) -> None:
        # ``synthetic`` (bench run --synthetic-data) changes nothing here: the
        # table is generated in memory anyway, there is no dataset to stand in
        # for. The run is still unofficial and has no target.
        super().__init__(size, device, Path(data_dir), seed)
        if size.name not in SIZES:
            raise ValueError(f"grokking has no size {size.name!r} (have: {', '.join(SIZES)})")
        self.size_settings = SIZES[size.name]
        self.settings = resolve_settings(settings)
        self.loss_kind = self.settings["loss"]
        self.dtype = getattr(torch, self.settings["dtype"])

        splits = data.make_splits(self.size_settings.data)
        self.data_sha256 = arrays_digest({f"{name}.{part}": a for name, xy in splits.items() for part, a in zip("xy", xy)})
        self.splits = {
            name: (torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device))
            for name, (x, y) in splits.items()
        }
        self.train_x, self.train_y = self.splits["train"]
        if size.batch_size != self.train_x.shape[0]:
            # A user's batch_size=N (config) meets this before anything is written: one line, not a traceback.
            raise UserInputError(f"grokking {size.name} trains full batch: batch_size {size.batch_size} must be "
                             f"the {self.train_x.shape[0]} training pairs")

    # -- model --------------------------------------------------------------- #

    def build_model(self, norm: NormFactory) -> nn.Module:
        return GrokMLP(self.size_settings.model, norm).to(device=self.device, dtype=self.dtype)

    def param_types(self, model: nn.Module) -> dict[str, ParamType]:
        # embed.weight EMBEDDING, hidden.weight MATRIX, head.weight HEAD, biases
        # BIAS, norm parameters NORM: Muon orthogonalizes only the hidden matrix.
        return infer_param_types(model, head=HEAD)

    # -- training batches (timed) -------------------------------------------- #

    def next_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_x, self.train_y  # full batch: the same pairs every step

    def outputs(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> Outputs:
        x, y = batch
        return Outputs(model(x), y, loss=self.loss_kind)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return mean_loss(self.outputs(model, batch), self.hyperparameters.get("label_smoothing", 0.0))

    # -- evaluation (untimed; the runner calls it under no_grad in eval mode) - #

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation and test accuracy and loss, and training accuracy: the
        gap between train and validation accuracy is the memorization phase."""
        metrics = {}
        for split in ("train", "validation", "test"):
            x, y = self.splits[split]
            logits = model(x)
            metrics[f"{split}/accuracy"] = (logits.argmax(dim=1) == y).float().mean()
            if split != "train":  # the runner logs train/loss itself (the mean over the timed steps)
                metrics[f"{split}/loss"] = losses.cross_entropy(logits, y, loss=self.loss_kind)
        return {k: v.item() for k, v in metrics.items()}

    # -- for diagnostics ----------------------------------------------------- #

    def softmax_collapse_fraction(self, model: nn.Module) -> float:
        """Share of the training pairs whose float32 loss (this task's loss
        kind) is exactly 0: Prieto et al.'s Softmax Collapse. Untimed, like an
        evaluation: call it at eval boundaries. It
        reads the model and changes nothing: it runs in eval mode (no batch
        statistics updated) and restores the mode it found."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(self.train_x)
                return float(losses.zero_loss_fraction(logits, self.train_y, loss=self.loss_kind))
        finally:
            model.train(was_training)
