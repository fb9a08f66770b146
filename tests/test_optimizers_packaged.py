"""Equation tests for the package-backed optimizer submissions (and hand-written LAMB).

Each test runs a few steps of ``submissions.optimizers.<name>.make_optimizer``
on a small float64 problem and compares the parameters with an independent,
straightforward transcription of the update rule stated in that module's
docstring (the paper's algorithm, with the departures the docstring names).
Package optimizers with a batched (foreach) path are checked on both paths.
"""

from __future__ import annotations

import functools
import importlib
import math

import pytest
import torch
from torch import nn

from harness.api import Hyperparameters, ParamType, StepContext, TypedParameter

STEPS = 8
FACTORS = [(1 + k) / STEPS for k in range(STEPS)]  # a changing lr, as a schedule gives
DT = torch.float64


def _module(name):
    return importlib.import_module(f"submissions.optimizers.{name}")


# --------------------------------------------------------------------------- #
# The problem: W1 (4x6) enters only through its row-normalized version, so    #
# the loss is scale-invariant in each row (AdamP/SGDP project there); W2 (3x4) #
# and b (3) are ordinary.                                                      #
# --------------------------------------------------------------------------- #


def _problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 6, generator=gen, dtype=DT)
    y = torch.randn(32, 3, generator=gen, dtype=DT)
    init = [torch.randn(4, 6, generator=gen, dtype=DT), torch.randn(3, 4, generator=gen, dtype=DT),
            torch.randn(3, generator=gen, dtype=DT)]

    def grads(params):
        w1, w2, b = (p.detach().requires_grad_(True) for p in params)
        h = torch.tanh(x @ (w1 / w1.norm(dim=1, keepdim=True)).T)
        loss = 0.5 * ((h @ w2.T + b - y) ** 2).mean()
        return [g.detach() for g in torch.autograd.grad(loss, (w1, w2, b))]

    return init, grads


TYPES = (ParamType.MATRIX, ParamType.MATRIX, ParamType.BIAS)
DECAYED = (True, True, False)  # decay_groups: no decay on the bias


def _build(name, hp_overrides=None, types=TYPES, step_hint=STEPS, seed=0):
    mod = _module(name)
    hp = Hyperparameters(mod.DEFAULTS, **(hp_overrides or {}))
    init, grads = _problem(seed)
    params = [nn.Parameter(p.clone()) for p in init]
    typed = [TypedParameter(f"p{i}", p, t) for i, (p, t) in enumerate(zip(params, types))]
    opt = mod.make_optimizer(typed, hp, step_hint)
    return mod, hp, opt, params, init, grads


def _set_foreach(opt, foreach):
    if foreach is not None:
        for group in opt.param_groups:
            group["foreach"] = foreach
        if hasattr(opt, "foreach"):
            opt.foreach = foreach


def _run(opt, params, grads, factors=FACTORS):
    """Step with lr = base * factor (each group's own base), as a schedule would."""
    base = [g["lr"] for g in opt.param_groups]
    for f in factors:
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * f
        for p, g in zip(params, grads(params)):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in params]


def _close(got, want, init, atol=1e-12, rtol=0.0):
    for g, w, p0 in zip(got, want, init):
        assert torch.allclose(g, w, atol=atol, rtol=rtol), (g - w).abs().max()
    assert not torch.allclose(got[0], init[0], atol=1e-4), "W1 did not move"


def _adam_moments(m, v, g, b1, b2):
    return b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These problems are tiny: a second intra-op thread only adds overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FOREACH = pytest.mark.parametrize("foreach", [False, True], ids=["per_param", "foreach"])


# --------------------------------------------------------------------------- #
# SGD and AdamW (torch.optim)                                                  #
# --------------------------------------------------------------------------- #

NO_DECAY_TYPES = pytest.mark.parametrize("last", [ParamType.BIAS, ParamType.NORM], ids=["bias", "norm"])
APART = 1e-6  # every wrong variant ends at least this far (max abs) from the right one: 1e6 x _close's atol


def _max_abs_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def _reference_sgd(hp, init, grads, nesterov, coupled=True, decayed=DECAYED):
    """Sutskever et al.'s momentum as torch.optim.SGD runs it: b = mu * b + (g + wd * p),
    then p -= lr * (g + wd * p + mu * b) (Nesterov) or p -= lr * b; ``coupled=False``
    is the decoupled variant p *= 1 - lr * wd instead of the L2 term."""
    mu, lr0, wd = hp.momentum, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    buf = [torch.zeros_like(p) for p in ps]
    for f in FACTORS:
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            p = ps[i]
            if coupled:
                g = g + wd * decayed[i] * p
            else:
                p = p * (1 - lr * wd * decayed[i])
            buf[i] = mu * buf[i] + g
            ps[i] = p - lr * (g + mu * buf[i] if nesterov else buf[i])
    return ps


@pytest.mark.parametrize("nesterov", [False, True])
@NO_DECAY_TYPES
@FOREACH
def test_sgd(foreach, last, nesterov):
    types = (ParamType.MATRIX, ParamType.MATRIX, last)
    mod, hp, opt, params, init, grads = _build("sgd", {"weight_decay": 0.3, "nesterov": nesterov}, types=types)
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)
    want = _reference_sgd(hp, init, grads, nesterov)
    _close(got, want, init)
    # the test can fail: the other momentum, decoupled decay, or decay on the bias / norm
    # gain would each end far outside the tolerance
    variants = {
        "other momentum": _reference_sgd(hp, init, grads, not nesterov),
        "decoupled decay": _reference_sgd(hp, init, grads, nesterov, coupled=False),
        "decay on every tensor": _reference_sgd(hp, init, grads, nesterov, decayed=(True, True, True)),
    }
    for name, variant in variants.items():
        assert _max_abs_diff(variant, want) > APART, name


def _reference_adamw(hp, init, grads, decoupled=True, decayed=DECAYED):
    """Loshchilov & Hutter: p *= 1 - lr * wd, then p -= lr * m_hat / (sqrt(v_hat) + eps);
    ``decoupled=False`` is Adam with L2 (wd * p added to the gradient)."""
    b1, b2, eps, lr0, wd = 1 - hp.one_minus_beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            p = ps[i]
            if decoupled:
                p = p * (1 - lr * wd * decayed[i])
            else:
                g = g + wd * decayed[i] * p
            m[i], v[i] = _adam_moments(m[i], v[i], g, b1, b2)
            ps[i] = p - lr * (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
    return ps


@NO_DECAY_TYPES
@FOREACH
def test_adamw(foreach, last):
    types = (ParamType.MATRIX, ParamType.MATRIX, last)
    mod, hp, opt, params, init, grads = _build("adamw", {"weight_decay": 0.3}, types=types)
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)
    want = _reference_adamw(hp, init, grads)
    _close(got, want, init)
    # the test can fail: L2 decay through the moments, decay on the bias / norm gain, or no
    # decay at all would each end far outside the tolerance
    variants = {
        "coupled (L2) decay": _reference_adamw(hp, init, grads, decoupled=False),
        "decay on every tensor": _reference_adamw(hp, init, grads, decayed=(True, True, True)),
        "no decay": _reference_adamw(hp, init, grads, decayed=(False, False, False)),
    }
    for name, variant in variants.items():
        assert _max_abs_diff(variant, want) > APART, name


# --------------------------------------------------------------------------- #
# diffGrad                                                                     #
# --------------------------------------------------------------------------- #


@FOREACH
def test_diffgrad(foreach):
    mod, hp, opt, params, init, grads = _build("diffgrad", {"weight_decay": 0.3})
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)

    b1, b2, eps, lr0, wd = 1 - hp.one_minus_beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    prev = [torch.zeros_like(p) for p in ps]
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            m[i], v[i] = _adam_moments(m[i], v[i], g, b1, b2)
            xi = torch.sigmoid((prev[i] - g).abs())
            prev[i] = g
            p = ps[i] * (1 - lr * wd * DECAYED[i])
            ps[i] = p - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * xi * m[i] / ((v[i] + 1e-15).sqrt() + eps)
    _close(got, ps, init)


# --------------------------------------------------------------------------- #
# AdamP / SGDP                                                                 #
# --------------------------------------------------------------------------- #


def _project(w, g, u, delta, eps):
    """Heo et al.'s projection: returns (u, projected?) trying channels, then the layer."""
    if w.dim() < 2:
        return u, False
    for flat in (lambda t: t.reshape(t.shape[0], -1), lambda t: t.reshape(1, -1)):
        wf, gf, uf = flat(w), flat(g), flat(u)
        cos = (wf * gf).sum(1).abs() / (wf.norm(dim=1) * gf.norm(dim=1))
        if cos.max() < delta / math.sqrt(wf.shape[1]):
            wn = wf / (wf.norm(dim=1, keepdim=True) + eps)
            return (uf - wn * (wn * uf).sum(1, keepdim=True)).reshape(u.shape), True
    return u, False


@pytest.mark.parametrize("nesterov", [False, True])
@FOREACH
def test_adamp(foreach, nesterov):
    mod, hp, opt, params, init, grads = _build("adamp", {"weight_decay": 0.3, "nesterov": nesterov})
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)

    b1, b2, eps, lr0, wd = 1 - hp.one_minus_beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    projected = []
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            m[i], v[i] = _adam_moments(m[i], v[i], g, b1, b2)
            num = b1 * m[i] + (1 - b1) * g if nesterov else m[i]
            u = num / (1 - b1**t) * math.sqrt(1 - b2**t) / (v[i].sqrt() + eps)
            u, proj = _project(ps[i], g, u, hp.delta, eps)
            projected.append((i, proj))
            ratio = hp.wd_ratio if proj else 1.0
            ps[i] = ps[i] * (1 - lr * wd * DECAYED[i] * ratio) - lr * u
    _close(got, ps, init)
    # the scale-invariant W1 was projected, the ordinary W2 was not
    assert all(proj for i, proj in projected if i == 0)
    assert not any(proj for i, proj in projected if i == 1)


@FOREACH
def test_sgdp(foreach):
    mod, hp, opt, params, init, grads = _build("sgdp", {"weight_decay": 0.01})
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)

    mu, lr0, wd = hp.momentum, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    buf = [torch.zeros_like(p) for p in ps]
    for f in FACTORS:
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            buf[i] = mu * buf[i] + g
            u = g + mu * buf[i]  # Nesterov
            u, proj = _project(ps[i], g, u, hp.delta, 1e-8)
            ratio = hp.wd_ratio if proj else 1.0
            ps[i] = ps[i] * (1 - lr * wd * DECAYED[i] * ratio / (1 - mu)) - lr * u
    _close(got, ps, init)


# --------------------------------------------------------------------------- #
# SPAM                                                                         #
# --------------------------------------------------------------------------- #


@FOREACH
def test_spam_resets_warmup_and_clipping(foreach):
    # small reset interval, warmup and threshold so that all three act within the run
    over = {"weight_decay": 0.2, "reset_interval": 5, "reset_warmup_steps": 3, "threshold": 2}
    mod, hp, opt, params, init, grads = _build("spam", over)
    opt.grad_accu_steps = 2
    _set_foreach(opt, foreach)
    factors = [1.0] * 13
    got = _run(opt, params, grads, factors)

    b1, b2, eps, lr, wd = 1 - hp.one_minus_beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay
    gap, n_warm, theta, accu = 5, 3, 2.0, 2
    ps = [p.clone() for p in init]
    m = v = None
    since_reset = n_warm + 1  # no warmup before the first reset
    clipped = 0
    for t in range(1, len(factors) + 1):
        if since_reset >= n_warm:
            scale = 1.0
        else:
            scale = 1 - 0.99 * (1 + math.cos(math.pi * (since_reset + 1) / (n_warm + 1))) / 2
        if m is None or t % gap == 0:
            m = [torch.zeros_like(p) for p in ps]
            v = [torch.zeros_like(p) for p in ps]
        for i, g in enumerate(grads(ps)):
            if t >= accu and t % gap >= accu:
                spike = g * g > theta * v[i]
                clipped += int(spike.sum())
                g = torch.where(spike, g.sign() * (theta * v[i]).sqrt(), g)
            m[i], v[i] = _adam_moments(m[i], v[i], g, b1, b2)
            step = scale * lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            p = ps[i] - step * m[i] / (v[i].sqrt() + eps)
            ps[i] = p * (1 - lr * wd * DECAYED[i])
        since_reset += 1
        if (t + 1) % gap == 0:
            since_reset = 0
    assert clipped > 0
    _close(got, ps, init)


# --------------------------------------------------------------------------- #
# Grams                                                                        #
# --------------------------------------------------------------------------- #


@FOREACH
def test_grams(foreach):
    mod, hp, opt, params, init, grads = _build("grams", {"weight_decay": 0.3})
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)

    b1, b2, eps, lr0, wd = 1 - hp.one_minus_beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            m[i], v[i] = _adam_moments(m[i], v[i], g, b1, b2)
            u = (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
            ps[i] = ps[i] - lr * (g.sign() * u.abs() + wd * DECAYED[i] * ps[i])
    _close(got, ps, init)


# --------------------------------------------------------------------------- #
# Ranger21                                                                     #
# --------------------------------------------------------------------------- #


def _unit_norm(x):
    if x.dim() <= 1:
        return x.norm()
    return x.reshape(x.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (x.dim() - 1)))


def _gc_norm(g):
    if g.dim() > 1:
        g = g - g.reshape(g.shape[0], -1).mean(1).reshape(-1, *([1] * (g.dim() - 1)))
    if g.numel() > 2:
        g = g / (g.std() + 1e-8)
    return g


@FOREACH
def test_ranger21(foreach):
    n = 10  # step hint: warmup over int(0.22 * n) = 2 steps, warm-down over the last 3
    mod, hp, opt, params, init, grads = _build("ranger21", {"weight_decay": 0.05}, step_hint=n)
    assert not hasattr(mod, "make_schedule")
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads, [1.0] * n)

    b1, b2, b0, lr0, wd, eps = hp.beta1, hp.beta2, 0.9, hp.lr, hp.weight_decay, 1e-8
    warm, down_iters = 2, n - int(0.72 * n)
    down_start = n - down_iters
    ps = [p.clone() for p in init]
    slow = [p.clone() for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    vmax = [torch.zeros_like(p) for p in ps]
    ma = [[torch.zeros_like(p), torch.zeros_like(p)] for p in ps]  # the two alternating buffers
    for t in range(1, n + 1):
        gs, total, count = [], 1.0, 0  # the package starts the variance sum at 1.0
        for i, g in enumerate(grads(ps)):
            max_norm = _unit_norm(ps[i]).clamp_min(1e-3) * 1e-2
            g_norm = _unit_norm(g).clamp_min(1e-6)
            g = torch.where(g_norm > max_norm, g * (max_norm / g_norm), g)
            g = _gc_norm(g)
            v[i] = b2 * v[i] + (1 - b2) * g * g
            total = total + (v[i] / (1 - b2**t)).sum()
            count += g.numel()
            gs.append(g)
        s = torch.sqrt(total / count)
        lr = lr0 * min(1.0, t / warm) if t <= warm else lr0
        if t >= down_start:
            pct = min(max(t + 1 - down_start, 1) / (down_iters + 1), 1.0)
            lr = max(lr0 - (lr0 - 3e-5) * pct, 3e-5)
        for i, g in enumerate(gs):
            p = ps[i] * (1 - lr * wd * DECAYED[i] / s)
            p = p * (1 - lr * 2e-4 * (1 - 1 / (_unit_norm(p) + eps)))
            cur, prev = (ma[i][0], ma[i][1]) if t % 2 == 1 else (ma[i][1], ma[i][0])
            vmax[i] = torch.maximum(vmax[i], v[i])
            d = nn.functional.softplus(vmax[i].sqrt() / math.sqrt(1 - b2**t) + eps, beta=50)
            cur = cur + (1 - b1**2) * (_gc_norm(g) - cur)
            ma[i][0 if t % 2 == 1 else 1] = cur
            pnm = ((1 + b0) * cur - b0 * prev) / math.sqrt((1 + b0) ** 2 + b0**2)
            ps[i] = p - lr / (1 - b1**t) * pnm / d
        if t % 5 == 0:
            ps = [0.5 * p + 0.5 * q for p, q in zip(ps, slow)]
            slow = [p.clone() for p in ps]
    _close(got, ps, init, atol=1e-10)


# --------------------------------------------------------------------------- #
# Muon                                                                         #
# --------------------------------------------------------------------------- #


def _ns5(u, steps=5):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = u.T if u.shape[0] > u.shape[1] else u
    x = x / x.norm()
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if u.shape[0] > u.shape[1] else x


def test_muon_groups_by_parameter_type():
    mod = _module("muon")
    hp = Hyperparameters(mod.DEFAULTS)
    kinds = list(ParamType)
    params = [TypedParameter(k.value, nn.Parameter(torch.randn(4, 5)), k) for k in kinds]
    opt = mod.make_optimizer(params, hp, 10)
    flag = {id(p): g["use_muon"] for g in opt.param_groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for tp in params:
        assert flag[id(tp.param)] == (tp.type in (ParamType.MATRIX, ParamType.CONV)), tp.type
        assert decay[id(tp.param)] == (0.0 if tp.type in (ParamType.BIAS, ParamType.NORM) else hp.weight_decay)


def _keller_jordan_scale(rows, cols):
    """The package's shape factor with ``use_adjusted_lr=False``: sqrt(max(1, rows / cols))."""
    return max(1.0, rows / cols) ** 0.5


def _reference_muon(hp, init, grads, types, factors=FACTORS, momentum=None, nesterov=True,
                    scale=_keller_jordan_scale, coupled_decay=False):
    """Muon on MATRIX / CONV tensors, AdamW on the rest, as the module docstring states.

    The keyword arguments make the variants the Muon test must tell apart:
    ``momentum=0.0`` (none), ``nesterov=False`` (plain momentum), another shape
    ``scale``, or L2 decay added to the gradient (``coupled_decay``)."""
    mu = hp.momentum if momentum is None else momentum
    lr0, alr0, wd = hp.lr, hp.adamw_lr, hp.weight_decay
    b1, b2, eps = hp.adamw_beta1, hp.adamw_beta2, 1e-10
    ps = [p.clone() for p in init]
    buf = [torch.zeros_like(p) for p in ps]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    for t, f in enumerate(factors, 1):
        lr, alr = lr0 * f, alr0 * f
        for i, g in enumerate(grads(ps)):
            if types[i] in (ParamType.MATRIX, ParamType.CONV):
                if coupled_decay:
                    g = g + wd * ps[i]
                # Keller Jordan's buf = mu * buf + g, u = g + mu * buf, in the package's EMA form
                # (both scaled by 1 - mu, which the normalization inside NS5 removes)
                buf[i] = mu * buf[i] + (1 - mu) * g
                u = (1 - mu) * g + mu * buf[i] if nesterov else buf[i]
                rows, cols = ps[i].shape[0], ps[i][0].numel()
                p = ps[i] if coupled_decay else ps[i] * (1 - lr * wd)
                ortho = _ns5(u.reshape(rows, cols)).reshape(ps[i].shape)
                ps[i] = p - lr * scale(rows, cols) * ortho
            else:
                m[i], v[i] = _adam_moments(m[i], v[i], g, b1, b2)
                decay = wd if types[i] not in (ParamType.BIAS, ParamType.NORM) else 0.0
                p = ps[i] * (1 - alr * decay)
                ps[i] = p - alr * (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
    return ps


# Muon's matrices: tall, wide, square, and a second tall one (batched with the first on the
# foreach path), all MATRIX. Each gradient is a pull towards a target plus an oscillating
# and a random part, so that the current gradient and the momentum buffer point different
# ways and Nesterov, plain momentum and no momentum give clearly different trajectories.
MUON_SHAPES = [(8, 3), (3, 8), (5, 5), (8, 3)]
MUON_STEPS = 12
MUON_FACTORS = [(1 + k) / MUON_STEPS for k in range(MUON_STEPS)]
# relative error |got - want| / |want - init| per matrix. The package orthogonalizes in
# bfloat16 (measured 0.7% off the float64 reference here); in float64 it matches to ~1e-15.
MUON_TOL = {"float64": 1e-12, "bfloat16": 1.5e-2}
MUON_APART = 5 * MUON_TOL["bfloat16"]  # every wrong variant is at least this far off


def _muon_matrix_problem(seed=0):
    """``init`` and a factory of gradient functions: each call of the factory replays the
    same sequence of step gradients (one per call of the returned function)."""
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(*s, generator=gen, dtype=DT) for s in MUON_SHAPES]
    target = [torch.randn(*s, generator=gen, dtype=DT) for s in MUON_SHAPES]
    swing = [torch.randn(*s, generator=gen, dtype=DT) for s in MUON_SHAPES]
    noise = [[6.0 * (-1) ** t * z + 3.0 * torch.randn(*s, generator=gen, dtype=DT) for s, z in zip(MUON_SHAPES, swing)]
             for t in range(MUON_STEPS)]

    def make_grads():
        steps = iter(noise)

        def grads(params):
            return [(p.detach() - y) + n for p, y, n in zip(params, target, next(steps))]

        return grads

    return init, make_grads


def _rel_errors(got, want, init):
    return [float((g - w).norm() / (w - p0).norm()) for g, w, p0 in zip(got, want, init)]


@pytest.mark.parametrize("precision", ["float64", "bfloat16"])
@FOREACH
def test_muon(foreach, precision, monkeypatch):
    if precision == "float64":  # the package's own Newton-Schulz, run in float64
        from pytorch_optimizer.optimizer.muon import base as muon_base

        ns5 = functools.partial(muon_base.zero_power_via_newton_schulz_5, dtype=torch.float64)
        monkeypatch.setattr(muon_base, "zero_power_via_newton_schulz_5", ns5)
    mod = _module("muon")
    hp = Hyperparameters(mod.DEFAULTS, weight_decay=0.3)
    init, make_grads = _muon_matrix_problem()
    params = [nn.Parameter(p.clone()) for p in init]
    types = [ParamType.MATRIX] * len(params)
    opt = mod.make_optimizer([TypedParameter(f"w{i}", p, t) for i, (p, t) in enumerate(zip(params, types))],
                             hp, MUON_STEPS)
    assert [g["use_muon"] for g in opt.param_groups] == [True] and opt.param_groups[0]["nesterov"]
    _set_foreach(opt, foreach)
    got = _run(opt, params, make_grads(), MUON_FACTORS)

    def reference(**variant):
        return _reference_muon(hp, init, make_grads(), types, MUON_FACTORS, **variant)

    want = reference()
    tol = MUON_TOL[precision]
    assert max(_rel_errors(got, want, init)) < tol, _rel_errors(got, want, init)

    # The test can fail: each wrong variant of the update is far outside the tolerance,
    # on every matrix (or on those where its shape factor differs).
    plain, none = reference(nesterov=False), reference(momentum=0.0)
    apart = {
        "plain momentum": (plain, [0, 1, 2, 3]),
        "no momentum": (none, [0, 1, 2, 3]),
        "plain vs no momentum": (none, [0, 1, 2, 3], plain),
        "factor sqrt(max(1, cols / rows))": (reference(scale=lambda r, c: max(1.0, c / r) ** 0.5), [0, 1, 3]),
        "Moonlight's 0.2 sqrt(max dim)": (reference(scale=lambda r, c: 0.2 * max(r, c) ** 0.5), [0, 1, 2, 3]),
        "coupled L2 decay": (reference(coupled_decay=True), [0, 1, 2, 3]),
    }
    for name, (variant, which, *against) in apart.items():
        errors = _rel_errors(variant, against[0] if against else want, init)
        assert min(errors[i] for i in which) > MUON_APART, (name, errors)
        assert min(_rel_errors(got, variant, init)[i] for i in which) > MUON_APART - tol, name


@FOREACH
def test_muon_adamw_branch(foreach):
    types = (ParamType.HEAD, ParamType.EMBEDDING, ParamType.NORM)
    mod, hp, opt, params, init, grads = _build("muon", {"weight_decay": 0.3}, types=types)
    assert not any(g["use_muon"] for g in opt.param_groups)
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)
    _close(got, _reference_muon(hp, init, grads, types), init)


def test_muon_conv_update_is_near_orthogonal():
    mod = _module("muon")
    hp = Hyperparameters(mod.DEFAULTS, weight_decay=0.0, momentum=0.0)
    torch.manual_seed(0)
    conv = nn.Parameter(torch.randn(8, 3, 3, 3))
    opt = mod.make_optimizer([TypedParameter("conv", conv, ParamType.CONV)], hp, 10)
    before = conv.detach().clone()
    conv.grad = torch.randn_like(conv)
    opt.step()
    update = ((before - conv.detach()) / hp.lr).reshape(8, -1)  # (out, in * kh * kw), rows < cols: factor 1
    s = torch.linalg.svdvals(update)
    assert s.min() > 0.5 and s.max() < 1.3, s  # NS5 maps every singular value into ~[0.7, 1.2]


# --------------------------------------------------------------------------- #
# Gravity                                                                      #
# --------------------------------------------------------------------------- #


@FOREACH
def test_gravity(foreach):
    mod, hp, opt, params, init, grads = _build("gravity", {"weight_decay": 0.05})
    _set_foreach(opt, foreach)
    torch.manual_seed(7)
    got = _run(opt, params, grads)

    lr0, alpha, beta, wd = hp.lr, hp.alpha, hp.beta, hp.weight_decay
    ps = [p.clone() for p in init]
    torch.manual_seed(7)
    vel = [torch.empty_like(p).normal_(mean=0.0, std=alpha / (lr0 * FACTORS[0])) for p in ps]
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        beta_t = (beta * t + 1) / (t + 2)
        for i, g in enumerate(grads(ps)):
            m_inv = 1 / g.abs().max()
            zeta = g / (1 + (g / m_inv) ** 2)
            vel[i] = beta_t * vel[i] + (1 - beta_t) * zeta
            ps[i] = ps[i] * (1 - lr * wd * DECAYED[i]) - lr * vel[i]
    _close(got, ps, init, atol=1e-11)


# --------------------------------------------------------------------------- #
# PSGD Kron                                                                    #
# --------------------------------------------------------------------------- #


def _norm_lower_bound(a):
    """Li's lower bound on the spectral norm of a (Hermitian) matrix."""
    scale = a.abs().max()
    a = a / scale
    aa = a * a
    col, row = aa.sum(0), aa.sum(1)
    if col.max() > row.max():
        x = a[:, col.argmax()] @ a
        return scale * ((x / x.norm()) @ a.T).norm()
    x = a @ a[row.argmax(), :]
    return scale * (a.T @ (x / x.norm())).norm()


def test_psgd_kron():
    mod, hp, opt, params, init, grads = _build("psgd_kron", {"weight_decay": 0.3})
    for group in opt.param_groups:
        group["precondition_dtype"] = DT  # (its triangular solves still run in float32)
    torch.manual_seed(3)
    got = _run(opt, params, grads)

    mu, lr0, wd, plr, tiny = hp.momentum, hp.lr, hp.weight_decay, 0.1, torch.finfo(torch.bfloat16).tiny
    ps = [p.clone() for p in init]
    mom = [torch.zeros_like(p) for p in ps]
    qs = [[torch.eye(4, dtype=DT), torch.eye(6, dtype=DT)], [torch.eye(3, dtype=DT), torch.eye(4, dtype=DT)],
          [torch.ones(3, dtype=DT)]]
    torch.manual_seed(3)
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            mom[i] = mu * mom[i] + (1 - mu) * g
            h = mom[i] / (1 - mu**t)
            noise = torch.randn_like(h)
            if h.dim() == 2:
                q1, q2 = qs[i]
                a = q1 @ h @ q2.T
                b = torch.linalg.inv(q1).T @ noise @ torch.linalg.inv(q2)
                for k, (t1, t2) in enumerate(((a @ a.T, b @ b.T), (a.T @ a, b.T @ b))):
                    step = plr * torch.triu(t1 - t2) / (_norm_lower_bound(t1 + t2) + tiny)
                    qs[i][k] = qs[i][k] - step @ qs[i][k]
                q1, q2 = qs[i]
                u = q1.T @ q1 @ h @ q2.T @ q2
            else:
                q = qs[i][0]
                a, b = q * h, noise / q
                t1, t2 = a * a, b * b
                qs[i][0] = q - plr * (t1 - t2) * q / ((t1 + t2).abs().max() + tiny)
                u = qs[i][0] ** 2 * h
            u = u * min(1.0, float(1.1 / (u.square().mean().sqrt() + 1e-6)))
            decay = wd * DECAYED[i] if ps[i].dim() >= 2 else 0.0
            ps[i] = ps[i] - lr * (u + decay * ps[i])
    _close(got, ps, init, atol=1e-6)


def test_psgd_kron_factorwise_products_match_the_package_einsums():
    mod = _module("psgd_kron")
    from pytorch_optimizer.optimizer.psgd import initialize_q_expressions

    gen = torch.Generator().manual_seed(4)
    for shape in [(5, 4, 3, 2), (6, 7), (5,), ()]:
        t = torch.randn(shape, generator=gen, dtype=DT)
        qs, (expr_a, _, expr_r) = initialize_q_expressions(t, 1.0, 8192, 2, None, dtype=DT)
        qs = [torch.triu(torch.randn(q.shape, generator=gen, dtype=DT)) + 3 * q if q.dim() == 2
              else q + torch.rand(q.shape, generator=gen, dtype=DT) for q in qs]
        g, v = torch.randn_like(t), torch.randn_like(t)
        want_p = torch.einsum(expr_r, *qs, *qs, g)
        assert torch.allclose(mod._apply_factors(qs, g, gram=True), want_p, atol=1e-10), shape
        a, _ = mod._get_a_and_conj_b(expr_a, g, qs, v)
        assert torch.allclose(a, torch.einsum(expr_a, *qs, g), atol=1e-10), shape


def test_psgd_kron_balancing_keeps_the_preconditioner():
    mod, hp, opt, params, init, grads = _build("psgd_kron")
    _run(opt, params, grads, [1.0] * 3)
    qs = opt.state[params[0]]["Q"]
    qs[0].mul_(1e3)
    qs[1].mul_(1e-3)  # unbalanced, same Kronecker product
    before = torch.kron(qs[0], qs[1]).clone()
    opt.param_groups[0]["step"] = mod.BALANCE_EVERY - 1
    opt.param_groups[0]["pre_conditioner_update_probability"] = 0.0  # no factor update this step
    _run(opt, params, grads, [0.0])  # lr 0: only the balancing acts
    norms = [q.abs().max() for q in qs]
    assert torch.isclose(norms[0], norms[1], rtol=1e-5), norms  # equal max-norms now (float32 factors)
    assert torch.allclose(torch.kron(qs[0], qs[1]), before, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- #
# NovoGrad                                                                     #
# --------------------------------------------------------------------------- #


@FOREACH
def test_novograd(foreach):
    mod, hp, opt, params, init, grads = _build("novograd", {"weight_decay": 0.1})
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)

    b1, b2, eps, lr0, wd = hp.beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    m, v = [None] * 3, [None] * 3
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            sq = (g * g).sum()
            v[i] = sq if t == 1 else b2 * v[i] + (1 - b2) * sq
            d = g / (v[i].sqrt() + eps) + wd * DECAYED[i] * ps[i]
            m[i] = d if t == 1 else b1 * m[i] + d
            ps[i] = ps[i] - lr * m[i]
    _close(got, ps, init)


# --------------------------------------------------------------------------- #
# LAMB (hand-written) and LARS                                                 #
# --------------------------------------------------------------------------- #


def test_lamb():
    mod, hp, opt, params, init, grads = _build("lamb", {"weight_decay": 0.3})
    got = _run(opt, params, grads)

    b1, b2, eps, lr0, wd = 1 - hp.one_minus_beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay
    ps = [p.clone() for p in init]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            m[i], v[i] = _adam_moments(m[i], v[i], g, b1, b2)
            r = (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
            if DECAYED[i]:  # weights: decay inside the trust ratio
                u = r + wd * ps[i]
                u = u * (ps[i].norm() / u.norm())
            else:  # biases: plain Adam
                u = r
            ps[i] = ps[i] - lr * u
    _close(got, ps, init)
    # each weight moved by lr * |w| per step: the first step of W2 is exactly that long
    mod, hp, opt, params, init, grads = _build("lamb")
    _run(opt, params, grads, [1.0])
    assert torch.isclose((params[1] - init[1]).norm(), hp.lr * init[1].norm(), rtol=1e-9)


@pytest.mark.parametrize("nesterov", [False, True])
@FOREACH
def test_lars(foreach, nesterov):
    mod, hp, opt, params, init, grads = _build("lars", {"weight_decay": 0.01, "nesterov": nesterov})
    _set_foreach(opt, foreach)
    got = _run(opt, params, grads)

    mu, lr0, wd, eta = hp.momentum, hp.lr, hp.weight_decay, hp.trust_coefficient
    ps = [p.clone() for p in init]
    buf = [torch.zeros_like(p) for p in ps]
    for f in FACTORS:
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            if ps[i].dim() > 1:
                decay = wd * DECAYED[i]
                ratio = eta * ps[i].norm() / (g.norm() + decay * ps[i].norm())
                g = ratio * (g + decay * ps[i])
            buf[i] = mu * buf[i] + g
            ps[i] = ps[i] - lr * (g + mu * buf[i] if nesterov else buf[i])
    _close(got, ps, init)


# --------------------------------------------------------------------------- #
# Shampoo                                                                      #
# --------------------------------------------------------------------------- #


def _inv_root(mat, p):
    lam, q = torch.linalg.eigh(mat)
    return (q * lam.pow(-1.0 / p)) @ q.T


def test_shampoo_with_exact_roots():
    # precondition from step 2 and recompute the roots every 2 steps; roots exact (SVD)
    mod, hp, opt, params, init, grads = _build("shampoo", {"weight_decay": 0.3, "precondition_frequency": 2})
    opt.use_svd = True
    got = _run(opt, params, grads)

    b1, b2, lr0, wd, freq = 1 - hp.one_minus_beta1, hp.beta2, hp.lr, hp.weight_decay, 2
    ps = [p.clone() for p in init]
    stats = [[1e-6 * torch.eye(n, dtype=DT) for n in p.shape] if p.dim() == 2 else [] for p in ps]
    roots = [[torch.eye(n, dtype=DT) for n in p.shape] if p.dim() == 2 else [] for p in ps]
    acc = [torch.zeros_like(p) for p in ps]
    mom = [torch.zeros_like(p) for p in ps]
    graft_mom = [torch.zeros_like(p) for p in ps]
    for t, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        for i, g in enumerate(grads(ps)):
            acc[i] = b2 * acc[i] + (1 - b2) * g * g
            r = g / (acc[i].sqrt() + 1e-10)  # RMSProp graft
            if stats[i]:
                left, right = stats[i]
                stats[i] = [b2 * left + (1 - b2) * g @ g.T, b2 * right + (1 - b2) * g.T @ g]
                if t % freq == 0:
                    roots[i] = [_inv_root(s, 4) for s in stats[i]]
                s = roots[i][0] @ g @ roots[i][1]
                s = s * (r.norm() / (s.norm() + 1e-16))
            else:
                s = r
            p = ps[i] * (1 - lr * wd * DECAYED[i])
            mom[i] = b1 * mom[i] + (1 - b1) * s
            graft_mom[i] = b1 * graft_mom[i] + (1 - b1) * r
            if t >= freq:  # Shampoo direction from the start step on, the graft's before
                update = b1 * mom[i] + (1 - b1) * s
            else:
                update = b1 * graft_mom[i] + (1 - b1) * r
            ps[i] = p - lr * update
    _close(got, ps, init, atol=1e-10)


def test_shampoo_schur_newton_root():
    from pytorch_optimizer.optimizer.utils.matrix import compute_power_schur_newton

    gen = torch.Generator().manual_seed(5)
    a = torch.randn(6, 9, generator=gen, dtype=DT)
    mat = a @ a.T
    got = compute_power_schur_newton(mat, 4, ridge_epsilon=1e-6)
    lam_max = torch.linalg.eigvalsh(mat).max()
    want = _inv_root(mat + 1e-6 * lam_max * torch.eye(6, dtype=DT), 4)
    assert (got - want).norm() / want.norm() < 5e-3


# --------------------------------------------------------------------------- #
# SOAP                                                                         #
# --------------------------------------------------------------------------- #


def test_soap():
    # precondition frequency 3 so that the QR refresh runs within the 8 steps
    mod, hp, opt, params, init, grads = _build("soap", {"weight_decay": 0.3, "precondition_frequency": 3})
    got = _run(opt, params, grads)

    b1, b2, eps, lr0, wd, freq = hp.beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay, 3
    sb = b2  # shampoo_beta
    ps = [p.clone() for p in init]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    gg = [[torch.zeros(n, n, dtype=DT) for n in p.shape] if p.dim() == 2 else [] for p in ps]
    qs = [None] * 3

    def rotate(x, q):  # Q_L^T x Q_R
        return q[0].T @ x @ q[1]

    def unrotate(x, q):  # Q_L x Q_R^T
        return q[0] @ x @ q[1].T

    for k, f in enumerate(FACTORS, 1):
        lr = lr0 * f
        gs = grads(ps)
        if k == 1:  # first step: only the preconditioner
            for i, g in enumerate(gs):
                if gg[i]:
                    # G^T G of one 4x6 gradient has a 2-d null space with no unique eigenbasis,
                    # so form the factors with the package's arithmetic to get the same basis
                    outer = [torch.tensordot(g, g, dims=[[1], [1]]), torch.tensordot(g, g, dims=[[0], [0]])]
                    gg[i] = [z.lerp(o, 1 - sb) for z, o in zip(gg[i], outer)]
                    eye = [1e-30 * torch.eye(s.shape[0], dtype=DT) for s in gg[i]]
                    qs[i] = [torch.linalg.eigh(s + e)[1].flip(1) for s, e in zip(gg[i], eye)]
            continue
        t = k - 1
        for i, g in enumerate(gs):
            q = qs[i]
            gr = rotate(g, q) if q else g
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * gr * gr
            mr = rotate(m[i], q) if q else m[i]
            n = mr / (v[i].sqrt() + eps)
            n = unrotate(n, q) if q else n
            p = ps[i] - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * n
            ps[i] = p * (1 - lr * wd * DECAYED[i])
            if gg[i]:
                gg[i] = [sb * gg[i][0] + (1 - sb) * g @ g.T, sb * gg[i][1] + (1 - sb) * g.T @ g]
                if t % freq == 0:  # one power iteration + QR, columns by estimated eigenvalue
                    for d in range(2):
                        prod = gg[i][d] @ q[d]
                        order = torch.argsort((q[d] * prod).sum(0), descending=True)
                        v[i] = v[i].index_select(d, order)
                        q[d] = torch.linalg.qr(prod[:, order].float())[0].to(DT)
    _close(got, ps, init, atol=1e-6)


# --------------------------------------------------------------------------- #
# Schedule-Free AdamW                                                          #
# --------------------------------------------------------------------------- #


def test_schedule_free_adamw_and_eval_swap():
    over = {"weight_decay": 0.3, "warmup_fraction": 0.25}  # 2 warmup steps at step_hint 8
    mod, hp, opt, params, init, grads = _build("schedule_free_adamw", over)
    assert not hasattr(mod, "make_schedule")
    got = _run(opt, params, grads, [1.0] * STEPS)  # its lr is constant after its own warmup

    b1, b2, eps, lr0, wd, warm = 1 - hp.one_minus_beta1, hp.beta2, hp.eps, hp.lr, hp.weight_decay, 2
    z = [p.clone() for p in init]
    x = [p.clone() for p in init]
    y = [p.clone() for p in init]
    v = [torch.zeros_like(p) for p in init]
    lr_max, weight_sum = -1.0, 0.0
    for t in range(1, STEPS + 1):
        lr = lr0 * min(1.0, t / warm)
        lr_max = max(lr_max, lr)
        weight = lr_max**2  # t^r with r = 0
        weight_sum += weight
        c = weight / weight_sum
        for i, g in enumerate(grads(y)):
            v[i] = b2 * v[i] + (1 - b2) * g * g
            u = g / ((v[i] / (1 - b2**t)).sqrt() + eps) + wd * DECAYED[i] * y[i]
            z[i] = z[i] - lr * u
            x[i] = (1 - c) * x[i] + c * z[i]
            y[i] = (1 - b1) * z[i] + b1 * x[i]
    _close(got, y, init)

    ctx = StepContext(model=None, optimizer=opt, schedule=None, batch=None, step=STEPS, hp=hp,
                      step_hint=STEPS, task=None)
    mod.prepare_for_eval(ctx)  # parameters <- x
    for p, want in zip(params, x):
        assert torch.allclose(p.detach(), want, atol=1e-10, rtol=0)
    mod.prepare_for_train(ctx)  # parameters <- y
    for p, want in zip(params, y):
        assert torch.allclose(p.detach(), want, atol=1e-10, rtol=0)
