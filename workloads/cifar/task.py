"""The cifar task: data on the device, batches, loss and evaluation.

Everything the timed loop touches stays on the device: the whole (normalized)
training set is loaded once in ``__init__``, and ``next_batch`` only indexes
and augments tensors that are already there, with a device-side generator. No
host transfer, no ``.item()``, no Python-side randomness in the timed path.

Batches are a pure function of (seed, step): step ``s`` lies in epoch
``s // steps_per_epoch``, whose permutation is drawn from a generator seeded by
(seed, epoch); the augmentation of step ``s`` from one seeded by (seed, step).
So a run resumed or replayed at any step sees exactly the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import NormFactory, Outputs, ParamType, Size, Task
from harness.common.losses import mean_loss
from harness.common import synthetic
from harness.common.datacache import arrays_digest
from harness.params import infer_param_types
from harness.common.seeding import derive_seed
from harness.errors import UserInputError

from . import data
from .model import HEAD, RESNET18, ResNet, ResNetConfig


@dataclass(frozen=True)
class _Settings:
    """What each size fixes beyond ``Size`` (model shape, augmentation, layout)."""

    model: ResNetConfig
    augment: bool  # random crop (4-pixel padding) + horizontal flip
    channels_last: bool  # NHWC activations: ~1.5x faster convolutions on CPU
    eval_batch_size: int


SETTINGS = {
    "tiny": _Settings(
        model=ResNetConfig(widths=(16, 32, 64), blocks=(1, 1, 1)),
        augment=False,
        channels_last=True,
        eval_batch_size=50,  # measured fastest on 2 CPU cores (100: +10%, 1000: +140%)
    ),
    "full": _Settings(model=RESNET18, augment=True, channels_last=True, eval_batch_size=1024),
}

CROP_PADDING = 4
# The full size's split sizes (CIFAR-10 as AlgoPerf splits it), for synthetic data.
SYNTHETIC_SPLITS = {"train": 50_000 - data.CIFAR10_VALIDATION, "validation": data.CIFAR10_VALIDATION, "test": 10_000}


class CifarTask(Task):
    def __init__(self, size: Size, device: torch.device, data_dir: Path, seed: int, *, synthetic: bool = False) -> None:
        super().__init__(size, device, Path(data_dir), seed)
        if size.name not in SETTINGS:
            raise ValueError(f"cifar has no size {size.name!r} (have: {', '.join(SETTINGS)})")
        self.settings = SETTINGS[size.name]
        self.memory_format = torch.channels_last if self.settings.channels_last else torch.contiguous_format

        if synthetic:  # random images and labels of the real splits, made on the device (harness/common/synthetic.py)
            splits, self.data_sha256 = self._synthetic_splits(), None
        else:
            splits = data.shapes_splits() if size.name == "tiny" else data.load_cifar10(self.data_dir)
            # full: load_cifar10 checked the archive against its published sha256
            self.data_sha256 = (
                arrays_digest({f"{name}.{part}": a for name, xy in splits.items() for part, a in zip("xy", xy)})
                if size.name == "tiny" else data.CIFAR10_SHA256
            )

        # Per-channel mean / std of the training images, so inputs are ~N(0, 1);
        # the validation and test sets use the training statistics. In place,
        # reusing the training floats: the same arithmetic as (x - mean) / std,
        # bit for bit, without three more copies of the training set (~0.5 s).
        train_x = torch.as_tensor(splits["train"][0]).float().div_(255.0)
        self.mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
        self.std = train_x.std(dim=(0, 2, 3), keepdim=True)

        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, (images, labels) in splits.items():
            x = train_x if name == "train" else torch.as_tensor(images).float().div_(255.0)
            x = x.sub_(self.mean).div_(self.std)
            x = x.to(self.device).contiguous(memory_format=self.memory_format)
            y = torch.as_tensor(labels).long().to(self.device)
            self.splits[name] = (x, y)

        self.train_x, self.train_y = self.splits["train"]
        self.num_train = self.train_x.shape[0]
        # Drop the last partial batch of each epoch: every step has batch_size examples.
        self.steps_per_epoch = self.num_train // size.batch_size
        if self.steps_per_epoch == 0:
            # A user's batch_size=N (config, a batch study) meets this before anything is written: one line.
            raise UserInputError(f"cifar {size.name}: batch_size {size.batch_size} "
                                 f"exceeds the {self.num_train} training examples")

        self._generator = torch.Generator(device=self.device)
        self._epoch = -1
        self._permutation: torch.Tensor | None = None
        self._arange = torch.arange(self.train_x.shape[-1], device=self.device)

    def _synthetic_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Uniform uint8 images (3, 32, 32) and labels of 10 classes, on the device,
        as many as the real splits hold (off a GPU, a couple of batches)."""
        real = data.SHAPES_SPLITS if self.size.name == "tiny" else SYNTHETIC_SPLITS
        splits = {}
        for name, n in real.items():
            n = synthetic.count(n, self.device, self.size.batch_size)
            splits[name] = (synthetic.uint8_images(n, (3, 32, 32), self.device, self.seed, name),
                            synthetic.labels(n, 10, self.device, self.seed, name))
        return splits

    # ----------------------------------------------------------------------- #
    # model                                                                   #
    # ----------------------------------------------------------------------- #

    def build_model(self, norm: NormFactory) -> nn.Module:
        model = ResNet(self.settings.model, norm)
        return model.to(device=self.device, memory_format=self.memory_format)

    def param_types(self, model: nn.Module) -> dict[str, ParamType]:
        return infer_param_types(model, head=HEAD)

    # ----------------------------------------------------------------------- #
    # training batches (timed)                                                #
    # ----------------------------------------------------------------------- #

    def next_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size = self.size.batch_size
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:  # a new epoch's permutation, a function of (seed, epoch)
            self._generator.manual_seed(derive_seed(self.seed, "permutation", epoch))
            self._permutation = torch.randperm(self.num_train, generator=self._generator, device=self.device)
            self._epoch = epoch
        idx = self._permutation[index * batch_size : (index + 1) * batch_size]
        x, y = self.train_x[idx], self.train_y[idx]
        if self.settings.augment:
            self._generator.manual_seed(derive_seed(self.seed, "augment", step))
            x = self._crop_and_flip(x)
        return x.contiguous(memory_format=self.memory_format), y

    def _crop_and_flip(self, x: torch.Tensor) -> torch.Tensor:
        """Random 32x32 crop of the image zero-padded by 4 pixels, mirrored
        left-right with probability 1/2 -- one gather for the whole batch.

        Zero is the channel mean after normalization, so the padding is a
        mean-coloured border."""
        b, c, h, w = x.shape
        pad = CROP_PADDING
        offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=self._generator, device=x.device)
        flip = torch.randint(0, 2, (b, 1), generator=self._generator, device=x.device, dtype=torch.bool)
        ar = self._arange
        rows = offsets[:, :1] + ar  # (b, h): source row of each output row
        cols = offsets[:, 1:] + torch.where(flip, ar.flip(0), ar)  # (b, w), mirrored where flipped
        padded = F.pad(x, (pad, pad, pad, pad))
        batch_idx = torch.arange(b, device=x.device)[:, None, None, None]
        chan_idx = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]

    def outputs(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> Outputs:
        x, y = batch
        return Outputs(model(x), y)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return mean_loss(self.outputs(model, batch), self.hyperparameters.get("label_smoothing", 0.0))

    # ----------------------------------------------------------------------- #
    # evaluation (untimed; the runner calls it under no_grad in eval mode)    #
    # ----------------------------------------------------------------------- #

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        metrics = {}
        for split in ("validation", "test"):
            x, y = self.splits[split]
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device, dtype=torch.long)
            for start in range(0, x.shape[0], self.settings.eval_batch_size):
                xb = x[start : start + self.settings.eval_batch_size]
                yb = y[start : start + self.settings.eval_batch_size]
                logits = model(xb).float()
                loss_sum += F.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(dim=1) == yb).sum()
            n = x.shape[0]
            # One host transfer per split, after all batches are queued.
            metrics[f"{split}/accuracy"] = correct.item() / n
            metrics[f"{split}/loss"] = loss_sum.item() / n
        return metrics
