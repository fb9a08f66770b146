"""Training diagnostics: ``diagnostics=true`` (docs/diagnostics.md).

At each evaluation, untimed and inside the evaluation's model check
(harness/run/evalguard.py), the run logs into ``metrics.jsonl`` figures that
show training going wrong (:data:`KEYS`):

* the global gradient norm and the loss on a fixed *diagnostic batch*
  (training batch 0, copied once at set-up in a forked RNG state);
* the update-to-weight ratio per parameter type: ``||w_now - w_before|| /
  ||w_now||`` over the parameters of one type, ``w_before`` their values at
  the previous evaluation (at the start, for the first), divided by the
  steps in between: the mean relative change per step;
* the gradient spike ratio: the largest per-step global gradient norm since
  the previous evaluation over the median of the last :data:`WINDOW` steps'
  norms (SPAM's spikes). The timed loop's update is wrapped
  (:func:`wrap_update`) to put each step's norm, after the update, into a
  preallocated device buffer (``torch._foreach_norm``): no host read, no
  sync; the buffer is read at evaluations only;
* where the task has ``outputs`` (api.Outputs): the mean and max log Z of
  softmax logits and the share of examples whose float32 loss is exactly 0
  (Softmax Collapse, Prieto et al. 2025);
* where the model calls ``F.scaled_dot_product_attention`` (gpt): the largest
  attention logit q.k/sqrt(d) per layer, caught by a torch function mode;
* with ``diagnostics.hessian=true``: the top Hessian eigenvalue by power
  iteration on Hessian-vector products, and its ratio to 2/lr.

None of it changes training: gradients are taken with ``torch.autograd.grad``
(``.grad`` untouched), buffers (BatchNorm statistics) are restored, the RNG is
forked by the caller (harness/run/loop.py) and the model's mode is restored.
A figure that fails is left out and its error kept in the record.

This module imports torch only inside functions.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Mapping

from harness.errors import UserInputError

PREFIX = "diagnostics/"
WINDOW = 1000  # steps in the running median of per-step gradient norms
SOFTMAX_LOSSES = ("softmax",)  # log Z is the softmax's normalizer
CLASSIFICATION_LOSSES = ("softmax", "stablemax", "sigmoid")

#: Every key a metrics line may carry (``<type>`` a ParamType value, ``<i>`` a layer index).
KEYS = (
    "diagnostics/loss", "diagnostics/grad_norm", "diagnostics/update_ratio/<type>",
    "diagnostics/step_grad_norm_max", "diagnostics/step_grad_norm_median", "diagnostics/grad_spike_ratio",
    "diagnostics/logz_mean", "diagnostics/logz_max", "diagnostics/zero_loss_fraction",
    "diagnostics/attn_logit_max", "diagnostics/attn_logit_max/<i>",
    "diagnostics/hessian/top_eigenvalue", "diagnostics/hessian/ratio_to_2_over_lr", "diagnostics/seconds",
)


def settings(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's diagnostics settings, None when off; a bad value is a UserInputError."""
    section = config.get("diagnostics") or {}
    for key in ("enabled", "hessian"):
        if not isinstance(section.get(key, False), bool):
            raise UserInputError(f"diagnostics.{key}={section[key]!r}: expected true or false")
    iterations = section.get("hessian_iterations", 10)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise UserInputError(f"diagnostics.hessian_iterations={iterations!r}: expected a positive integer")
    if not (section.get("enabled") or section.get("hessian")):
        return None
    return {"hessian": bool(section.get("hessian")), "hessian_iterations": iterations}


# --------------------------------------------------------------------------- #
# Per-step gradient norms, on the device (the only timed work)                 #
# --------------------------------------------------------------------------- #


class StepNorms:
    """Each step's global gradient norm in a ring of :data:`WINDOW` on the device,
    and the largest since the last read; read only at evaluations."""

    def __init__(self, params: list, device) -> None:
        import torch

        self.params = [p for p in params if p.requires_grad]
        wide = any(p.dtype == torch.float64 for p in self.params)
        self.dtype = torch.float64 if wide else torch.float32  # bf16 grads are normed in float32
        self.ring = torch.zeros(WINDOW, device=device, dtype=self.dtype)
        self.peak = torch.zeros((), device=device, dtype=self.dtype)
        self.count = 0  # steps recorded, a host int
        self.since = 0  # of them since the last read

    def record(self) -> None:
        """After an update: device work only (no sync, no host read)."""
        import torch

        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:  # an update that clears its gradients leaves nothing to measure
            return
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0, dtype=self.dtype)))
        self.ring[self.count % WINDOW].copy_(norm)
        torch.maximum(self.peak, norm, out=self.peak)
        self.count += 1
        self.since += 1

    def read(self) -> dict[str, Any]:
        """Device scalars: the largest norm since the last read, the window's median,
        their ratio; empty when no step was recorded. Resets the largest."""
        if self.since == 0:
            return {}
        median = self.ring[: min(self.count, WINDOW)].median()
        peak = self.peak.clone()
        self.peak.zero_()
        self.since = 0
        return {"step_grad_norm_max": peak, "step_grad_norm_median": median, "grad_spike_ratio": peak / median}


def wrap_update(update: Callable, norms: StepNorms) -> Callable:
    """The submission's update, then the step's gradient norm into ``norms``."""

    def update_and_record(ctx):
        loss = update(ctx)
        norms.record()
        return loss

    return update_and_record


# --------------------------------------------------------------------------- #
# The figures, each on its own inputs (tested on hand-checkable cases)         #
# --------------------------------------------------------------------------- #


def global_grad_norm(loss, params: list):
    """||d loss / d params||_2 over all of ``params`` (0-d tensor); ``.grad`` untouched."""
    import torch

    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads if g is not None]))


def hessian_top_eigenvalue(loss, params: list, iterations: int, seed: int = 0):
    """The Hessian's largest eigenvalue, by power iteration on Hessian-vector
    products (double backward through ``loss``'s graph), as a Rayleigh quotient
    v.Hv (0-d tensor). Power iteration finds the eigenvalue of largest
    magnitude; when that one is negative (a saddle's direction, common early),
    as many iterations again on H - lambda I find the largest. The start vector
    is Gaussian from ``seed``: the same at every evaluation."""
    import torch

    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    params = [p for p, g in zip(params, grads) if g is not None]  # unused ones: no curvature
    grads = [g for g in grads if g is not None]
    live = [i for i, g in enumerate(grads) if g.requires_grad]  # the others are constant: Hv gets 0 from them

    def hvp(v):
        hv = torch.autograd.grad([grads[i] for i in live], params, grad_outputs=[v[i] for i in live],
                                 retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(hv, params)]

    gen = torch.Generator(device=params[0].device).manual_seed(seed)
    start = [torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) for p in params]
    largest = power_iteration(hvp, start, iterations)
    if largest.item() >= 0:
        return largest
    shifted = power_iteration(lambda v: [h - largest * x for h, x in zip(hvp(v), v)], start, iterations)
    return shifted + largest


def power_iteration(matvec: Callable, v: list, iterations: int):
    """The Rayleigh quotient v.Av after ``iterations`` steps of v <- Av / ||Av||
    (``matvec`` maps a list of tensors to A times it)."""
    import torch

    quotient = None
    for _ in range(iterations):
        scale = torch.linalg.vector_norm(torch.stack([x.norm() for x in v]))
        v = [x / scale for x in v]
        av = matvec(v)
        quotient = sum((a * b).sum() for a, b in zip(v, av))
        v = av
    return quotient


def update_ratio(now: list, before: list, steps: int):
    """||now - before|| / ||now|| / steps over one group of tensors (0-d tensor;
    NaN where ``now`` is all zeros)."""
    import torch

    diff = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(torch._foreach_sub(now, before))))
    size = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(now)))
    return diff / size / max(1, steps)


def logz(logits, weights=None) -> dict[str, Any]:
    """Mean and max of log sum_j exp(logit_j) over rows of ``logits`` (N, C) in
    float32, over rows of non-zero weight."""
    lz = logits.float().logsumexp(dim=-1)
    if weights is not None:
        lz = lz[weights.reshape(lz.shape) != 0]
    return {"logz_mean": lz.mean(), "logz_max": lz.max()}


def zero_loss_fraction(losses, weights=None):
    """Share of examples (weighted) whose loss is exactly 0: Softmax Collapse."""
    zero = (losses == 0).float()
    if weights is None:
        return zero.mean()
    w = weights.float().expand_as(zero)  # per example (N,) or per label (N, C), as the losses
    return (zero * w).sum() / w.sum()


def max_attention_logit(q, k, attn_mask=None, is_causal: bool = False, scale: float | None = None):
    """The largest attention logit ``q.k * scale`` (default 1/sqrt(d)) that the
    mask keeps, as ``F.scaled_dot_product_attention`` forms them (0-d, float32):
    a causal mask aligned top-left, a boolean mask (True takes part) or an
    additive one. One batch element at a time: memory heads x L x S, not B times it."""
    import math

    import torch

    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    if k.dim() >= 3 and k.shape[-3] != q.shape[-3]:  # grouped-query attention: share each key head
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    best = torch.full((), float("-inf"), device=q.device)
    for b in range(q.shape[0]):
        logits = (q[b].float() @ k[b].float().transpose(-2, -1)) * scale
        if is_causal:
            L, S = logits.shape[-2:]
            logits = logits.masked_fill(torch.ones(L, S, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
        if attn_mask is not None:
            mask = attn_mask[b if attn_mask.shape[0] > 1 else 0] if attn_mask.dim() == q.dim() else attn_mask
            logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
        best = torch.maximum(best, logits.amax())
    return best


def attention_logits():
    """A context in which every ``F.scaled_dot_product_attention`` call (a
    layer's attention, gpt's) also records its largest logit, in call order:
    ``.maxima``. It sees the queries and keys the layer passes to attention
    (after a qk-norm, where there is one), with no change to the model; fused
    kernels never form the logits, so this forms them, for diagnostics only."""
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    class AttentionLogits(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.maxima: list = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention:  # (q, k, v, attn_mask, dropout_p, is_causal, scale, ...)
                named = dict(zip(("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"), args))
                named.update(kwargs)
                self.maxima.append(max_attention_logit(
                    named["query"].detach(), named["key"].detach(), named.get("attn_mask"),
                    bool(named.get("is_causal", False)), named.get("scale")))
            return func(*args, **kwargs)

    return AttentionLogits()


def attention_figures(maxima: list) -> dict[str, Any]:
    """``attn_logit_max/<i>`` per attention call (layer) and their max."""
    import torch

    found = {f"attn_logit_max/{i}": value for i, value in enumerate(maxima)}
    if found:
        found["attn_logit_max"] = torch.stack(maxima).max()
    return found


# --------------------------------------------------------------------------- #
# A run's diagnostics                                                          #
# --------------------------------------------------------------------------- #


def copy_batch(batch: Any) -> Any:
    """A copy of a batch whose tensors are cloned (tuples, named tuples, lists,
    dicts, dataclasses), so no later step can overwrite it."""
    import dataclasses

    import torch

    if isinstance(batch, torch.Tensor):
        return batch.detach().clone()
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*[copy_batch(x) for x in batch])
    if isinstance(batch, (tuple, list)):
        return type(batch)(copy_batch(x) for x in batch)
    if isinstance(batch, dict):
        return {k: copy_batch(v) for k, v in batch.items()}
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(batch, **{f.name: copy_batch(getattr(batch, f.name))
                                             for f in dataclasses.fields(batch) if f.init})
    return batch


def fixed_batch(task, device) -> Any:
    """Training batch 0, copied, fetched in a forked RNG state (untimed, at set-up):
    fetching it changes no random stream the run uses."""
    import random

    import numpy as np
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            return copy_batch(task.next_batch(0))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextlib.contextmanager
def kept_state(model):
    """The model's buffers (BatchNorm statistics) and train/eval mode, restored on exit."""
    import torch

    buffers = [(b, b.detach().clone()) for b in model.buffers() if b is not None]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, training in modes:
            m.training = training


def output_figures(outputs, per_example_loss: Callable) -> dict[str, Any]:
    """log Z (softmax outputs) and the zero-loss share (classification losses),
    from the task's ``Outputs`` on the diagnostic batch, in float32."""
    import dataclasses

    figures = {}
    if outputs.loss in SOFTMAX_LOSSES:
        figures.update(logz(outputs.logits, outputs.weights))
    if outputs.loss in CLASSIFICATION_LOSSES:
        as_float32 = dataclasses.replace(outputs, logits=outputs.logits.float())
        figures["zero_loss_fraction"] = zero_loss_fraction(per_example_loss(as_float32), outputs.weights)
    return figures


def has_outputs(task) -> bool:
    """Whether the task implements the optional ``Task.outputs`` (api.Outputs)."""
    from harness import api

    method = getattr(type(task), "outputs", None)
    return method is not None and method is not api.Task.outputs


def math_attention():
    """Attention by its plain-math kernel: the fused ones have no double backward."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def current_lr(optimizer) -> float | None:
    """The first parameter group's learning rate now, if the optimizer has one."""
    groups = getattr(optimizer, "param_groups", None)
    lr = groups[0].get("lr") if groups else None
    return None if lr is None else float(lr)


class Diagnostics:
    """A run's diagnostics: set up before the clock starts, measured at each
    evaluation by the loop (harness/run/loop.py) on the unwrapped model."""

    def __init__(self, task, model, device, options: Mapping[str, Any]) -> None:
        from harness.params import typed_parameters

        self.task, self.options = task, dict(options)
        self.batch = fixed_batch(task, device)
        self.norms = StepNorms(list(model.parameters()), device)
        self.groups: dict[str, list] = {}
        for typed in typed_parameters(model, task.param_types(model)):
            self.groups.setdefault(typed.type.value, []).append(typed.param)
        self.before = {kind: [p.detach().clone() for p in ps] for kind, ps in self.groups.items()}
        self.step_before = 0
        self.last: dict[str, float] = {}  # the latest metrics-line figures
        self.errors: dict[str, str] = {}  # figure group -> its first error

    def wrap(self, update: Callable) -> Callable:
        return wrap_update(update, self.norms)

    def measure(self, model, optimizer, step: int) -> dict[str, float]:
        """Every figure at an evaluation at ``step``, as ``diagnostics/<name>`` floats.
        Leaves the model's parameters, buffers, gradients and mode as it found them."""
        import torch

        start = time.perf_counter()
        figures: dict[str, Any] = {}
        parts = [("forward", self._forward), ("gradient", self._gradient)]
        if self.options.get("hessian"):
            parts.append(("hessian", self._hessian))
        with kept_state(model):
            for name, part in parts:
                try:
                    figures.update(part(model, optimizer))
                except Exception as exc:  # a diagnostic must not end the run: left out, said in the record
                    self.errors.setdefault(name, f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
        figures.update(self._updates(step))
        figures.update(self.norms.read())
        names, device = list(figures), self.norms.ring.device
        # One transfer for all the figures.
        values = torch.stack([torch.as_tensor(figures[k], device=device).detach().double().reshape(())
                              for k in names]).tolist() if names else []
        self.last = {PREFIX + k: v for k, v in zip(names, values)}
        self.last[PREFIX + "seconds"] = time.perf_counter() - start
        return self.last

    def _forward(self, model, optimizer) -> dict[str, Any]:
        import torch

        outputs = self.task.outputs if has_outputs(self.task) else None
        model.eval()
        with torch.no_grad(), attention_logits() as attention:
            result = outputs(model, self.batch) if outputs is not None else self.task.loss(model, self.batch)
        figures = attention_figures(attention.maxima)
        if outputs is not None:
            from harness.common.losses import per_example_loss

            figures.update(output_figures(result, per_example_loss))
        return figures

    def _gradient(self, model, optimizer) -> dict[str, Any]:
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        model.train()
        with torch.enable_grad():
            loss = self.task.loss(model, self.batch)
            return {"loss": loss.detach(), "grad_norm": global_grad_norm(loss, params)}

    def _hessian(self, model, optimizer) -> dict[str, Any]:
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        model.train()
        with torch.enable_grad(), math_attention():
            loss = self.task.loss(model, self.batch)
            eigenvalue = hessian_top_eigenvalue(loss, params, int(self.options.get("hessian_iterations", 10)))
        figures = {"hessian/top_eigenvalue": eigenvalue}
        lr = current_lr(optimizer)
        if lr:  # lambda_max over 2/lr: above 1, gradient descent at this lr is unstable along it
            figures["hessian/ratio_to_2_over_lr"] = eigenvalue * lr / 2
        return figures

    def _updates(self, step: int) -> dict[str, Any]:
        import torch

        steps, self.step_before = step - self.step_before, step
        figures = {}
        for kind, params in self.groups.items():
            now = [p.detach() for p in params]
            figures[f"update_ratio/{kind}"] = update_ratio(now, self.before[kind], steps)
            torch._foreach_copy_(self.before[kind], now)
        return figures

    def summary(self) -> dict[str, Any]:
        """The record's ``diagnostics`` block: settings, the last figures, errors."""
        return {**self.options, "last": dict(self.last), "errors": dict(self.errors)}


def for_run(config: Mapping[str, Any], task, model, device) -> Diagnostics | None:
    """The run's diagnostics (``model`` unwrapped, built, before the first step), or None when off."""
    options = settings(config)
    return None if options is None else Diagnostics(task, model, device, options)


def describe(block: Mapping[str, Any] | None) -> str | None:
    """The record's last diagnostics in at most two lines (the run summary), or None."""
    last = (block or {}).get("last") or {}
    if not last and not (block or {}).get("errors"):
        return None

    def figure(label: str, key: str, fmt: str = ".3g") -> str | None:
        value = last.get(PREFIX + key)
        return None if not isinstance(value, (int, float)) else f"{label} {value:{fmt}}"

    ratios = sorted((k[len(PREFIX + "update_ratio/"):], v) for k, v in last.items()
                    if k.startswith(PREFIX + "update_ratio/") and isinstance(v, (int, float)))
    first = [figure("grad norm", "grad_norm"), figure("spike ratio", "grad_spike_ratio", ".2f"),
             ("update/weight per step " + ", ".join(f"{k} {v:.2g}" for k, v in ratios)) if ratios else None]
    logz = [f for f in (figure("log Z mean", "logz_mean"), figure("max", "logz_max")) if f]
    hessian = [f for f in (figure("top Hessian eigenvalue", "hessian/top_eigenvalue"),
                           figure("=", "hessian/ratio_to_2_over_lr")) if f]
    second = [figure("max attention logit", "attn_logit_max"), ", ".join(logz),
              figure("zero-loss share", "zero_loss_fraction", ".1%"),
              " ".join(hessian) + (" x 2/lr" if len(hessian) == 2 else "")]
    lines = [" · ".join(p for p in part if p) for part in (first, second)]
    errors = (block or {}).get("errors") or {}
    if errors:
        lines.append("failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return "\n".join(line for line in lines if line)
