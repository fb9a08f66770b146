"""An MLP on two embedded operands: the grokking model, read top to bottom.

    (a, b) -> embed each (one table, shared) -> concatenate (2 d)
           -> Linear(2 d, h) -> norm("node", h) -> ReLU -> Linear(h, p) logits

One hidden layer is enough to grok modular addition: the embeddings learn
Fourier features of the residues and the hidden layer combines them (Nanda et
al. 2023; Gromov 2023). A one-layer transformer groks too (Power et al. 2022),
but attention over the operands costs more per step on a CPU.

The norm layer comes from the harness's norm factory at one ``"node"`` site
(a flat feature vector per example), so norm submissions replace it. With the
default LayerNorm the MLP groks within a few hundred full-batch AdamW steps;
in a trial without any norm it memorized as fast but had not generalized
after 1000 steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.api import NormFactory, norm_includes_activation

HEAD = "head"  # module name of the read-out layer, typed ParamType.HEAD


@dataclass(frozen=True)
class MLPConfig:
    p: int = 97  # residues: embedding rows and output classes
    embed_dim: int = 64
    hidden: int = 256


class GrokMLP(nn.Module):
    def __init__(self, config: MLPConfig, norm: NormFactory):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.p, config.embed_dim)  # shared by both operands
        self.hidden = nn.Linear(2 * config.embed_dim, config.hidden)
        self.norm = norm("node", config.hidden)
        # A module, so a norm submission's transform_model can swap it (SELU);
        # left out where the norm layer applies the activation itself.
        self.act = nn.Identity() if norm_includes_activation(self.norm) else nn.ReLU()
        self.head = nn.Linear(config.hidden, config.p)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        x = self.embed(pairs).flatten(1)  # (B, 2) -> (B, 2 d): a's then b's embedding
        return self.head(self.act(self.norm(self.hidden(x))))  # (B, p) logits
