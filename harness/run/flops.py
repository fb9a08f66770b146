"""Model FLOPs per training step, achieved FLOP/s and MFU (docs/flops.md).

A workload size's **model FLOPs per step** are counted once, untimed, with
``torch.utils.flop_counter.FlopCounterMode`` on one training batch: the
forward pass (``task.loss(model, batch)``) and its ``backward()``. As in
AlgoPerf's and PaLM's MFU, these are the model's FLOPs, the same for every
optimizer: a submission's own extra passes through the model (SMB's extra
forward, TNGD, SAM-like updates) and the optimizer's arithmetic are not in
them, so a submission that does more work per step shows a lower MFU.

Counted: what FlopCounterMode counts, matrix multiplies (mm, addmm, bmm,
baddbmm), convolutions and scaled-dot-product attention (plus, here, the CPU
kernel of attention, which torch's table lacks). Not counted: elementwise
ops, norms, activations, softmax outside attention, scatters and gathers.

The count is made in run set-up (harness/run/execution.py, phase 1), before
seeding matters, on a task and model of its own built in a forked RNG state:
the run's task, model and random streams never see it. It is cached in the
user cache (harness/common/usercache.py) per workload code, size, norm (code
and hyperparameters), batch size, torch version and device type.

``achieved_flops_per_s`` = steps x flops_per_step / timed seconds, set when
the run ends; ``mfu`` = achieved / the devices' peak dense FLOP/s (:data:`PEAKS`,
from NVIDIA's datasheets), None where no peak is known (CPUs, unknown GPUs).

This module imports torch only inside functions (``bench --help`` and
``bench list`` must not pay for it).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from harness.common import usercache

COUNTED_WITH = "torch.utils.flop_counter"
FLOPS_DIR = "flops"
FORMAT = 1

T = 1e12
# Peak dense FLOP/s per device, by precision: "bf16" / "fp16" (tensor cores),
# "tf32" (tensor cores, float32 tensors) and "fp32" (no tensor cores). Dense:
# NVIDIA's datasheets quote tensor-core figures "with sparsity", twice these.
# Checked in order; the first pattern found in the device name wins.
PEAKS: list[tuple[str, str, dict[str, float]]] = [
    # NVIDIA H200 Tensor Core GPU datasheet (2024): H200 NVL: FP32 60, TF32 835*, BF16/FP16 1,671* TFLOPS.
    (r"\bH200 NVL\b", "H200 NVL", {"fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835.5 * T, "fp16": 835.5 * T}),
    # Same datasheet, H200 SXM: FP32 67, TF32 989*, BF16/FP16 1,979* TFLOPS (* with sparsity).
    (r"\bH200\b", "H200 SXM", {"fp32": 67 * T, "tf32": 494.5 * T, "bf16": 989.5 * T, "fp16": 989.5 * T}),
    # NVIDIA GH200 Grace Hopper Superchip datasheet: the GPU is H100 SXM-class (FP32 67, TF32 989*, BF16 1,979*).
    (r"\bGH200\b", "GH200", {"fp32": 67 * T, "tf32": 494.5 * T, "bf16": 989.5 * T, "fp16": 989.5 * T}),
    # NVIDIA H100 Tensor Core GPU datasheet (2023): H100 PCIe: FP32 51, TF32 756*, BF16/FP16 1,513* TFLOPS.
    (r"\bH100 PCIe\b", "H100 PCIe", {"fp32": 51 * T, "tf32": 378 * T, "bf16": 756.5 * T, "fp16": 756.5 * T}),
    # Same datasheet, H100 NVL: FP32 60, TF32 835*, BF16/FP16 1,671* TFLOPS.
    (r"\bH100 NVL\b", "H100 NVL", {"fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835.5 * T, "fp16": 835.5 * T}),
    # Same datasheet, H100 SXM ("NVIDIA H100 80GB HBM3"): FP32 67, TF32 989*, BF16/FP16 1,979* TFLOPS.
    (r"\bH100\b", "H100 SXM", {"fp32": 67 * T, "tf32": 494.5 * T, "bf16": 989.5 * T, "fp16": 989.5 * T}),
    # NVIDIA A100 Tensor Core GPU datasheet (40/80 GB, SXM and PCIe): FP32 19.5, TF32 156, BF16/FP16 312 TFLOPS dense.
    (r"\bA100\b", "A100", {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T}),
    # NVIDIA A10 datasheet: FP32 31.2, TF32 62.5, BF16/FP16 125 TFLOPS dense (not the A10G, which differs).
    (r"\bA10\b", "A10", {"fp32": 31.2 * T, "tf32": 62.5 * T, "bf16": 125 * T, "fp16": 125 * T}),
    # NVIDIA L40S datasheet: FP32 91.6, TF32 183, BF16/FP16 362.05 TFLOPS dense.
    (r"\bL40S\b", "L40S", {"fp32": 91.6 * T, "tf32": 183 * T, "bf16": 362.05 * T, "fp16": 362.05 * T}),
    # NVIDIA L4 datasheet: FP32 30.3, TF32 120*, BF16/FP16 242* TFLOPS.
    (r"\bL4\b", "L4", {"fp32": 30.3 * T, "tf32": 60 * T, "bf16": 121 * T, "fp16": 121 * T}),
    # NVIDIA V100 datasheet: SXM2 FP32 15.7, tensor (FP16) 125 TFLOPS; PCIe FP32 14, 112. No BF16/TF32 units.
    (r"\bV100S?-PCIE\b|\bV100 PCIe\b", "V100 PCIe", {"fp32": 14 * T, "tf32": 14 * T, "fp16": 112 * T}),
    (r"\bV100", "V100 SXM2", {"fp32": 15.7 * T, "tf32": 15.7 * T, "fp16": 125 * T}),
    # NVIDIA T4 datasheet: FP32 8.1, FP16 (mixed, tensor cores) 65 TFLOPS. No BF16/TF32 units.
    (r"\bT4\b", "T4", {"fp32": 8.1 * T, "tf32": 8.1 * T, "fp16": 65 * T}),
]

_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def peak_entry(device_name: str | None, precision: str) -> tuple[str, float] | None:
    """(device label, peak dense FLOP/s) for ``precision`` ("bf16", "fp16", "tf32", "fp32",
    or a torch dtype name), or None where the table has no figure."""
    precision = _PRECISION.get(str(precision).removeprefix("torch."), str(precision))
    for pattern, label, peaks in PEAKS:
        if device_name and re.search(pattern, device_name, flags=re.IGNORECASE):
            value = peaks.get(precision)
            return (label, value) if value else None
    return None


def peak_flops(device_name: str | None, dtype: str) -> float | None:
    """Peak dense FLOP/s of one device named ``device_name`` in ``dtype``; None elsewhere (CPUs)."""
    entry = peak_entry(device_name, dtype)
    return entry[1] if entry else None


# --------------------------------------------------------------------------- #
# Counting                                                                    #
# --------------------------------------------------------------------------- #


def _cpu_attention_formulas() -> dict[Any, Any]:
    """Attention's CPU kernels, which torch's flop table lacks (counted as on CUDA)."""
    import torch
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    formulas = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        def forward(query, key, value, *args, out_val=None, **kwargs):
            return fc.sdpa_flop_count(query.shape, key.shape, value.shape)

        def backward(grad_out, query, key, value, *args, out_val=None, **kwargs):
            return fc.sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)

        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = forward
        formulas[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return formulas


def counting_mode():
    """(FlopCounterMode, flops by "dtype/op" dict it fills): op is "conv" or "matmul"
    (multiplies and attention), dtype that of the op's first tensor argument."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    by_kind: dict[str, int] = {}
    raw = {**{k: v for k, v in flop_registry.items()}, **_cpu_attention_formulas()}

    def tracked(packet, formula):
        op = "conv" if "conv" in str(packet) else "matmul"

        def count(*args, out_val=None, **kwargs):
            flops = int(formula(*args, out_val=out_val, **kwargs))
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            dtype = str(first.dtype).removeprefix("torch.") if first is not None else "unknown"
            by_kind[f"{dtype}/{op}"] = by_kind.get(f"{dtype}/{op}", 0) + flops
            return flops

        count._get_raw = True  # FlopCounterMode passes tensors, not shapes, to such a formula
        return count

    mapping = {packet: tracked(packet, formula) for packet, formula in raw.items()}
    return FlopCounterMode(display=False, custom_mapping=mapping), by_kind


def count_step(task, model, batch) -> dict[str, Any]:
    """FLOPs of ``task.loss(model, batch).backward()``: {flops, by_kind}.

    It changes ``model``'s gradients (and a norm's running statistics): pass a
    throwaway model (:func:`count_training_step` copies one for you).
    """
    counter, by_kind = counting_mode()
    with counter:
        loss = task.loss(model, batch)
        loss.backward()
    return {"flops": int(counter.get_total_flops()), "by_kind": dict(sorted(by_kind.items()))}


def count_training_step(task, model, batch, device=None) -> dict[str, Any]:
    """:func:`count_step` on a deep copy of ``model`` in a forked RNG state:
    the model, its gradients and every random stream are as they were."""
    import copy
    import random

    import numpy as np
    import torch

    devices = [device] if device is not None and torch.device(device).type == "cuda" else []
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            return count_step(task, copy.deepcopy(model), batch)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


# --------------------------------------------------------------------------- #
# A run's count: cached, made on a task and model of its own                  #
# --------------------------------------------------------------------------- #


def cache_key(plan, device) -> str:
    """What a count depends on; any change misses the cache."""
    import torch

    from harness.common.seeding import stable_hash
    from harness.run.speed import _task_package_sha

    size = plan.size
    return stable_hash({
        "format": FORMAT, "torch": torch.__version__, "device_type": torch.device(device).type,
        "workload": plan.workload.info.name, "workload_code": _task_package_sha(plan.workload.info.task),
        "size": {k: getattr(size, k) for k in ("name", "dataset", "model", "batch_size")},
        "norm": plan.norm.sha256, "norm_name": plan.norm.name, "hp_norm": dict(plan.hp_norm),
        **({"variant": dict(plan.variant_settings)} if plan.variant else {}),
        # Synthetic graphs are not ogbg's: a count on them is kept apart (others' keys unchanged).
        **({"synthetic": True} if plan.synthetic else {}),
    }, length=24)


def _count_plan(plan, device, data_dir: Path) -> dict[str, Any]:
    """Build the size's task and model (norm included) afresh and count one step.

    A forked RNG state, Python's and numpy's restored: the run that follows is
    unchanged. The task's seed is fixed, so every run of the size counts the same batch.
    """
    import random

    import numpy as np
    import torch

    from harness import api
    from harness.common.seeding import derive_seed
    from harness.run.build import build_model, make_task

    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if torch.device(device).type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derive_seed("flops", plan.workload.info.name, plan.size.name))
            task = make_task(plan.workload.info.task, plan.size, device, data_dir, derive_seed(0, "data"),
                             synthetic=plan.synthetic, settings=plan.variant_settings if plan.variant else None)
            model = build_model(task, plan.norm.load(), api.Hyperparameters(dict(plan.hp_norm)), device)
            counted = count_step(task, model, task.next_batch(0))
            del task, model
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if devices:
            torch.cuda.empty_cache()
    return counted


def _cache_path(key: str) -> Path | None:
    root = usercache.cache_dir()
    return None if root is None else root / FLOPS_DIR / f"{key}.json"


def plan_count(plan, device, data_dir: Path) -> dict[str, Any]:
    """{flops, by_kind, key, count_s, counted_at, cached}: from the user cache, else counted (and cached)."""
    key = cache_key(plan, device)
    path = _cache_path(key)
    if path is not None and path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached.get("key") == key and int(cached.get("flops", 0)) > 0:
                return {**cached, "cached": True}
        except (OSError, ValueError, TypeError):
            pass  # torn or foreign file: count again
    start = time.perf_counter()
    counted = _count_plan(plan, device, data_dir)
    result = {**counted, "key": key, "count_s": round(time.perf_counter() - start, 4),
              "counted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if path is not None and result["flops"] > 0:
        blob = json.dumps(result, indent=1).encode()
        usercache.write_atomic(path, lambda f: f.write(blob))
    return {**result, "cached": False}


def _precision(kind: str, cuda: bool) -> str:
    """The precision a "dtype/op" kind runs in on this device: float32 is TF32
    on CUDA where torch allows it (matmuls: float32_matmul_precision; convs: cudnn.allow_tf32)."""
    import torch

    dtype, _, op = kind.partition("/")
    precision = _PRECISION.get(dtype, dtype)
    if precision == "fp32" and cuda:
        tf32 = torch.backends.cudnn.allow_tf32 if op == "conv" else torch.get_float32_matmul_precision() != "highest"
        precision = "tf32" if tf32 else "fp32"
    return precision


def _device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def _peak(device_name: str, by_precision: dict[str, int], devices: int) -> tuple[float | None, str | None]:
    """(peak FLOP/s of the step's mix of precisions over ``devices`` devices, its label).
    A mix's peak is the rate that does each precision's share at its own peak."""
    total = sum(by_precision.values())
    seconds, label = 0.0, None
    for precision, flops in by_precision.items():
        entry = peak_entry(device_name, precision)
        if entry is None or total <= 0:
            return None, None
        label = entry[0]
        seconds += flops / entry[1]
    if label is None or seconds <= 0:
        return None, None
    names = "+".join(sorted(by_precision, key=lambda p: -by_precision[p]))
    return devices * total / seconds, f"{label}{f' x{devices}' if devices > 1 else ''} {names}"


def compute_block(plan, device, data_dir: Path, devices: int = 1) -> dict[str, Any]:
    """The record's ``compute`` block as set-up knows it (achieved and mfu come at the end).

    Never fails a run: a count that raises leaves flops_per_step null and says why.
    """
    import torch

    cuda = torch.device(device).type == "cuda"
    name = _device_name(device)
    block: dict[str, Any] = {
        "flops_per_step": None, "achieved_flops_per_s": None, "peak_flops_per_s": None, "mfu": None,
        "dtype": None, "flops_by_precision": {}, "device_name": name, "devices": devices, "peak": None,
        "counted_with": COUNTED_WITH, "scope": "model forward+backward on one batch (no submission extras)",
        "count_s": None, "cached": None, "key": None, "error": None,
    }
    try:
        counted = plan_count(plan, device, data_dir)
    except Exception as exc:  # a missing dataset says so in phase 2, plainly
        block["error"] = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        return block
    by_precision: dict[str, int] = {}
    by_dtype: dict[str, int] = {}
    for kind, flops in counted["by_kind"].items():
        by_precision[_precision(kind, cuda)] = by_precision.get(_precision(kind, cuda), 0) + flops
        by_dtype[kind.partition("/")[0]] = by_dtype.get(kind.partition("/")[0], 0) + flops
    peak, label = _peak(name, by_precision, devices)
    block.update(
        flops_per_step=counted["flops"], flops_by_precision=by_precision, peak_flops_per_s=peak, peak=label,
        dtype=max(by_dtype, key=by_dtype.get) if by_dtype else None,
        count_s=counted.get("count_s"), cached=counted.get("cached"), key=counted.get("key"),
    )
    return block


def finish(block: dict[str, Any] | None, steps: int, timed_s: float) -> None:
    """Set achieved FLOP/s (steps x flops_per_step / timed seconds) and MFU, at the run's end."""
    if not block or not block.get("flops_per_step") or not steps or not timed_s or timed_s <= 0:
        return
    achieved = steps * block["flops_per_step"] / timed_s
    block["achieved_flops_per_s"] = achieved
    peak = block.get("peak_flops_per_s")
    block["mfu"] = achieved / peak if peak else None


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def describe(block: dict[str, Any] | None) -> str:
    """One line for ``bench run``'s summary."""
    if not block:
        return "— (not counted)"
    if not block.get("flops_per_step"):
        return f"— (not counted: {block.get('error') or 'no FLOPs'})"
    parts = [f"{_si(block['flops_per_step'], 'FLOP')}/step"]
    achieved = block.get("achieved_flops_per_s")
    parts.append(f"{_si(achieved, 'FLOP/s')} achieved" if achieved else "— FLOP/s achieved (no timed steps)")
    if block.get("mfu") is not None:
        parts.append(f"MFU {block['mfu']:.1%} of {block['peak']} peak ({_si(block['peak_flops_per_s'], 'FLOP/s')})")
    else:
        parts.append(f"MFU — (no peak for {block.get('device_name') or 'this device'})")
    return " · ".join(parts)


__all__ = ["PEAKS", "peak_flops", "peak_entry", "count_step", "count_training_step", "counting_mode",
           "plan_count", "compute_block", "finish", "describe", "COUNTED_WITH"]
