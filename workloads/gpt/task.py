"""The gpt task: token streams on the device, random-window batches, next-token loss.

Each split is one long stream of token ids living on the device (loaded once in
``__init__``, untimed). A training batch is ``batch_size`` windows of
``block_size + 1`` consecutive tokens at uniformly random offsets of the
training stream (nanoGPT's ``get_batch``): inputs are the first ``block_size``
tokens, targets the same window shifted by one. The offsets of step ``s`` come
from a device generator seeded by (seed, s), so batches are a pure function of
(seed, step) and the timed path has no host transfer, no ``.item()`` and no
Python-side randomness.

The loss is the mean cross-entropy of the next token, in nats per token (per
character for the tiny size). Evaluation is deterministic: the same fixed,
non-overlapping windows tile the start of each evaluation stream every time.

On CUDA (the full size) the forward pass runs under bfloat16 autocast; the
FineWeb tokens are uint16 ids < 65536, kept on the GPU as their int16 bit
pattern (indexing int16 is supported everywhere) and widened per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.api import NormFactory, Outputs, ParamType, Size, Task
from harness.common.losses import mean_loss
from harness.common import synthetic as synthetic_data
from harness.common.datacache import arrays_digest
from harness.params import infer_param_types
from harness.common.seeding import derive_seed

from . import data
from .model import GPT, GPT2_SMALL, NORM_SLOTS, GPTConfig


@dataclass(frozen=True)
class _Settings:
    """What each size fixes beyond ``Size``: model shape, data and evaluation."""

    model: GPTConfig
    eval_windows: int  # fixed evaluation windows of block_size tokens per split
    eval_batch_size: int
    autocast: bool  # bfloat16 autocast on CUDA
    train_tokens: int | None = None  # full: how much of FineWeb to load onto the device


SETTINGS = {
    "tiny": _Settings(
        model=GPTConfig(vocab_size=data.VOCAB_SIZE, block_size=64, n_layer=3, n_head=4, n_embd=96),
        eval_windows=256,  # 16384 characters of each of validation and test
        eval_batch_size=256,
        autocast=False,
    ),
    "full": _Settings(
        model=GPT2_SMALL,
        eval_windows=10_240,  # 10_485_760 tokens: modded-nanogpt's val_tokens
        eval_batch_size=32,
        autocast=True,
        train_tokens=5_000_000_000,  # >= step_hint * batch tokens (~4.9B); 10 GB on the GPU
    ),
}


GPT2_TOKENS = 50257  # GPT-2's BPE vocabulary; the model pads its table to 50304

# The task's settings, which the workload's variants set (workloads/gpt/__init__.py):
# qk-layernorm in every attention layer, and the z-loss coefficient (0: none).
DEFAULT_SETTINGS: Mapping[str, Any] = {"model.qk_norm": False, "loss.z_loss": 0.0}


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``DEFAULT_SETTINGS`` updated by ``settings``, checked key by key."""
    merged = dict(DEFAULT_SETTINGS)
    for key, value in (settings or {}).items():
        if key not in DEFAULT_SETTINGS:
            raise ValueError(f"gpt has no setting {key!r} (have: {', '.join(DEFAULT_SETTINGS)})")
        if key == "model.qk_norm" and not isinstance(value, bool):
            raise ValueError(f"gpt setting model.qk_norm={value!r} is not true or false")
        if key == "loss.z_loss" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"gpt setting loss.z_loss={value!r} is not a coefficient >= 0")
        merged[key] = value
    return merged


class GPTTask(Task):
    DEFAULT_SETTINGS = DEFAULT_SETTINGS
    z_loss: float = 0.0  # the variant's coefficient (0: none)
    model_config: GPTConfig | None = None  # the size's model with the variant's settings (None: the size's)

    def __init__(self, size: Size, device: torch.device, data_dir: Path, seed: int,
                 settings: Mapping[str, Any] | None = None, *, synthetic: bool = False) -> None:
        super().__init__(size, device, Path(data_dir), seed)
        if size.name not in SETTINGS:
            raise ValueError(f"gpt has no size {size.name!r} (have: {', '.join(SETTINGS)})")
        self.settings = s = SETTINGS[size.name]
        # ``settings`` here are the variant's (self.settings is the size's).
        self.variant_settings = resolve_settings(settings)
        self.z_loss = float(self.variant_settings["loss.z_loss"])
        self.model_config = replace(s.model, qk_norm=self.variant_settings["model.qk_norm"])
        self.block_size = s.model.block_size
        self.eval_windows = s.eval_windows
        if synthetic:  # off a GPU, a couple of evaluation batches (harness/common/synthetic.py)
            self.eval_windows = synthetic_data.count(s.eval_windows, device, size.batch_size)
        eval_tokens = self.eval_windows * self.block_size + 1  # +1: the last window's last target

        if synthetic:
            self.tokens, self._wide = self._synthetic_streams(eval_tokens), True
        elif size.name == "tiny":
            splits = data.tiny_splits()
            self.data_sha256 = arrays_digest(splits)
            self.tokens = {name: torch.from_numpy(ids.astype(np.int64)).to(device) for name, ids in splits.items()}
            self._wide = False
        else:
            splits = data.fineweb_splits(self.data_dir, s.train_tokens, eval_tokens)
            self.tokens = {name: _to_device_int16(slices, device) for name, slices in splits.items()}
            self._wide = True  # int16 bit patterns of uint16 ids: widen before use
        self.eval_splits = [name for name in ("validation", "test") if name in self.tokens]
        for name in self.eval_splits:
            if len(self.tokens[name]) < eval_tokens:
                raise data.DatasetCorrupt(
                    f"{name} split has {len(self.tokens[name])} tokens; evaluation needs {eval_tokens}"
                )
        self.train = self.tokens["train"]
        if len(self.train) <= self.block_size + 1:
            raise data.DatasetCorrupt(f"training stream of {len(self.train)} tokens is shorter than one window")

        self._generator = torch.Generator(device=device)
        self._window = torch.arange(self.block_size + 1, device=device)  # offsets within a window

    def _synthetic_streams(self, eval_tokens: int) -> dict[str, torch.Tensor]:
        """Uniform token ids of the model's vocabulary as int16 bit patterns (as the
        FineWeb tokens are kept), on the device: the training stream as long as the
        real one on a GPU (its memory), a couple of batches' windows elsewhere."""
        s, device = self.settings, self.device
        train_real = s.train_tokens or len(data.tiny_splits()["train"])
        train = synthetic_data.count(train_real, device, self.size.batch_size * (self.block_size + 1))
        lengths = {"train": max(train, self.block_size + 2), "validation": eval_tokens}
        vocab = min(s.model.vocab_size, GPT2_TOKENS)  # ids the tokenizer emits, not the padded table's rows
        return {name: synthetic_data.token_ids_int16(n, vocab, device, self.seed, name) for name, n in lengths.items()}

    def _ids(self, t: torch.Tensor) -> torch.Tensor:
        return (t.long() & 0xFFFF) if self._wide else t

    def _autocast(self):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.settings.autocast and self.device.type == "cuda")

    # ----------------------------------------------------------------------- #
    # model                                                                   #
    # ----------------------------------------------------------------------- #

    def build_model(self, norm: NormFactory) -> nn.Module:
        hp, config = self.hyperparameters, self.model_config or self.settings.model
        config = replace(config, dropout=hp.get("dropout_rate", config.dropout),
                         attn_dropout=hp.get("aux_dropout_rate", config.attn_dropout))
        return GPT(config, norm).to(self.device)

    def param_types(self, model: nn.Module) -> dict[str, ParamType]:
        """As the harness infers them (Linear weights MATRIX, biases BIAS, the
        two lookup tables EMBEDDING, parametrized weights by their owner), with
        two GPT-specific rules: anything inside a norm slot is NORM, whatever
        module the factory or a transform put there; and the tied token
        embedding, which is also the read-out, is typed once, as EMBEDDING --
        ``named_parameters()`` lists the shared tensor once, as
        ``transformer.wte.weight``, and no parameter is HEAD."""
        inferred = infer_param_types(model)
        types = {}
        for name, _ in model.named_parameters():  # each shared Parameter once
            if any(slot in name.split(".")[:-1] for slot in NORM_SLOTS):
                types[name] = ParamType.NORM
            else:
                types[name] = inferred.get(name, ParamType.OTHER)
        return types

    # ----------------------------------------------------------------------- #
    # training batches (timed)                                                #
    # ----------------------------------------------------------------------- #

    def next_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._generator.manual_seed(derive_seed(self.seed, "batch", step))
        starts = torch.randint(
            0, len(self.train) - self.block_size, (self.size.batch_size, 1), generator=self._generator, device=self.device
        )
        windows = self._ids(self.train[starts + self._window])  # (B, block_size + 1)
        return windows[:, :-1], windows[:, 1:]

    def outputs(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> Outputs:
        """One row per token: logits (B*T, V) in float32, targets (B*T,)."""
        x, y = batch
        with self._autocast():
            logits = model(x)
        return Outputs(logits.float().flatten(0, 1), y.flatten())

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out = self.outputs(model, batch)
        loss = mean_loss(out, self.hyperparameters.get("label_smoothing", 0.0))
        if self.z_loss:
            loss = loss + self.z_loss * z_loss_term(out.logits)
        return loss

    # ----------------------------------------------------------------------- #
    # evaluation (untimed; the runner calls it under no_grad in eval mode)    #
    # ----------------------------------------------------------------------- #

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        T, windows, per_batch = self.block_size, self.eval_windows, self.settings.eval_batch_size
        metrics = {}
        for split in self.eval_splits:
            stream = self.tokens[split]
            loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
            for first in range(0, windows, per_batch):
                n = min(per_batch, windows - first)
                chunk = self._ids(stream[first * T : (first + n) * T + 1])
                x, y = chunk[:-1].view(n, T), chunk[1:].view(n, T)
                with self._autocast():
                    logits = model(x)
                loss_sum += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
            # One host transfer per split, after all batches are queued.
            metrics[f"{split}/loss"] = loss_sum.item() / (windows * T)
        return metrics


def z_loss_term(logits: torch.Tensor) -> torch.Tensor:
    """mean(log Z ** 2), log Z the logsumexp of each position's output logits:
    PaLM's auxiliary z-loss (Chowdhery et al. 2022; Wortsman et al. 2023 use
    coefficient 1e-4), which keeps log Z near 0 so the logits cannot drift
    into the range where the softmax loses precision. Training loss only:
    evaluation reports the cross-entropy alone."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


def _to_device_int16(slices: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Concatenate memory-mapped uint16 slices into one int16 tensor on the
    device, a shard at a time (no full host copy of billions of tokens)."""
    out = torch.empty(sum(len(s) for s in slices), dtype=torch.int16, device=device)
    pos = 0
    for s in slices:
        host = torch.from_numpy(np.array(s).view(np.int16))  # a writable copy of one shard
        out[pos : pos + len(s)].copy_(host)
        pos += len(s)
    return out
