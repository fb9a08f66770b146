"""A decoder-only transformer (GPT-2), nanoGPT style, read top to bottom.

Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2,
2019), as written in Karpathy's nanoGPT (github.com/karpathy/nanoGPT, model.py).
For a sequence of token ids ``idx`` (B, T)::

    x = wte[idx] + wpe[0..T-1]                          # learned positions
    for each block:
        x = x + attn_out_norm(attn(ln_1(x)))            # causal self-attention
        x = x + mlp_out_norm(mlp(ln_2(x)))              # Linear 4C, GELU, Linear C
    logits = ln_f(x) @ wte.T                            # tied embedding / read-out

    attn(h) = softmax(q k^T / sqrt(d_head) + causal mask) v, over n_head heads,
              with q, k, v = h W_qkv and an output projection c_proj

    full size  GPT-2 small: 12 layers, 12 heads, width 768, context 1024, 124M params
    tiny size  character level: 3 layers, 4 heads, width 96, context 64, 351k params

Normalization is not fixed here. ``ln_1``, ``ln_2`` and ``ln_f`` come from the
norm factory the harness passes in, as ``norm("token", n_embd)``, so a norm
submission (LayerNorm, RMSNorm, ...) replaces all of them at once; the default
is pre-LN. Each block also has two *output* norm slots, ``attn_out_norm`` and
``mlp_out_norm``, identities by default, applied to a sublayer's output before
the residual add: a norm submission's ``transform_model`` turns the model into
Peri-LN (Kim et al. 2025, arXiv:2502.02732: a norm around each sublayer, both
before and after) by replacing them, e.g.
``block.attn_out_norm = make_norm("token", n_embd, hp)``. The MLP's activation
is an ``nn.GELU`` module (``block.mlp.act``) so a transform can swap it too.

Initialization as GPT-2 / nanoGPT: every Linear and Embedding weight
N(0, 0.02), biases zero, and the two projections that write into the residual
stream (``attn.c_proj``, ``mlp.c_proj``) N(0, 0.02 / sqrt(2 * n_layer)), so the
residual stream's variance does not grow with depth. Norm layers keep the
initialization of whatever module the factory built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import NormFactory

# Module names of the norm slots; their parameters are typed NORM (task.py).
NORM_SLOTS = ("ln_1", "ln_2", "ln_f", "attn_out_norm", "mlp_out_norm")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 50304  # GPT-2's 50257 padded to a multiple of 64 (nanoGPT): faster matmuls
    block_size: int = 1024  # longest context
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    bias: bool = True  # biases in Linear layers, as GPT-2
    qk_norm: bool = False  # LayerNorm on each head's queries and keys (the gpt variant qk_norm)
    # nanoGPT's dropout on the embeddings and on each residual branch's output
    # (the run's dropout_rate), and on the attention weights (aux_dropout_rate,
    # AlgoPerf's attention dropout); off by default, as GPT-2 pretraining.
    dropout: float = 0.0
    attn_dropout: float = 0.0


GPT2_SMALL = GPTConfig()


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "width must split evenly into heads"
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        # qk-layernorm (Dehghani et al. 2023, Wortsman et al. 2023): queries and
        # keys normalized over each head's features, one LayerNorm shared by the
        # heads, so attention logits cannot grow with the weights. Always a
        # LayerNorm, not the norm factory's layer: the variant is the same
        # model under every norm submission.
        self.q_norm = nn.LayerNorm(config.n_embd // config.n_head, bias=config.bias) if config.qk_norm else None
        self.k_norm = nn.LayerNorm(config.n_embd // config.n_head, bias=config.bias) if config.qk_norm else None
        self.attn_dropout = config.attn_dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        # Fused kernel (flash attention on GPUs); is_causal masks the future.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = nn.GELU()  # a module, not F.gelu: norm submissions may swap it
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """One transformer block: pre-LN attention and MLP, each a residual branch.

    ``attn_out_norm`` / ``mlp_out_norm`` are the Peri-LN output-norm slots
    (identity unless a norm submission's ``transform_model`` fills them)."""

    def __init__(self, config: GPTConfig, norm: NormFactory):
        super().__init__()
        self.ln_1 = norm("token", config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.attn_out_norm = nn.Identity()
        self.ln_2 = norm("token", config.n_embd)
        self.mlp = MLP(config)
        self.mlp_out_norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_out_norm(self.attn(self.ln_1(x)))
        x = x + self.mlp_out_norm(self.mlp(self.ln_2(x)))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, norm: NormFactory):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
                wpe=nn.Embedding(config.block_size, config.n_embd),  # position embedding
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config, norm) for _ in range(config.n_layer)]),
                ln_f=norm("token", config.n_embd),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): the read-out is the embedding matrix.
        # One Parameter, listed once by named_parameters() as transformer.wte.weight.
        self.lm_head.weight = self.transformer.wte.weight

        self.apply(self._init_weights)
        # Residual projections: scaled so the sum over 2 * n_layer branches keeps unit-ish variance.
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab_size) for token ids (B, T)."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} exceeds the context of {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        return self.lm_head(x)  # (B, T, vocab_size)
