"""One run on several devices: DistributedDataParallel under torchrun.

``torchrun --nproc_per_node=N -m harness.cli run ...`` (or ``bench run --nproc N``,
which launches exactly that) starts N processes; each reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment torchrun sets, joins a
process group (NCCL on GPU, gloo on CPU) and trains a replica of the model
wrapped in ``DistributedDataParallel``. With ``WORLD_SIZE`` unset or 1 nothing
here does anything: a plain run is untouched.

What changes in a run of world size N > 1, and why:

* **The batch.** The batch size is a property of the workload, not of N: every
  rank draws the workload's *global* batch for the step (``Task.next_batch`` is
  a pure function of (seed, step), so all ranks draw the same one) and keeps its
  slice, rows ``[r*B/N, (r+1)*B/N)``. DDP averages the ranks' gradients, and a
  mean over N equal slices of per-slice mean losses is the mean over the global
  batch: the update is the single-process update on the same batch, up to
  floating-point summation order. B must be divisible by N. A task whose
  batches are not tensors split along dim 0 (graphs, ragged sequences) defines
  ``shard_batch(batch, rank, world_size)``.
* **BatchNorm.** By default each rank normalizes with the statistics of its own
  slice (B/N examples), as plain BatchNorm under DDP does, and DDP broadcasts
  rank 0's running statistics to the other ranks at every forward, so the model
  evaluated (rank 0's) is the one every rank trains. ``distributed.sync_batchnorm=true``
  converts ``nn.BatchNorm*`` layers to ``nn.SyncBatchNorm`` (statistics over the
  global batch; CUDA only). The record's ``distributed.batchnorm`` says which
  ("per-rank", "sync", or "none" when the model has no BatchNorm layer).
* **The clock.** Each rank times its own steps; at every eval boundary the ranks
  agree on the timed seconds with one ``all_reduce(MAX)`` (the slowest rank
  defines the time) - never per step. Because ranks must stop at the same step
  without talking to each other, boundaries are decided on step counts: the
  step cadence as usual, and time-based triggers (``eval_every_s``, the budget)
  as a step count predicted at the previous boundary from the agreed seconds
  per step. Before any step time is known, a time-based cadence evaluates
  after step 1. A run can so overshoot its budget by part of a segment; the
  status is decided from the agreed clock, as in a single process.
* **Evaluation and records.** Rank 0 evaluates (untimed) and sends the metrics
  to the other ranks; the training loss is averaged over ranks there too. Only
  rank 0 writes ``run.json`` / ``metrics.jsonl`` and talks to trackers. The
  fingerprint records the world size and every rank's device.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from harness.errors import UserInputError


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@dataclass
class Dist:
    """This process's place in the run; a world of one is a plain run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None
    launcher: str | None = None  # "torchrun" (or another env:// launcher), None for a plain run

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives, called only at eval boundaries (untimed) --------------- #
    def agree_max(self, value: float, device) -> float:
        """The largest ``value`` over ranks (the timed clock)."""
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def mean(self, tensor):
        """Mean of ``tensor`` over ranks (the training loss)."""
        if not self.active:
            return tensor
        import torch.distributed as dist

        tensor = tensor.detach().clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor / self.world_size

    def from_main(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (metrics, decisions)."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def setup(device) -> tuple[Dist, Any]:
    """Join the process group when launched with WORLD_SIZE > 1; return (Dist, device).

    ``device`` is the run's resolved device; under DDP a CUDA device becomes
    ``cuda:<LOCAL_RANK>`` (or ``cuda:0`` when the launcher left each rank a
    single visible GPU).
    """
    import torch

    world = env_world_size()
    launcher = "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else ("env" if "RANK" in os.environ else None)
    if world <= 1:
        return Dist(launcher=launcher), device

    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if torch.cuda.device_count() > 1 else 0)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local_rank, local_world, backend, launcher), device


def teardown(d: Dist) -> None:
    """Leave the process group cleanly.

    The caller drops its references to the DDP model first. Gloo's worker
    threads can hold work that refers to Python objects; if the group outlives
    them into interpreter shutdown, the process aborts ("terminate called
    without an active exception", SIGABRT) after the run has finished - seen
    once in CI on a loaded machine. So: collect the dropped model now, wait
    until every rank is done with every collective, then destroy the group.
    """
    if not d.active:
        return
    import gc

    import torch.distributed as dist

    gc.collect()
    if dist.is_initialized():
        try:
            dist.barrier()
        except Exception:  # a rank that already died: nothing to wait for
            pass
        dist.destroy_process_group()


def check_batch(batch_size: int, world_size: int) -> None:
    if world_size > 1 and batch_size % world_size:
        raise UserInputError(
            f"the workload's global batch of {batch_size} does not split evenly over {world_size} processes; "
            f"use a process count that divides {batch_size}"
        )


def shard(batch: Any, rank: int, world_size: int, global_batch: int) -> Any:
    """This rank's slice of a global batch: every tensor whose first dimension
    is the global batch size is cut along it; anything else is shared."""
    import torch

    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0 or batch.shape[0] != global_batch:
            return batch
        per = global_batch // world_size
        return batch[rank * per : (rank + 1) * per]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(shard(b, rank, world_size, global_batch) for b in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard(b, rank, world_size, global_batch) for b in batch)
    if isinstance(batch, dict):
        return {k: shard(v, rank, world_size, global_batch) for k, v in batch.items()}
    return batch


class ShardedTask:
    """The workload's task, seen by one rank: ``next_batch`` returns the rank's
    slice; everything else is the task's own."""

    def __init__(self, task: Any, d: Dist) -> None:
        self._task, self._dist = task, d
        own = getattr(task, "shard_batch", None)
        global_batch = task.size.batch_size
        self._cut = own or (lambda batch, rank, world: shard(batch, rank, world, global_batch))

    def next_batch(self, step: int) -> Any:
        return self._cut(self._task.next_batch(step), self._dist.rank, self._dist.world_size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


def wrap_model(model, d: Dist, device, sync_batchnorm: bool) -> tuple[Any, str]:
    """(DDP-wrapped model, how BatchNorm is handled: "per-rank" | "sync" | "none")."""
    from torch import nn

    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not d.active:
        return model, "none" if not has_bn else "single-process"
    mode = "none" if not has_bn else "per-rank"
    if sync_batchnorm and has_bn:
        if device.type != "cuda":
            raise UserInputError("distributed.sync_batchnorm=true needs CUDA devices (SyncBatchNorm has no CPU kernel)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        mode = "sync"
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    # DDP's default: rank 0's buffers (BatchNorm running stats) reach every rank at each forward.
    return DDP(model, device_ids=ids), mode


def unwrap(model):
    """The model inside a DDP wrapper (rank 0 evaluates it without collectives)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    return model.module if isinstance(model, DDP) else model


def next_boundary_step(
    step: int,
    timed: float,
    s_per_step: float | None,
    every_steps: int | None,
    max_steps: int | None,
    next_eval_s: float | None,
    budget_s: float,
) -> int:
    """The step at which every rank stops for the next eval boundary.

    Computed from values all ranks agree on, so all ranks get the same answer.
    Time-based triggers become a step count predicted from ``s_per_step``; with
    no step time known yet, a time-based cadence stops after the next step.
    """
    candidates = []
    if every_steps is not None:
        candidates.append((step // every_steps + 1) * every_steps)
    if max_steps is not None:
        candidates.append(max(max_steps, step + 1))
    for due in (next_eval_s, budget_s):
        if due is None or not math.isfinite(due):
            continue
        if s_per_step is not None and s_per_step > 0:
            candidates.append(step + max(1, math.ceil((due - timed) / s_per_step)))
        elif due is next_eval_s:
            candidates.append(step + 1)
    return min(candidates) if candidates else step + 1


def record_block(d: Dist, global_batch: int) -> dict[str, Any]:
    """The record's ``distributed`` block as a run starts (``batchnorm`` is set
    once the model is built: none | single-process | per-rank | sync)."""
    return {
        "world_size": d.world_size,
        "backend": d.backend,
        "launcher": d.launcher,
        "global_batch": global_batch,
        "batch_per_rank": global_batch // d.world_size,
        "batchnorm": None,
        "clock": "max over ranks, agreed at eval boundaries" if d.active else "single process",
    }


def describe_devices(d: Dist, device) -> dict[str, Any]:
    """Every rank's device, gathered at set-up (untimed): ``{"world_size", "backend", "ranks": [...]}``."""
    import torch

    from harness.run import fingerprint as fp_mod

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = (fp_mod._safe(fp_mod._cpu) or {}).get("model")
    mine = {
        "rank": d.rank, "local_rank": d.local_rank, "device": str(device), "name": name,
        "host_hash": fp_mod._safe(fp_mod._host_hash),
    }
    return {"world_size": d.world_size, "backend": d.backend, "launcher": d.launcher, "ranks": d.gather(mine)}


def torchrun_command(nproc: int, args: list[str], python: str | None = None) -> list[str]:
    """The command ``bench run --nproc N`` executes: torchrun on one node
    (``--standalone`` picks a free rendezvous port) running ``bench run``."""
    import sys

    if nproc < 1:
        raise UserInputError(f"--nproc must be at least 1, got {nproc}")
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "harness.cli", *args]
