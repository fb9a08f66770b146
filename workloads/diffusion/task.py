"""The diffusion task: DDPM noise-prediction training and a deterministic denoising metric.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
(arXiv:2006.11239), Algorithm 1 with the simplified objective L_simple. With a
variance schedule beta_1..beta_T, alpha_t = 1 - beta_t and
abar_t = prod_{s<=t} alpha_s, each training example is

    x0 ~ data (scaled to [-1, 1]),  t ~ Uniform{0..T-1},  eps ~ N(0, I)
    x_t  = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps
    loss = || eps - eps_theta(x_t, t) ||^2     (mean over the batch and pixels)

Schedules: "linear" betas from 1e-4 to 0.02 over T = 1000 steps (Ho et al.),
or "cosine" (Nichol & Dhariwal, "Improved DDPM", ICML 2021, arXiv:2102.09672):
abar_t = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), s = 0.008,
betas clipped at 0.999.

The metric is the same loss on a FIXED set: the validation (test) images,
each with one noise draw and one timestep, drawn once from seeds that depend
only on the workload size and split -- not on the run's seed -- so every run
is scored on the very same problem and evaluation is deterministic. Timesteps
are stratified (each of the T values equally often, in a fixed shuffled
order), which makes the fixed-set loss a low-variance estimate of the
expected L_simple over uniform t.

Training batches are a pure function of (seed, step), drawn on the device as in
the cifar task: step ``s`` lies in epoch ``s // steps_per_epoch``, whose
permutation comes from a generator seeded by (seed, epoch); its timesteps,
noise (and flips) from one seeded by (seed, step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from harness.api import NormFactory, Outputs, ParamType, Size, Task
from harness.common.losses import mean_loss
from harness.common import synthetic
from harness.common.datacache import arrays_digest
from harness.params import infer_param_types
from harness.common.seeding import derive_seed
from harness.errors import UserInputError

from . import data
from .model import DDPM_CIFAR10, HEAD, UNet, UNetConfig

METRIC = "denoising_loss"
# The full size's split sizes (CIFAR-10 as the cifar workload splits it), for synthetic data.
SYNTHETIC_SPLITS = {"train": 45_000, "validation": 5_000, "test": 10_000}


@dataclass(frozen=True)
class _Settings:
    """What each size fixes beyond ``Size`` (model shape, diffusion process, layout)."""

    model: UNetConfig
    schedule: str  # "linear" | "cosine"
    timesteps: int
    flip: bool  # random horizontal flips of training images (Ho et al. on CIFAR-10)
    channels_last: bool
    eval_batch_size: int


SETTINGS = {
    "tiny": _Settings(
        model=UNetConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0, image_size=16),
        schedule="linear",
        timesteps=1000,
        flip=False,
        channels_last=False,
        eval_batch_size=500,
    ),
    "full": _Settings(
        model=DDPM_CIFAR10,
        schedule="linear",
        timesteps=1000,
        flip=True,
        channels_last=True,
        eval_batch_size=1000,
    ),
}


def make_betas(schedule: str, timesteps: int) -> torch.Tensor:
    """beta_1..beta_T (float64) of the named schedule."""
    if schedule == "linear":
        # Ho et al.'s endpoints are for T = 1000; rescaled so other T keep the same abar_T.
        scale = 1000 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown noise schedule {schedule!r} (have: linear, cosine)")


class DiffusionTask(Task):
    def __init__(self, size: Size, device: torch.device, data_dir: Path, seed: int, *, synthetic: bool = False) -> None:
        super().__init__(size, device, Path(data_dir), seed)
        if size.name not in SETTINGS:
            raise ValueError(f"diffusion has no size {size.name!r} (have: {', '.join(SETTINGS)})")
        self.settings = s = SETTINGS[size.name]
        self.memory_format = torch.channels_last if s.channels_last else torch.contiguous_format

        if synthetic:  # random images of the real splits (harness/common/synthetic.py)
            splits, self.data_sha256 = self._synthetic_splits(), None
        else:
            splits = data.shapes16_splits() if size.name == "tiny" else data.load_cifar10_images(self.data_dir)
            # full: the images come from the CIFAR-10 archive, checked against its sha256
            self.data_sha256 = arrays_digest(splits) if size.name == "tiny" else data.cifar10.CIFAR10_SHA256

        abar = torch.cumprod(1.0 - make_betas(s.schedule, s.timesteps), dim=0)
        self.sqrt_abar = abar.sqrt().float().to(device)
        self.sqrt_one_minus_abar = (1.0 - abar).sqrt().float().to(device)

        self.train_x = self._to_device(self._scale(splits["train"]))
        self.num_train = self.train_x.shape[0]
        self.steps_per_epoch = self.num_train // size.batch_size
        if self.steps_per_epoch == 0:
            # A user's batch_size=N (config, a batch study) meets this before anything is written: one line.
            raise UserInputError(f"diffusion {size.name}: batch_size {size.batch_size} "
                                 f"exceeds the {self.num_train} training images")

        # The fixed evaluation problems, drawn on the CPU (same numbers on any
        # device) from seeds that name the size and split but not the run.
        self.eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        for split in ("validation", "test"):
            x0 = self._scale(splits[split])
            gen = torch.Generator().manual_seed(derive_seed("diffusion", size.name, split, "eval-problem"))
            n = x0.shape[0]
            stratified = (torch.arange(n, dtype=torch.float64) + 0.5) * s.timesteps / n
            t = stratified.long()[torch.randperm(n, generator=gen)]
            eps = torch.randn(x0.shape, generator=gen)
            x_t = self._diffuse(x0, t, eps, abar.sqrt().float(), (1.0 - abar).sqrt().float())
            self.eval_sets[split] = (self._to_device(x_t), t.to(device), self._to_device(eps))

        self._generator = torch.Generator(device=self.device)
        self._epoch = -1
        self._permutation: torch.Tensor | None = None

    def _synthetic_splits(self) -> dict[str, torch.Tensor]:
        """Uniform uint8 images of the size's shape: the training images made on the
        device, the evaluation ones on the CPU, where the fixed evaluation problems
        are drawn; as many as the real splits (off a GPU, a couple of batches)."""
        real = data.SHAPES16_SPLITS if self.size.name == "tiny" else SYNTHETIC_SPLITS
        side = self.settings.model.image_size
        splits = {}
        for name, n in real.items():
            where = self.device if name == "train" else torch.device("cpu")
            n = synthetic.count(n, self.device, self.size.batch_size)
            splits[name] = synthetic.uint8_images(n, (3, side, side), where, self.seed, name)
        return splits

    @staticmethod
    def _scale(images) -> torch.Tensor:
        """uint8 (N, C, H, W), numpy or torch -> float [-1, 1], as Ho et al."""
        return torch.as_tensor(images).float().div_(127.5).sub_(1.0)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    @staticmethod
    def _diffuse(x0, t, eps, sqrt_abar, sqrt_one_minus_abar) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, per example."""
        return sqrt_abar[t][:, None, None, None] * x0 + sqrt_one_minus_abar[t][:, None, None, None] * eps

    # ----------------------------------------------------------------------- #
    # model                                                                   #
    # ----------------------------------------------------------------------- #

    def build_model(self, norm: NormFactory) -> nn.Module:
        config = self.settings.model  # dropout_rate replaces the size's own (DDPM's 0.1 full, 0 tiny)
        model = UNet(replace(config, dropout=self.hyperparameters.get("dropout_rate", config.dropout)), norm)
        return model.to(device=self.device, memory_format=self.memory_format)

    def param_types(self, model: nn.Module) -> dict[str, ParamType]:
        return infer_param_types(model, head=HEAD)

    # ----------------------------------------------------------------------- #
    # training batches (timed)                                                #
    # ----------------------------------------------------------------------- #

    def next_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, t, eps) for ``step``: a pure function of (seed, step), made on the device."""
        batch_size = self.size.batch_size
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:  # a new epoch's permutation, a function of (seed, epoch)
            self._generator.manual_seed(derive_seed(self.seed, "permutation", epoch))
            self._permutation = torch.randperm(self.num_train, generator=self._generator, device=self.device)
            self._epoch = epoch
        x0 = self.train_x[self._permutation[index * batch_size : (index + 1) * batch_size]]

        gen = self._generator
        gen.manual_seed(derive_seed(self.seed, "diffuse", step))
        t = torch.randint(0, self.settings.timesteps, (batch_size,), generator=gen, device=self.device)
        eps = torch.randn(x0.shape, generator=gen, device=self.device).contiguous(memory_format=self.memory_format)
        if self.settings.flip:
            flip = torch.randint(0, 2, (batch_size, 1, 1, 1), generator=gen, device=self.device, dtype=torch.bool)
            x0 = torch.where(flip, x0.flip(-1), x0)
        return self._diffuse(x0, t, eps, self.sqrt_abar, self.sqrt_one_minus_abar), t, eps

    def outputs(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> Outputs:
        x_t, t, eps = batch
        return Outputs(model(x_t, t), eps, loss="mse")

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return mean_loss(self.outputs(model, batch))

    # ----------------------------------------------------------------------- #
    # evaluation (untimed; the runner calls it under no_grad in eval mode)    #
    # ----------------------------------------------------------------------- #

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        metrics = {}
        bs = self.settings.eval_batch_size
        for split, (x_t, t, eps) in self.eval_sets.items():
            sq_sum = torch.zeros((), device=self.device, dtype=torch.float64)
            for start in range(0, x_t.shape[0], bs):
                pred = model(x_t[start : start + bs], t[start : start + bs]).float()
                sq_sum += (pred - eps[start : start + bs]).square().sum(dtype=torch.float64)
            metrics[f"{split}/{METRIC}"] = sq_sum.item() / eps.numel()  # one host transfer per split
        return metrics
