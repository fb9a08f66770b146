"""The DDPM UNet, read top to bottom.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
(arXiv:2006.11239), Appendix B: a PixelCNN++-style UNet that maps a noisy image
x_t and its timestep t to a prediction of the noise eps (same shape as x_t).

    conv_in -> for each level: num_res_blocks ResBlocks (+ self-attention at the
    chosen resolutions), then a stride-2 conv down (not after the last level)
    -> middle: ResBlock, attention, ResBlock
    -> for each level in reverse: num_res_blocks + 1 ResBlocks, each fed the
    concatenation of the current map and one saved skip activation, then a
    nearest-neighbour x2 upsample + conv (not after the first level)
    -> norm, SiLU, conv_out

The timestep enters every ResBlock: a sinusoidal embedding of t (as the
Transformer's position encoding) through a 2-layer MLP, projected per block to
a per-channel bias added between its two convolutions.

    full size  Ho et al.'s CIFAR-10 model: ch 128, ch_mult (1, 2, 2, 2), 2 ResBlocks
               per level, attention at 16x16, dropout 0.1 (35.7M parameters)
    tiny size  ch 16, ch_mult (1, 2, 2), 1 ResBlock per level, attention at 4x4 (281k parameters)

Normalization is not fixed here: every norm layer (Ho et al. use GroupNorm)
comes from the norm factory as ``norm("conv", channels)``. Activations are
``nn.SiLU`` modules, one instance per use, so a norm submission's
``transform_model`` can find and replace them. A normalization-activation
layer (EvoNorm) stands in for the SiLU after its site too: every norm here is
followed by a SiLU except the one before attention, where such a layer drops
its nonlinearity (harness/api.py, ``NormFactory``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import NormFactory, norm_includes_activation, norm_without_activation

HEAD = "conv_out"  # the read-out layer that produces the eps prediction


@dataclass(frozen=True)
class UNetConfig:
    ch: int = 128  # channels at the first level; level i has ch * ch_mult[i]
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)  # feature-map sizes that get self-attention
    dropout: float = 0.1
    image_size: int = 32
    in_channels: int = 3


DDPM_CIFAR10 = UNetConfig()  # Ho et al.'s 35.7M-parameter CIFAR-10 model


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of integer timesteps t (B,) -> (B, dim):
    sin and cos of t at frequencies 10000**(-k / (dim/2 - 1)), as in Ho et al.'s code."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """norm-SiLU-conv, + timestep bias, norm-SiLU-dropout-conv, plus the (1x1-projected) input."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, norm: NormFactory):
        super().__init__()
        self.norm1 = norm("conv", in_ch)
        self.act1 = nn.Identity() if norm_includes_activation(self.norm1) else nn.SiLU()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_act = nn.SiLU()
        self.temb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = norm("conv", out_ch)
        self.act2 = nn.Identity() if norm_includes_activation(self.norm2) else nn.SiLU()
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # Zero-initialized last conv: each block starts as the identity, as in Ho et al.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act1(self.norm1(x)))
        h = h + self.temb_proj(self.temb_act(temb))[:, :, None, None]
        h = self.conv2(self.dropout(self.act2(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions, residual, zero-initialized output."""

    def __init__(self, ch: int, norm: NormFactory):
        super().__init__()
        self.norm = norm_without_activation(norm("conv", ch))
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # 3 x (B, HW, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig, norm: NormFactory):
        super().__init__()
        self.config = config
        ch, mults, n_res = config.ch, config.ch_mult, config.num_res_blocks
        temb_ch = 4 * ch

        self.temb = nn.Sequential(nn.Linear(ch, temb_ch), nn.SiLU(), nn.Linear(temb_ch, temb_ch))
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)

        # Down path. `skip_chs` records the channels of every activation saved
        # for a skip connection, in order; the up path pops them in reverse.
        self.down = nn.ModuleList()
        skip_chs, cur, res = [ch], ch, config.image_size
        for level, mult in enumerate(mults):
            for _ in range(n_res):
                self.down.append(self._block(cur, ch * mult, res, norm))
                cur = ch * mult
                skip_chs.append(cur)
            if level != len(mults) - 1:
                self.down.append(Downsample(cur))
                res //= 2
                skip_chs.append(cur)

        self.mid = nn.ModuleList([
            ResBlock(cur, cur, temb_ch, config.dropout, norm),
            AttnBlock(cur, norm),
            ResBlock(cur, cur, temb_ch, config.dropout, norm),
        ])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for _ in range(n_res + 1):
                self.up.append(self._block(cur + skip_chs.pop(), ch * mult, res, norm))
                cur = ch * mult
            if level != 0:
                self.up.append(Upsample(cur))
                res *= 2
        assert not skip_chs, "every saved activation is consumed by the up path"

        self.norm_out = norm("conv", cur)
        self.act_out = nn.Identity() if norm_includes_activation(self.norm_out) else nn.SiLU()
        self.conv_out = nn.Conv2d(cur, config.in_channels, 3, padding=1)
        # Zero-initialized read-out: the first prediction is eps_hat = 0 (loss 1).
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _block(self, in_ch: int, out_ch: int, res: int, norm: NormFactory) -> nn.Module:
        block = ResBlock(in_ch, out_ch, 4 * self.config.ch, self.config.dropout, norm)
        if res in self.config.attn_resolutions:
            return _ResAttn(block, AttnBlock(out_ch, norm))
        return block

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.temb(timestep_embedding(t, self.config.ch))  # (B, 4 ch)
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h) if isinstance(layer, Downsample) else layer(h, temb)
            hs.append(h)
        h = self.mid[0](h, temb)
        h = self.mid[1](h)
        h = self.mid[2](h, temb)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h)
            else:
                h = layer(torch.cat([h, hs.pop()], dim=1), temb)
        return self.conv_out(self.act_out(self.norm_out(h)))  # (B, 3, H, W): predicted eps


class _ResAttn(nn.Module):
    """A ResBlock followed by self-attention (the levels in attn_resolutions)."""

    def __init__(self, res: ResBlock, attn: AttnBlock):
        super().__init__()
        self.res, self.attn = res, attn

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, temb))
