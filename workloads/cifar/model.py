"""A ResNet for 32x32 images, read top to bottom.

The CIFAR variant of He et al. 2016 ("Deep Residual Learning"): a 3x3 stem
convolution at full resolution (no 7x7 stride-2 stem, no max-pool, which would
throw away most of a 32x32 image), then stages of BasicBlocks, each stage after
the first halving the resolution and (usually) doubling the width, then global
average pooling and one linear classifier.

    full size  ResNet-18: widths (64, 128, 256, 512), blocks (2, 2, 2, 2), 11.2M params
    tiny size  widths and depth chosen so a CPU trains it in about a minute

Normalization is not fixed here: every norm layer comes from the norm factory
the harness passes in, as ``norm("conv", channels)``, so a norm submission
(BatchNorm, GroupNorm, BCN, ...) replaces all of them at once. A
normalization-activation layer (EvoNorm) replaces the ReLU after its site too,
and loses its nonlinearity where no ReLU follows (harness/api.py,
``NormFactory``). The residual blocks carry the hooks of the same contract for
normalizer-free transforms (``preact``, ``input_scale``, ``branch_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import NormFactory, norm_includes_activation, norm_without_activation

HEAD = "fc"  # module name of the final classifier, typed ParamType.HEAD


@dataclass(frozen=True)
class ResNetConfig:
    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels of each stage
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # BasicBlocks per stage
    num_classes: int = 10
    in_channels: int = 3


RESNET18 = ResNetConfig()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection.

    conv-norm-relu-conv-norm, added to the (projected) input, then relu. Where
    the block changes resolution or width (a transition block), the shortcut is
    a strided 1x1 convolution plus a norm (He et al.'s option B), so the sum
    lines up.

    The second norm and the shortcut's norm feed the residual add, not a ReLU,
    so a normalization-activation layer there drops its nonlinearity; the
    first norm's ReLU is left out when its layer applies one itself.

    Hooks for normalizer-free transforms (harness/api.py), no-ops as built:
    ``preact`` (a module applied to the input first), ``input_scale`` (a float
    multiplying it) and ``branch_scale`` (a module applied to the branch's
    output before the add). The branch and a projection shortcut read the
    input so transformed; an identity shortcut carries the input itself
    (``transition`` says which shortcut the block has).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: NormFactory):
        super().__init__()
        # Convolutions feed a norm layer, whose shift makes a conv bias redundant.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = norm("conv", out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.norm2 = norm_without_activation(norm("conv", out_channels))
        # Activations are modules, one per use, so a norm submission's
        # transform_model can swap them (SELU).
        self.act1 = nn.Identity() if norm_includes_activation(self.norm1) else nn.ReLU()
        self.act2 = nn.ReLU()
        self.transition = stride != 1 or in_channels != out_channels
        if self.transition:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm_without_activation(norm("conv", out_channels)),
            )
        else:
            self.shortcut = nn.Identity()
        self.preact: nn.Module | None = None
        self.input_scale = 1.0
        self.branch_scale: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.preact is None else self.preact(x)
        if self.input_scale != 1.0:  # no extra multiply in the plain block's timed forward
            h = h * self.input_scale
        out = self.act1(self.norm1(self.conv1(h)))
        out = self.norm2(self.conv2(out))
        if self.branch_scale is not None:
            out = self.branch_scale(out)
        return self.act2(out + (self.shortcut(h) if self.transition else x))


class ResNet(nn.Module):
    def __init__(self, config: ResNetConfig, norm: NormFactory):
        super().__init__()
        self.config = config
        widths, blocks = config.widths, config.blocks
        assert len(widths) == len(blocks), "one width per stage"

        # Stem: one 3x3 conv at full 32x32 resolution (the CIFAR variant).
        self.stem = nn.Conv2d(config.in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.stem_norm = norm("conv", widths[0])
        self.stem_act = nn.Identity() if norm_includes_activation(self.stem_norm) else nn.ReLU()

        # Stages: the first keeps the resolution, each later one halves it in
        # its first block.
        stages = []
        in_channels = widths[0]
        for i, (width, n_blocks) in enumerate(zip(widths, blocks)):
            stage = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BasicBlock(in_channels, width, stride, norm))
                in_channels = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)

        # Head: global average pool, then one linear classifier.
        self.fc = nn.Linear(widths[-1], config.num_classes)

        self._init_weights()

    def _init_weights(self) -> None:
        # He (fan-out) initialization for convolutions, as torchvision's ResNet.
        # Norm layers keep their own initialization: they come from the factory
        # and may be any module. The classifier keeps PyTorch's default.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_act(self.stem_norm(self.stem(x)))  # (B, w0, 32, 32)
        x = self.stages(x)  # (B, w_last, 32 / 2**(stages-1), ...)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, w_last)
        return self.fc(x)  # (B, num_classes) logits
