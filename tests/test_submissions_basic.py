"""Fast checks of the built-in submissions (submissions/optimizers, submissions/norms).

(a) NAdamW and (b) Lion against independent re-implementations of their papers'
update rules, in float64; (c) the literal metadata the registry reads without
importing; (d) every optimizer trains a tiny model with its DEFAULTS and keeps
weight decay off norms and biases; (e) every norm's shapes at its sites, and
the channel LayerNorm's statistics.
"""

from __future__ import annotations

import ast
import importlib
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.api import (
    NORM_REQUIRED,
    StepContext,
    Task,
    default_update,
    OPTIMIZER_REQUIRED,
    Hyperparameters,
    NormSite,
    ParamType,
    TypedParameter,
)
from harness.params import infer_param_types, typed_parameters

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZER_FILES = sorted(p for p in (ROOT / "submissions" / "optimizers").glob("*.py") if not p.stem.startswith("_"))
NORM_FILES = sorted(p for p in (ROOT / "submissions" / "norms").glob("*.py") if not p.stem.startswith("_"))
LITERAL_NAMES = ("KIND", "DESCRIPTION", "PAPER", "DEFAULTS", "SEARCH_SPACE", "SITES")


def _module(path: Path):
    return importlib.import_module(f"submissions.{path.parent.name}.{path.stem}")


def _ids(paths):
    return [p.stem for p in paths]


# --------------------------------------------------------------------------- #
# A small float64 problem shared by (a) and (b)                                #
# --------------------------------------------------------------------------- #

STEPS = 8
LRS = [0.05 * (1 + k) / STEPS for k in range(STEPS)]  # a changing lr, as a schedule gives


def _problem():
    """Least squares in (W, b): returns initial values and a gradient function."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    w0 = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    b0 = torch.randn(3, generator=gen, dtype=torch.float64)

    def grads(w, b):
        w = w.detach().requires_grad_(True)
        b = b.detach().requires_grad_(True)
        loss = 0.5 * ((x @ w.T + b - y) ** 2).mean()
        return torch.autograd.grad(loss, (w, b))

    return w0, b0, grads


def _run_submission(optimizer, w, b, grads):
    for lr in LRS:
        for group in optimizer.param_groups:
            group["lr"] = lr
        w.grad, b.grad = grads(w, b)
        optimizer.step()
    return w.detach(), b.detach()


def _typed(w, b):
    return [TypedParameter("w", w, ParamType.MATRIX), TypedParameter("b", b, ParamType.BIAS)]


# --------------------------------------------------------------------------- #
# (a) NAdamW                                                                   #
# --------------------------------------------------------------------------- #


def _reference_nadamw(w0, b0, grads, beta1, beta2, eps, wd):
    """AlgoPerf's NAdamW written out; ``w`` is decayed, ``b`` is not."""
    params = [w0.clone(), b0.clone()]
    decay = [wd, 0.0]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t, lr in enumerate(LRS, start=1):
        gs = grads(*params)
        for i, g in enumerate(gs):
            p = params[i] * (1 - lr * decay[i])
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_nesterov = beta1 * m[i] + (1 - beta1) * g
            m_hat = m_nesterov / (1 - beta1**t)
            v_hat = v[i] / (1 - beta2**t)
            params[i] = p - lr * m_hat / (torch.sqrt(v_hat) + eps)
    return params


def test_nadamw_matches_algoperf_update_rule():
    nadamw = importlib.import_module("submissions.optimizers.nadamw")
    w0, b0, grads = _problem()
    hp = Hyperparameters(nadamw.DEFAULTS, one_minus_beta1=0.2, beta2=0.95, weight_decay=0.3)
    w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    opt = nadamw.make_optimizer(_typed(w, b), hp, step_hint=STEPS)
    got = _run_submission(opt, w, b, grads)
    want = _reference_nadamw(w0, b0, grads, 0.8, 0.95, hp.eps, 0.3)
    for g, r in zip(got, want):
        assert torch.allclose(g, r, rtol=0, atol=1e-12), (g - r).abs().max()
    assert not torch.allclose(got[0], w0, atol=1e-3)  # it did move

    # torch.optim.NAdam with decoupled decay is a different algorithm (mu_t schedule).
    w2, b2 = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    torch_nadam = torch.optim.NAdam(
        [{"params": [w2], "weight_decay": 0.3}, {"params": [b2], "weight_decay": 0.0}],
        betas=(0.8, 0.95), eps=hp.eps, decoupled_weight_decay=True,
    )
    other = _run_submission(torch_nadam, w2, b2, grads)
    assert not torch.allclose(other[0], want[0], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- #
# (b) Lion                                                                     #
# --------------------------------------------------------------------------- #


def _reference_lion(w0, b0, grads, beta1, beta2, wd):
    """Algorithm 2 of Chen et al. 2023; ``w`` is decayed, ``b`` is not."""
    params = [w0.clone(), b0.clone()]
    decay = [wd, 0.0]
    m = [torch.zeros_like(p) for p in params]
    for lr in LRS:
        gs = grads(*params)
        for i, g in enumerate(gs):
            c = beta1 * m[i] + (1 - beta1) * g
            params[i] = params[i] - lr * (torch.sign(c) + decay[i] * params[i])
            m[i] = beta2 * m[i] + (1 - beta2) * g
    return params


@pytest.mark.parametrize("foreach", [None, False, True], ids=["default", "per_param", "foreach"])
def test_lion_matches_paper_update_rule(foreach):
    lion = importlib.import_module("submissions.optimizers.lion")
    w0, b0, grads = _problem()
    hp = Hyperparameters(lion.DEFAULTS, beta1=0.9, beta2=0.99, weight_decay=0.7)
    w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    opt = lion.make_optimizer(_typed(w, b), hp, step_hint=STEPS)
    for group in opt.param_groups:
        assert not any(group.get(k) for k in ("use_gc", "adanorm", "cautious", "maximize"))
        if foreach is not None:
            group["foreach"] = foreach
    got = _run_submission(opt, w, b, grads)
    want = _reference_lion(w0, b0, grads, 0.9, 0.99, 0.7)
    for g, r in zip(got, want):
        assert torch.allclose(g, r, rtol=0, atol=1e-12), (g - r).abs().max()
    assert not torch.allclose(got[0], w0, atol=1e-3)


# --------------------------------------------------------------------------- #
# (c) literal metadata                                                         #
# --------------------------------------------------------------------------- #


def _literals(path: Path) -> tuple[dict, set[str]]:
    """Top-level literal assignments and function names, read without importing."""
    tree = ast.parse(path.read_text(), filename=str(path))
    literals, functions = {}, set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        elif isinstance(node, ast.FunctionDef):
            functions.add(node.name)
            continue
        else:
            continue
        if name in LITERAL_NAMES:
            literals[name] = ast.literal_eval(value)  # raises if not a literal
    return literals, functions


def _check_search_space(space: dict, defaults: dict) -> None:
    for key, spec in space.items():
        assert key in defaults, f"SEARCH_SPACE key {key!r} is not in DEFAULTS"
        default = defaults[key]
        if "feasible_points" in spec:
            assert set(spec) == {"feasible_points"}, spec
            points = spec["feasible_points"]
            assert isinstance(points, list) and points, spec
            assert default in points, f"default {key}={default!r} not among {points}"
        else:
            assert set(spec) == {"min", "max", "scaling"}, spec
            lo, hi = spec["min"], spec["max"]
            assert spec["scaling"] in ("log", "linear"), spec
            assert isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo < hi, spec
            if spec["scaling"] == "log":
                assert lo > 0, spec
            assert lo <= default <= hi, f"default {key}={default!r} outside [{lo}, {hi}]"


@pytest.mark.parametrize("path", OPTIMIZER_FILES + NORM_FILES, ids=_ids(OPTIMIZER_FILES + NORM_FILES))
def test_literal_metadata(path):
    literals, functions = _literals(path)
    kind = "optimizer" if path.parent.name == "optimizers" else "norm"
    for name in ("KIND", "DESCRIPTION", "PAPER", "DEFAULTS", "SEARCH_SPACE"):
        assert name in literals, f"{path.name}: {name} missing or not a top-level literal"
    assert literals["KIND"] == kind
    assert isinstance(literals["DESCRIPTION"], str) and literals["DESCRIPTION"].strip()
    assert "\n" not in literals["DESCRIPTION"]
    assert isinstance(literals["PAPER"], str) and literals["PAPER"].strip()
    assert isinstance(literals["DEFAULTS"], dict) and isinstance(literals["SEARCH_SPACE"], dict)
    assert all(isinstance(k, str) for k in literals["DEFAULTS"])
    _check_search_space(literals["SEARCH_SPACE"], literals["DEFAULTS"])
    required = OPTIMIZER_REQUIRED if kind == "optimizer" else NORM_REQUIRED
    for name in required:
        assert name in literals or name in functions, f"{path.name}: {name} missing"
    if kind == "norm":
        sites = literals["SITES"]
        assert isinstance(sites, tuple) and sites
        assert set(sites) <= {s.value for s in NormSite}
    module = _module(path)  # importing gives the same values
    for name, value in literals.items():
        assert getattr(module, name) == value


# --------------------------------------------------------------------------- #
# (d) optimizers train a tiny model                                            #
# --------------------------------------------------------------------------- #


def _tiny_regression():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(128, 8, generator=gen)
    y = torch.tanh(x @ torch.randn(8, 1, generator=gen)) + 0.05 * torch.randn(128, 1, generator=gen)
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 1))
    return model, x, y


@pytest.mark.parametrize("path", OPTIMIZER_FILES, ids=_ids(OPTIMIZER_FILES))
def test_optimizer_trains_with_defaults(path):
    module = _module(path)
    hp = Hyperparameters(module.DEFAULTS)
    model, x, y = _tiny_regression()
    types = infer_param_types(model)
    params = typed_parameters(model, types)
    steps = 20
    optimizer = module.make_optimizer(params, hp, steps)
    schedule = module.make_schedule(optimizer, hp, steps) if hasattr(module, "make_schedule") else None

    # weight decay only on weights: norms and biases get 0
    wd = hp.weight_decay
    assert wd > 0
    seen = 0
    by_id = {id(p.param): p for p in params}
    for group in optimizer.param_groups:
        for p in group["params"]:
            tp = by_id[id(p)]
            expected = 0.0 if tp.type in (ParamType.NORM, ParamType.BIAS) else wd
            assert group["weight_decay"] == expected, (tp.name, tp.type, group["weight_decay"])
            seen += 1
    assert seen == len(params)
    assert {ParamType.NORM, ParamType.BIAS, ParamType.MATRIX} <= {p.type for p in params}

    loss_fn = nn.MSELoss()

    class _MSETask(Task):
        def __init__(self):  # no data to load: the batch is (x, y)
            pass

        def loss(self, model, batch):
            return loss_fn(model(batch[0]), batch[1])

    # Through the submission's own update hook when it has one (SMB, TNGD and
    # XGrad need closures or extra passes), as the runner does.
    update = getattr(module, "update", default_update)
    losses = []
    for step in range(steps):
        ctx = StepContext(model, optimizer, schedule, (x, y), step, hp, steps, _MSETask())
        losses.append(update(ctx).item())
    with torch.no_grad():
        final = loss_fn(model(x), y).item()
    assert all(math.isfinite(v) for v in losses + [final])
    assert final < losses[0], (losses[0], final)


# --------------------------------------------------------------------------- #
# (e) norms                                                                    #
# --------------------------------------------------------------------------- #

SHAPES = {"conv": (4, 12, 5, 6), "node": (6, 12), "token": (3, 7, 12)}


@pytest.mark.parametrize("path", NORM_FILES, ids=_ids(NORM_FILES))
def test_norm_sites(path):
    module = _module(path)
    hp = Hyperparameters(getattr(module, "DEFAULTS", {}))
    for site in (s.value for s in NormSite):
        if site not in module.SITES:
            with pytest.raises(ValueError):
                module.make_norm(site, 12, hp)
            continue
        norm = module.make_norm(site, 12, hp)
        x = torch.randn(*SHAPES[site]) * 3 + 1
        norm.train()
        y = norm(x)
        assert y.shape == x.shape
        norm.eval()
        with torch.no_grad():
            assert norm(x).shape == x.shape
        if not list(norm.parameters()):
            # weightnorm, spectral_norm, nf, selu: no norm layer (nn.Identity);
            # their work is in transform_model (tests/test_norms.py)
            assert isinstance(norm, nn.Identity) and hasattr(module, "transform_model"), type(norm)
            continue
        y.sum().backward()  # differentiable
        types = infer_param_types(nn.Sequential(norm))
        assert types and all(t == ParamType.NORM for t in types.values()), types


def test_groupnorm_group_count():
    groupnorm = importlib.import_module("submissions.norms.groupnorm")
    hp = Hyperparameters(groupnorm.DEFAULTS)
    assert hp.groups == 8
    for channels, groups in [(64, 8), (48, 8), (12, 4), (6, 2), (3, 1)]:
        assert groupnorm.make_norm("conv", channels, hp).num_groups == groups
    assert groupnorm.make_norm("conv", 48, Hyperparameters(hp, groups=32)).num_groups == 16


def test_channel_layernorm_normalizes_channels_per_position():
    layernorm = importlib.import_module("submissions.norms.layernorm")
    hp = Hyperparameters(layernorm.DEFAULTS)
    norm = layernorm.make_norm("conv", 6, hp)
    assert getattr(norm, "is_norm", False)
    gen = torch.Generator().manual_seed(3)
    # per-pixel offsets and scales, so normalizing over (C, H, W) would not pass
    x = torch.randn(2, 6, 4, 5, generator=gen) * torch.rand(2, 1, 4, 5, generator=gen) * 5
    x = x + torch.randn(2, 1, 4, 5, generator=gen) * 10
    with torch.no_grad():
        y = norm(x)
        assert torch.allclose(y.mean(dim=1), torch.zeros(2, 4, 5), atol=1e-5)
        assert torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 4, 5), atol=1e-3)
        # per-channel affine
        norm.weight.copy_(torch.arange(1.0, 7.0))
        norm.bias.copy_(torch.arange(6.0) / 10)
        z = norm(x)
        assert torch.allclose(z, y * norm.weight.view(1, 6, 1, 1) + norm.bias.view(1, 6, 1, 1), atol=1e-5)
    # token / node sites are plain LayerNorm over the last dimension
    for site, shape in (("token", (3, 7, 6)), ("node", (5, 6))):
        ln = layernorm.make_norm(site, 6, hp)
        with torch.no_grad():
            out = ln(torch.randn(*shape, generator=gen) * 4 + 2)
        assert torch.allclose(out.mean(-1), torch.zeros(shape[:-1]), atol=1e-5)
