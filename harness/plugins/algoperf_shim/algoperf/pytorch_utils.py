"""AlgoPerf's algoperf/pytorch_utils.py, the parts PyTorch submissions use."""

import os
from typing import Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


def pytorch_setup() -> Tuple[bool, int, torch.device, int]:
    """(use_pytorch_ddp, rank, device, n_gpus), read from torchrun's environment as AlgoPerf does."""
    use_pytorch_ddp = "LOCAL_RANK" in os.environ
    rank = int(os.environ["LOCAL_RANK"]) if use_pytorch_ddp else 0
    device = torch.device(f"cuda:{rank}" if torch.cuda.is_available() else "cpu")
    n_gpus = torch.cuda.device_count()
    return use_pytorch_ddp, rank, device, n_gpus


def sync_ddp_time(time: float, device: torch.device) -> float:
    time_tensor = torch.tensor(time, dtype=torch.float64, device=device)
    dist.all_reduce(time_tensor, op=dist.ReduceOp.MAX)
    return time_tensor.item()


def update_batch_norm_fn(module: nn.Module, update_batch_norm: bool) -> None:
    """Freeze (momentum 0) or restore BatchNorm running statistics, as AlgoPerf's model_fn does."""
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        if not update_batch_norm:
            if not hasattr(module, "momentum_backup"):
                module.momentum_backup = module.momentum
            if torch.is_tensor(module.momentum_backup):
                module.momentum = torch.zeros_like(module.momentum_backup)
            else:
                module.momentum = 0.0
        elif hasattr(module, "momentum_backup"):
            module.momentum = module.momentum_backup


class CustomDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self._supports_custom_dropout = True

    def forward(self, x: Tensor, p: float) -> Tensor:
        return F.dropout(x, p, training=self.training)


class CustomDropout2d(nn.Module):
    def __init__(self):
        super().__init__()
        self._supports_custom_dropout = True

    def forward(self, x: Tensor, p: float) -> Tensor:
        return F.dropout2d(x, p, training=self.training)


class SequentialWithDropout(nn.Sequential):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._supports_custom_dropout = True

    def forward(self, x: Tensor, p: float) -> Tensor:
        for module in self:
            x = module(x, p) if getattr(module, "_supports_custom_dropout", False) else module(x)
        return x
