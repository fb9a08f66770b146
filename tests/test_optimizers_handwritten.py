"""Equation tests for the hand-written optimizers (and OrthoGrad's package).

Each submission's optimizer runs a few steps on a small float64 problem and is
compared with a straightforward re-implementation of its paper's update rule
written here, independently of the submission's code: asgo, adago, nag_gs,
xgrad, optimistic_amsgrad, smb, orthograd, tngd.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from harness.api import Hyperparameters, ParamType, StepContext, TypedParameter

STEPS = 6
LRS = [0.03 * (1 + k) / STEPS for k in range(STEPS)]  # a changing lr, as a schedule gives
DT = torch.float64


def _sub(name):
    return importlib.import_module(f"submissions.optimizers.{name}")


# --------------------------------------------------------------------------- #
# A separable non-quadratic problem over typed tensors                         #
# --------------------------------------------------------------------------- #

SHAPES = {  # name: (shape, type)
    "wide": ((3, 5), ParamType.MATRIX),  # m < n: left preconditioner
    "tall": ((6, 4), ParamType.MATRIX),  # m > n: right preconditioner
    "conv": ((2, 3, 2, 2), ParamType.CONV),  # viewed as (2, 12)
    "head": ((2, 4), ParamType.HEAD),
    "bias": ((4,), ParamType.BIAS),
    "gain": ((4,), ParamType.NORM),
}


def _problem():
    gen = torch.Generator().manual_seed(0)
    init = {k: torch.randn(*s, generator=gen, dtype=DT) for k, (s, _) in SHAPES.items()}
    target = {k: torch.randn(*s, generator=gen, dtype=DT) for k, (s, _) in SHAPES.items()}
    scale = {k: torch.rand(*s, generator=gen, dtype=DT) + 0.5 for k, (s, _) in SHAPES.items()}

    def loss_of(values):
        return sum((scale[k] * (torch.tanh(v) - target[k]) ** 2).sum() + 0.05 * (v**4).sum() for k, v in values.items())

    def grads(values):
        values = {k: v.detach().clone().requires_grad_(True) for k, v in values.items()}
        loss = loss_of(values)
        return dict(zip(values, torch.autograd.grad(loss, list(values.values()))))

    return init, loss_of, grads


def _typed(values):
    params = {k: nn.Parameter(v.clone()) for k, v in values.items()}
    return params, [TypedParameter(k, p, SHAPES[k][1]) for k, p in params.items()]


def _run_submission(name, hp, init, grads, lrs=LRS, params_out=None):
    """Drive the submission's optimizer with our gradients and a given lr per step
    (set on every group as a fraction of its initial lr, like LambdaLR)."""
    module = _sub(name)
    params, typed = _typed(init)
    opt = module.make_optimizer(typed, Hyperparameters(hp), len(lrs))
    base = [g["lr"] for g in opt.param_groups]
    for lr in lrs:
        for g, b in zip(opt.param_groups, base):
            g["lr"] = b * lr / hp["lr"]
        gs = grads({k: p.detach() for k, p in params.items()})
        for k, p in params.items():
            p.grad = gs[k].clone()
        opt.step()
    if params_out is not None:
        params_out.update(opt=opt)
    return {k: p.detach() for k, p in params.items()}


def _assert_close(got, want, rtol=1e-9, atol=1e-11):
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


def _adamw_ref(p, g, st, lr, wd, b1, b2, eps):
    st.setdefault("t", 0)
    st["t"] += 1
    st["m"] = b1 * st.get("m", torch.zeros_like(p)) + (1 - b1) * g
    st["v"] = b2 * st.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
    mhat = st["m"] / (1 - b1 ** st["t"])
    vhat = st["v"] / (1 - b2 ** st["t"])
    return p * (1 - lr * wd) - lr * mhat / (vhat.sqrt() + eps)


def _wd(name, wd):
    return 0.0 if SHAPES[name][1] in (ParamType.BIAS, ParamType.NORM) else wd


def _matrix(name):
    return SHAPES[name][1] in (ParamType.MATRIX, ParamType.CONV)


# --------------------------------------------------------------------------- #
# ASGO                                                                         #
# --------------------------------------------------------------------------- #

PE = [
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
]


def _pe_inverse_sqrt(v, eps=1e-10, steps=10):
    coeffs = [(a / 1.01, b / 1.01**3, c / 1.01**5) for a, b, c in PE[:-1]] + [PE[-1]]
    coeffs = (coeffs + [PE[-1]] * steps)[:steps]
    eye = torch.eye(len(v), dtype=v.dtype)
    norm = torch.linalg.matrix_norm(v + eps * eye) * 1.01
    y, z = v / norm, eye
    for a, b, c in coeffs:
        zy = z @ y
        bb = b * zy + c * zy @ zy
        y, z = a * y + y @ bb, a * z + bb @ z
    return z / math.sqrt(norm)


def test_asgo_inverse_root_matches_eigendecomposition():
    from submissions.optimizers.asgo import inverse_sqrt

    gen = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=gen, dtype=DT)
    v = a @ a.T + 0.5 * torch.eye(6, dtype=DT)
    evals, evecs = torch.linalg.eigh(v)
    exact = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    torch.testing.assert_close(inverse_sqrt(v, 1e-10, 10), exact, rtol=1e-6, atol=1e-6)


def test_asgo_matches_paper():
    init, _, grads = _problem()
    hp = dict(lr=0.03, momentum=0.9, beta2=0.8, weight_decay=0.1, warmup_fraction=0.05)
    got = _run_submission("asgo", hp, init, grads)

    p = {k: v.clone() for k, v in init.items()}
    st = {k: {} for k in p}
    for lr in LRS:
        gs = grads(p)
        for k in p:
            if not _matrix(k):  # AdamW, same lr, betas (0.9, 0.999)
                p[k] = _adamw_ref(p[k], gs[k], st[k], lr, _wd(k, 0.1), 0.9, 0.999, 1e-8)
                continue
            g = gs[k].reshape(gs[k].shape[0], -1)
            m, n = g.shape
            s = st[k]
            s["M"] = 0.9 * s.get("M", torch.zeros_like(g)) + 0.1 * g
            if m < n:
                s["V"] = 0.8 * s.get("V", torch.zeros(m, m, dtype=DT)) + 0.2 * g @ g.T
                u = _pe_inverse_sqrt(s["V"]) @ s["M"]
            else:
                s["V"] = 0.8 * s.get("V", torch.zeros(n, n, dtype=DT)) + 0.2 * g.T @ g
                u = s["M"] @ _pe_inverse_sqrt(s["V"])
            u = 0.2 * math.sqrt(m * n) * u / torch.linalg.matrix_norm(u)
            p[k] = p[k] * (1 - lr * 0.1) - lr * u.reshape(p[k].shape)
    _assert_close(got, p)


# --------------------------------------------------------------------------- #
# AdaGO                                                                        #
# --------------------------------------------------------------------------- #


def _orth_ns5(m):
    x = m.T if m.shape[0] > m.shape[1] else m
    x = x / (torch.linalg.matrix_norm(x) + 1e-7)
    for _ in range(5):
        a = x @ x.T
        x = 3.4445 * x + (-4.7750 * a + 2.0315 * a @ a) @ x
    return x.T if m.shape[0] > m.shape[1] else x


def test_newton_schulz_is_near_orthogonal():
    from submissions.optimizers._lib.hybrid import newton_schulz5

    g = torch.randn(5, 8, generator=torch.Generator().manual_seed(1), dtype=DT)
    sv = torch.linalg.svdvals(newton_schulz5(g))
    assert sv.min() > 0.6 and sv.max() < 1.25, sv


@pytest.mark.parametrize("gamma", [10.0, 0.5])  # 0.5: the clamp at gamma is active
def test_adago_matches_paper(gamma):
    init, _, grads = _problem()
    hp = dict(lr=0.03, momentum=0.95, gamma=gamma, eps=5e-4, adam_lr=0.01, weight_decay=0.01, warmup_fraction=0.05)
    got = _run_submission("adago", hp, init, grads)

    p = {k: v.clone() for k, v in init.items()}
    st = {k: {} for k in p}
    for lr in LRS:
        gs = grads(p)
        for k in p:
            if not _matrix(k):  # AdamW at adam_lr, scaled with the schedule
                p[k] = _adamw_ref(p[k], gs[k], st[k], lr * 0.01 / 0.03, _wd(k, 0.01), 0.9, 0.999, 1e-8)
                continue
            g = gs[k].reshape(gs[k].shape[0], -1)
            s = st[k]
            s["M"] = 0.95 * s.get("M", torch.zeros_like(g)) + 0.05 * g
            s["v2"] = s.get("v2", 1e-6) + min(float(g.norm()) ** 2, gamma**2)
            alpha = max(5e-4, lr * min(float(g.norm()), gamma) / math.sqrt(s["v2"]))
            p[k] = p[k] * (1 - lr * 0.01) - alpha * _orth_ns5(s["M"]).reshape(p[k].shape)
    _assert_close(got, p)


# --------------------------------------------------------------------------- #
# NAG-GS                                                                       #
# --------------------------------------------------------------------------- #


def test_nag_gs_matches_paper():
    init, _, grads = _problem()
    hp = dict(lr=0.03, mu=1.3, gamma=0.7, weight_decay=1e-3, warmup_fraction=0.05)
    got = _run_submission("nag_gs", hp, init, grads)

    x = {k: v.clone() for k, v in init.items()}
    v = {k: t.clone() for k, t in init.items()}
    gamma = 0.7
    mu = 1.3
    for alpha in LRS:
        gs = grads(x)
        a = alpha / (1 + alpha)
        b = alpha * mu / (alpha * mu + gamma)
        for k in x:
            v[k] = (1 - b) * v[k] + b * (x[k] - gs[k] / mu)
            x[k] = ((1 - a) * x[k] + a * v[k]) * (1 - alpha * _wd(k, 1e-3))
        gamma = (1 - a) * gamma + a * mu  # the same gamma for every tensor
    _assert_close(got, x)


def test_nag_gs_accelerates_on_a_quadratic():
    """On f = x^2/2 (L = mu = 1) NAG-GS with alpha = 1 converges, with alpha tiny it barely moves."""
    from submissions.optimizers.nag_gs import NAGGS

    x = nn.Parameter(torch.ones(3, dtype=DT))
    opt = NAGGS([x], lr=1.0, mu=1.0, gamma=1.0)
    for _ in range(30):
        x.grad = x.detach().clone()
        opt.step()
    assert x.abs().max() < 1e-6


# --------------------------------------------------------------------------- #
# XGrad                                                                        #
# --------------------------------------------------------------------------- #


def _xgrad_run(base, hp_extra, init, grads):
    module = _sub("xgrad")
    params, typed = _typed(init)
    hp = dict(base=base, lr=0.03, one_minus_beta1=0.1, beta2=0.999, weight_decay=0.01,
              prediction_steps=hp_extra, warmup_fraction=0.05)
    opt = module.make_optimizer(typed, Hyperparameters(hp), STEPS)
    model = nn.Module()
    for k, prm in params.items():
        model.register_parameter(k, prm)

    class _Task:
        def loss(self, model, batch):  # the loss whose gradient is grads()
            return _problem()[1]({k: getattr(model, k) for k in params})

    for t, lr in enumerate(LRS):
        for g in opt.param_groups:
            g["lr"] = lr
        ctx = StepContext(model, opt, None, None, t, Hyperparameters(hp), STEPS, _Task())
        module.update(ctx)
    return {k: p.detach() for k, p in params.items()}


@pytest.mark.parametrize("s", [1, 2])
def test_xgrad_adamw_matches_paper(s):
    init, _, grads = _problem()
    got = _xgrad_run("adamw", s, init, grads)

    p = {k: v.clone() for k, v in init.items()}
    st = {k: {} for k in p}
    for lr in LRS:
        predicted = {}
        for k in p:
            if st[k]:
                t, b1, b2 = st[k]["t"], 0.9, 0.999
                mhat, vhat = st[k]["m"] / (1 - b1**t), st[k]["v"] / (1 - b2**t)
                predicted[k] = p[k] - s * lr * mhat / (vhat.sqrt() + 1e-8)
            else:
                predicted[k] = p[k]
        gs = grads(predicted)  # gradient at the predicted weights ...
        for k in p:  # ... applied from the current ones
            p[k] = _adamw_ref(p[k], gs[k], st[k], lr, _wd(k, 0.01), 0.9, 0.999, 1e-8)
    _assert_close(got, p)


def test_xgrad_sgdm_matches_paper():
    init, _, grads = _problem()
    got = _xgrad_run("sgdm", 1, init, grads)

    p = {k: v.clone() for k, v in init.items()}
    buf = {}
    for lr in LRS:
        predicted = {k: p[k] - lr * buf[k] if k in buf else p[k] for k in p}
        gs = grads(predicted)
        for k in p:
            g = gs[k] + _wd(k, 0.01) * p[k]  # SGD's coupled L2 decay, as the authors'
            buf[k] = 0.9 * buf[k] + g if k in buf else g.clone()
            p[k] = p[k] - lr * buf[k]
    _assert_close(got, p)


# --------------------------------------------------------------------------- #
# Optimistic-AMSGrad                                                           #
# --------------------------------------------------------------------------- #


def test_optimistic_amsgrad_matches_paper():
    init, _, grads = _problem()
    r, reg = 3, 1e-3
    hp = dict(lr=0.03, one_minus_beta1=0.1, beta2=0.99, eps=1e-8, span=r, reg=reg, weight_decay=0.01,
              warmup_fraction=0.05)
    lrs = LRS + LRS  # long enough for the extrapolation to start (needs r + 1 gradients)
    got = _run_submission("optimistic_amsgrad", hp, init, grads, lrs=lrs)

    keys = list(init)
    w = {k: v.clone() for k, v in init.items()}
    half = {k: v.clone() for k, v in init.items()}
    theta = {k: torch.zeros_like(v) for k, v in init.items()}
    v = {k: torch.full_like(t, 1e-8) for k, t in init.items()}
    vhat = {k: t.clone() for k, t in v.items()}
    past = []  # whole-model gradients, flattened and concatenated
    for lr in lrs:
        gs = grads(w)
        past = (past + [torch.cat([gs[k].flatten() for k in keys])])[-(r + 1):]
        if len(past) == r + 1:  # RMPE over the concatenated gradient vectors
            u = torch.stack([past[i + 1] - past[i] for i in range(r)], dim=1)
            gram = u.T @ u
            z = torch.linalg.solve(gram + reg * torch.linalg.matrix_norm(gram) * torch.eye(r, dtype=DT),
                                   torch.ones(r, dtype=DT))
            c = z / z.sum()
            guess_flat = sum(c[i] * past[i + 1] for i in range(r))
        else:
            guess_flat = past[-1]
        offset = 0
        for k in keys:
            n = gs[k].numel()
            guess = guess_flat[offset : offset + n].reshape(gs[k].shape)
            offset += n
            theta_prev = theta[k]
            theta[k] = 0.9 * theta[k] + 0.1 * gs[k]
            v[k] = 0.99 * v[k] + 0.01 * gs[k] ** 2
            vhat[k] = torch.maximum(vhat[k], v[k])
            half[k] = half[k] * (1 - lr * _wd(k, 0.01)) - lr * theta[k] / vhat[k].sqrt()
            h = 0.9 * theta_prev + 0.1 * guess
            w[k] = half[k] - lr * h / vhat[k].sqrt()
    _assert_close(got, w, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------- #
# OrthoGrad (pytorch_optimizer.OrthoGrad around AdamW)                         #
# --------------------------------------------------------------------------- #


def test_orthograd_matches_paper():
    init, _, grads = _problem()
    hp = dict(lr=0.03, one_minus_beta1=0.1, beta2=0.999, eps=1e-8, weight_decay=0.05, warmup_fraction=0.05)
    got = _run_submission("orthograd", hp, init, grads)

    p = {k: v.clone() for k, v in init.items()}
    st = {k: {} for k in p}
    for lr in LRS:
        gs = grads(p)
        for k in p:
            w, g = p[k].flatten(), gs[k].flatten()
            g_perp = g - (w @ g) / (w @ w + 1e-30) * w
            g_new = (g_perp * g.norm() / (g_perp.norm() + 1e-30)).reshape(p[k].shape)
            p[k] = _adamw_ref(p[k], g_new, st[k], lr, _wd(k, 0.05), 0.9, 0.999, 1e-8)
    _assert_close(got, p)


# --------------------------------------------------------------------------- #
# Model-based ones on a tiny classifier: SMB and TNGD                          #
# --------------------------------------------------------------------------- #


def _classifier():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(16, 4, generator=gen, dtype=DT)
    y = torch.randint(0, 3, (16,), generator=gen)
    w1 = torch.randn(6, 4, generator=gen, dtype=DT) * 0.5
    b1 = torch.randn(6, generator=gen, dtype=DT) * 0.1
    w2 = torch.randn(3, 6, generator=gen, dtype=DT) * 0.5
    return x, y, {"w1": w1, "b1": b1, "w2": w2}


def _logits(values, x):
    return torch.tanh(x @ values["w1"].T + values["b1"]) @ values["w2"].T


CLS_TYPES = {"w1": ParamType.MATRIX, "b1": ParamType.BIAS, "w2": ParamType.HEAD}


class _Net(nn.Module):
    def __init__(self, values):
        super().__init__()
        for k, v in values.items():
            self.register_parameter(k, nn.Parameter(v.clone()))

    def forward(self, x):
        return _logits(dict(self.named_parameters()), x)


class _ClsTask:
    def loss(self, model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y)


def _drive(name, hp, values, x, y, lrs):
    module = _sub(name)
    model = _Net(values)
    typed = [TypedParameter(k, p, CLS_TYPES[k]) for k, p in model.named_parameters()]
    opt = module.make_optimizer(typed, Hyperparameters(hp), len(lrs))
    for t, lr in enumerate(lrs):
        for g in opt.param_groups:
            g["lr"] = lr
        module.update(StepContext(model, opt, None, (x, y), t, Hyperparameters(hp), len(lrs), _ClsTask()))
    return {k: p.detach() for k, p in model.named_parameters()}


def _loss_grad(values, x, y):
    values = {k: v.detach().clone().requires_grad_(True) for k, v in values.items()}
    loss = F.cross_entropy(_logits(values, x), y)
    return loss.detach(), dict(zip(values, torch.autograd.grad(loss, list(values.values()))))


@pytest.mark.parametrize("lr", [0.3, 20.0])  # 20: trial steps fail Armijo, model steps run
def test_smb_matches_paper(lr):
    x, y, values = _classifier()
    c, eta, wd = 0.1, 0.99, 1e-3
    hp = dict(lr=lr, c=c, eta=eta, weight_decay=wd)
    lrs = [lr] * 4
    got = _drive("smb", hp, values, x, y, lrs)

    p = {k: v.clone() for k, v in values.items()}
    model_steps = 0
    for _ in lrs:
        f, g = _loss_grad(p, x, y)
        gnorm2 = sum(float((t**2).sum()) for t in g.values())
        s = {k: -lr * g[k] for k in p}
        trial = {k: p[k] + s[k] for k in p}
        f_t, g_t = _loss_grad(trial, x, y)
        if float(f_t) <= float(f) - c * lr * gnorm2 or math.sqrt(gnorm2) < 1e-8:
            new = trial
        else:  # the quadratic model step, tensor by tensor (authors' code)
            model_steps += 1
            new = {}
            for k in p:
                sv, gv, yv = s[k].flatten(), g[k].flatten(), (g_t[k] - g[k]).flatten()
                ys, ss, yy, yg, gg, sg = yv @ sv, sv @ sv, yv @ yv, yv @ gv, gv @ gv, sv @ gv
                sigma = 0.5 * (ss.sqrt() * (yy.sqrt() + gg.sqrt() / eta) - ys)
                theta = (ys + 2 * sigma) ** 2 - ss * yy
                cg = -ss / (2 * sigma)
                cs = cg / theta * (-(ys + 2 * sigma) * yg + yy * sg)
                cy = cg / theta * (-(ys + 2 * sigma) * sg + ss * yg)
                new[k] = p[k] + cs * s[k] + cg * g[k] + cy * (g_t[k] - g[k])
        p = {k: new[k] * (1 - lr * (0.0 if k == "b1" else wd)) for k in p}
    assert (model_steps > 0) == (lr > 1), model_steps
    _assert_close(got, p, rtol=1e-6, atol=1e-8)  # model steps amplify rounding


def test_tngd_matches_paper():
    x, y, values = _classifier()
    lam, iters, wd = 0.05, 3, 1e-3
    hp = dict(lr=0.5, damping=lam, cg_iters=iters, weight_decay=wd, warmup_fraction=0.05)
    lrs = [0.5, 0.4, 0.3]
    got = _drive("tngd", hp, values, x, y, lrs)

    keys = list(values)
    sizes = [values[k].numel() for k in keys]

    def flat(d):
        return torch.cat([d[k].flatten() for k in keys])

    def unflat(vec):
        return dict(zip(keys, (t.reshape(values[k].shape) for k, t in zip(keys, vec.split(sizes)))))

    p = {k: v.clone() for k, v in values.items()}
    sol = torch.zeros(sum(sizes), dtype=DT)
    for lr in lrs:
        # explicit GGN: J = d logits / d theta (N*C x P), H = blockdiag(diag(s) - s s^T) / N
        theta0 = flat(p)
        jac = torch.autograd.functional.jacobian(lambda th: _logits(unflat(th), x).flatten(), theta0)
        probs = torch.softmax(_logits(p, x), dim=1)
        h = torch.block_diag(*[torch.diag(q) - torch.outer(q, q) for q in probs]) / len(x)
        a = jac.T @ h @ jac + lam * torch.eye(len(theta0), dtype=DT)
        _, g = _loss_grad(p, x, y)
        b = flat(g)
        xk = sol.clone()  # CG warm-started at the previous solution
        r = b - a @ xk
        d = r.clone()
        for _ in range(iters):
            alpha = (r @ r) / (d @ a @ d)
            xk = xk + alpha * d
            r_new = r - alpha * a @ d
            d = r_new + (r_new @ r_new) / (r @ r) * d
            r = r_new
        sol = xk
        step = unflat(sol)
        p = {k: (p[k] - lr * step[k]) * (1 - lr * (0.0 if k == "b1" else wd)) for k in keys}
    _assert_close(got, p, rtol=1e-8, atol=1e-10)


def test_smb_and_tngd_need_their_update_hook():
    for name in ("smb", "tngd"):
        module = _sub(name)
        model = _Net(_classifier()[2])
        typed = [TypedParameter(k, p, CLS_TYPES[k]) for k, p in model.named_parameters()]
        opt = module.make_optimizer(typed, Hyperparameters(module.DEFAULTS), 10)
        with pytest.raises(ValueError, match="closure"):
            opt.step()


def test_literals_and_defaults_in_search_space():
    for name in ("asgo", "adago", "nag_gs", "xgrad", "optimistic_amsgrad", "smb", "orthograd", "tngd"):
        module = _sub(name)
        assert module.KIND == "optimizer" and "arXiv" in module.PAPER, name
        for key, space in module.SEARCH_SPACE.items():
            value = module.DEFAULTS[key]
            if "feasible_points" in space:
                assert value in space["feasible_points"], (name, key)
            else:
                assert space["min"] <= value <= space["max"], (name, key)
