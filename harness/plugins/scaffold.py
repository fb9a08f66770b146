"""``bench new submission NAME``: write a ready-to-edit plugin that runs as written.

Three shapes:

* ``--kind optimizer`` (default): ``NAME.py``, a momentum-SGD optimizer written
  out as a small ``torch.optim.Optimizer`` whose ``step`` is the place to put a
  new update rule, with a warmup + cosine schedule;
* ``--kind norm``: ``NAME.py``, an RMS norm at token and node sites and a
  per-pixel channel RMS norm at conv sites;
* ``--package``: ``optbench-NAME/``, an installable package holding the same
  module under ``optbench_NAME/NAME.py`` and a ``pyproject.toml`` that
  registers it in the ``optbench.submissions`` entry-point group.

Nothing here imports torch; existing files are never overwritten.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserInputError

KINDS = ("optimizer", "norm")

OPTIMIZER_TEMPLATE = '''"""{name}: momentum SGD with decoupled weight decay (edit me).

Written by `bench new submission {name}`; it runs as written. Make it yours:

1. The literals KIND, DESCRIPTION, PAPER, DEFAULTS and SEARCH_SPACE: optbench
   reads them without importing this file, so keep them plain Python literals.
   DEFAULTS are the hyperparameters of a self-tuning run; SEARCH_SPACE (AlgoPerf's
   format: {{"min", "max", "scaling": "log"|"linear"}} or {{"feasible_points": [...]}})
   is what `bench tune` samples. Every SEARCH_SPACE key must be in DEFAULTS.
2. `{cls}.step`: the update rule. It sees each parameter's `.grad` and may keep
   per-parameter state in `self.state[p]`.
3. `make_optimizer` / `make_schedule`: how the hyperparameters reach it.
   `params` is a list of TypedParameter(name, param, type) where type is a
   harness.api.ParamType (matrix, conv, embedding, head, bias, norm, other), so
   parameters can be treated differently (here: no weight decay on norms/biases).

To wrap a library optimizer instead, make_optimizer can simply
`return torch.optim.Adam(decay_groups(params, hp.weight_decay), lr=hp.lr)`.

Optional hooks (all timed): update(ctx) for steps that need more than
backward + step (SAM, closures; call ctx.clip_gradients() between them so a
run's grad_clip applies), prepare_for_eval(ctx) / prepare_for_train(ctx)
for weight swaps (EMA, Schedule-Free). The contract is in harness/api.py.

Run it:       bench run --submission ./{file} --workload cifar
Try a value:  bench run --submission ./{file} --workload cifar optimizer.lr=0.05
Tune it:      bench tune --submission ./{file} --workload cifar --studies 1 --trials 5
              (Halton points of SEARCH_SPACE, one timed run each; --dry-run prints
              them; rerunning resumes; records under results/external/)
Score it:     bench score results/      (leaderboard: time to target, profiles, score)
"""

import torch

from harness.params import decay_groups
from harness.schedules import warmup_cosine

KIND = "optimizer"
DESCRIPTION = "{name}: momentum SGD with decoupled weight decay, warmup + cosine (bench new template)"
PAPER = ""  # citation or URL of the method
DEFAULTS = {{
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "warmup_fraction": 0.05,
}}
SEARCH_SPACE = {{
    "lr": {{"min": 1e-2, "max": 1.0, "scaling": "log"}},
    "momentum": {{"feasible_points": [0.8, 0.9, 0.95]}},
    "weight_decay": {{"min": 1e-5, "max": 1e-3, "scaling": "log"}},
    "warmup_fraction": {{"feasible_points": [0.02, 0.05, 0.1]}},
}}


class {cls}(torch.optim.Optimizer):
    """b = momentum * b + g;  p *= 1 - lr * weight_decay;  p -= lr * b."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(momentum).add_(p.grad)
                if weight_decay:
                    p.mul_(1.0 - lr * weight_decay)
                p.add_(buf, alpha=-lr)
        return loss


def make_optimizer(params, hp, step_hint):
    """Called once, untimed. hp holds DEFAULTS with any overrides (hp.lr or hp["lr"])."""
    return {cls}(
        decay_groups(params, hp.weight_decay),  # two groups: weights, and norms/biases without decay
        lr=hp.lr,
        momentum=hp.momentum,
    )


def make_schedule(optimizer, hp, step_hint):
    """Optional: a torch LR scheduler stepped once per training step (or None).
    step_hint is the workload's expected number of steps."""
    return warmup_cosine(optimizer, step_hint, hp.warmup_fraction)
'''

NORM_TEMPLATE = '''"""{name}: RMS normalization (edit me).

Written by `bench new submission {name} --kind norm`; it runs as written. The
workload calls make_norm(site, num_features, hp) at every normalization site of
its model and places the returned module there. Sites describe the input layout:

* "token": (..., C), the features of a token (transformers);
* "node":  (N, C), a flat feature vector (graph nodes, MLPs);
* "conv":  (N, C, H, W), a convolutional feature map.

Here: RMSNorm (Zhang & Sennrich 2019) over the C features at token and node
sites; at conv sites the same over the C channels of each pixel. SITES lists the
sites supported; a workload with another site refuses this norm with a clear
error, and `bench list` shows the workloads it fits.

Make it yours: the literals (kept plain, optbench reads them without importing
this file), the {cls} module, and make_norm. Hyperparameters in DEFAULTS can be
overridden as norm.<name>=... and tuned through SEARCH_SPACE. Optional:
transform_model(model, hp) -> model, applied after the model is built (weight
standardization, weight norm). The contract is in harness/api.py.

Run it:       bench run --submission ./{file} --workload cifar    (with the workload's optimizer)
              bench run --submission adamw --norm ./{file} --workload cifar
Try a value:  bench run --submission ./{file} --workload cifar norm.eps=1e-5
Tune it:      bench tune --submission ./{file} --workload cifar --studies 1 --trials 5
              (Halton points of SEARCH_SPACE, one timed run each; while SEARCH_SPACE
              is empty every trial runs DEFAULTS: fill it in, or use --ruleset self,
              DEFAULTS with 3x the budget)
Score it:     bench score results/      (leaderboard: time to target, profiles, score)
"""

import torch
from torch import nn

KIND = "norm"
DESCRIPTION = "{name}: RMS norm over features (token, node) and over channels per pixel (conv) (bench new template)"
PAPER = "Zhang & Sennrich, Root Mean Square Layer Normalization, NeurIPS 2019, arXiv:1910.07467"
SITES = ("token", "node", "conv")
DEFAULTS = {{"eps": 1e-6}}
SEARCH_SPACE = {{}}  # e.g. {{"eps": {{"min": 1e-8, "max": 1e-3, "scaling": "log"}}}}


class {cls}(nn.Module):
    """x / sqrt(mean(x^2 over dim) + eps) * weight + bias, over `dim`
    (-1 for (..., C) inputs, 1 for (N, C, H, W))."""

    is_norm = True  # its parameters are typed "norm" (no weight decay)

    def __init__(self, num_features, eps, dim=-1):
        super().__init__()
        self.eps, self.dim = eps, dim
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        scale = torch.rsqrt(x.pow(2).mean(dim=self.dim, keepdim=True) + self.eps)
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return x * scale * self.weight.view(shape) + self.bias.view(shape)


def make_norm(site, num_features, hp):
    if site in ("token", "node"):
        return {cls}(num_features, hp.eps, dim=-1)
    if site == "conv":
        return {cls}(num_features, hp.eps, dim=1)
    raise ValueError(f"{name} supports sites {{SITES}}, not {{site!r}}")
'''

PYPROJECT_TEMPLATE = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{description}"
requires-python = ">=3.10"
# optbench and torch come from the environment that runs `bench`; list the
# libraries your plugin itself needs here (e.g. "pytorch-optimizer>=3.0").
dependencies = []

# This is what makes `bench` find the plugin: name = "module" (or "module:attr").
[project.entry-points."optbench.submissions"]
{name} = "{package}.{name}"

[tool.setuptools]
packages = ["{package}"]
'''

README_TEMPLATE = '''# {dist}

An optbench {kind} plugin, `{name}`, written by `bench new submission {name}{flags}`.

```bash
pip install -e .                 # registers the entry point optbench.submissions: {name}
bench list                       # {name} appears with origin "entry point ({dist} 0.1.0)"
bench run --submission {name} --workload {workload}
```

Edit `{package}/{name}.py`; its docstring says what to change. Every run
records this plugin's origin (entry point, distribution and version) and the
sha256 of `{package}/{name}.py`, so bump the version when you change it.
'''


@dataclass
class Scaffold:
    """What ``bench new submission`` wrote and what to run next."""

    name: str
    kind: str
    files: list[Path] = field(default_factory=list)
    root: Path | None = None  # the package directory, with --package
    next_steps: list[tuple[str, str]] = field(default_factory=list)  # (command, comment)


def check_name(name: str, registered: dict | None = None) -> None:
    """A plugin name must be a Python identifier and not taken by another submission."""
    if not name.isidentifier() or keyword.iskeyword(name):
        hint = name.replace("-", "_").replace(" ", "_").replace(".", "_")
        suggestion = f" such as {hint!r}" if hint.isidentifier() and not keyword.iskeyword(hint) else ""
        raise UserInputError(
            f"submission name {name!r} is not a valid Python identifier (letters, digits and _, "
            f"not starting with a digit); choose a name{suggestion}"
        )
    if registered and name in registered:
        from harness.plugins.registry import _describe

        raise UserInputError(
            f"submission name {name!r} is already taken by {_describe(registered[name])}; choose another name"
        )


def _class_name(name: str, kind: str) -> str:
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Plugin"
    if not camel[0].isalpha():
        camel = "P" + camel
    suffix = "Optimizer" if kind == "optimizer" else "Norm"
    return camel if camel.endswith(suffix) else camel + suffix


def render_module(name: str, kind: str, file: str) -> str:
    if kind not in KINDS:
        raise UserInputError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    template = OPTIMIZER_TEMPLATE if kind == "optimizer" else NORM_TEMPLATE
    return template.format(name=name, cls=_class_name(name, kind), file=file)


def _pick_workload(kind: str, sites: tuple[str, ...] = ("token", "node", "conv")) -> str:
    """A workload the new plugin fits, for the printed next commands (cifar if it can)."""
    try:
        from harness.plugins.registry import Registry

        workloads = Registry().workloads
    except Exception:
        return "cifar"
    fitting = [n for n, e in workloads.items() if kind == "optimizer" or set(e.info.norm_sites) <= set(sites)]
    if "cifar" in fitting or not fitting:
        return "cifar"
    return sorted(fitting)[0]


def new_submission(name: str, kind: str = "optimizer", package: bool = False, directory: Path | str = ".") -> Scaffold:
    """Write a plugin named ``name`` under ``directory``; raise UserInputError
    (and write nothing) on a bad name, a taken name or an existing file."""
    if kind not in KINDS:
        raise UserInputError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        from harness.plugins.registry import Registry

        registered = Registry().submissions
    except Exception:  # a broken installed plugin must not stop scaffolding
        registered = {}
    check_name(name, registered)
    directory = Path(directory).expanduser()
    workload = _pick_workload(kind)
    result = Scaffold(name, kind)

    if not package:
        path = directory / f"{name}.py"
        files = {path: render_module(name, kind, path.name)}
        shown = _shown(path)
        if kind == "optimizer":
            result.next_steps = [
                (f"bench run --submission {shown} --workload {workload}", "run it as written"),
                (f"bench run --submission {shown} --workload {workload} optimizer.lr=0.05", "override a hyperparameter"),
                (f"$EDITOR {shown}", "make it yours: the docstring says what to edit"),
            ]
        else:
            result.next_steps = [
                (f"bench run --submission {shown} --workload {workload}", "with the workload's own optimizer"),
                (f"bench run --submission adamw --norm {shown} --workload {workload}", "paired with an optimizer"),
                (f"$EDITOR {shown}", "make it yours: the docstring says what to edit"),
            ]
    else:
        dist = f"optbench-{name.replace('_', '-')}"
        pkg = f"optbench_{name}"
        root = directory / dist
        module = root / pkg / f"{name}.py"
        description = f"optbench {kind} plugin {name}"
        flags = (" --kind norm" if kind == "norm" else "") + " --package"
        files = {
            root / "pyproject.toml": PYPROJECT_TEMPLATE.format(dist=dist, name=name, package=pkg, description=description),
            root / "README.md": README_TEMPLATE.format(dist=dist, name=name, package=pkg, kind=kind, flags=flags, workload=workload),
            root / pkg / "__init__.py": f'"""{description} (the plugin is {pkg}.{name})."""\n',
            module: render_module(name, kind, f"{pkg}/{name}.py"),
        }
        result.root = root
        result.next_steps = [
            (f"pip install -e {_shown(root)}", "registers the entry point (add --no-deps to keep your environment as is)"),
            ("bench list", f"{name} appears with origin entry point ({dist} 0.1.0)"),
            (f"bench run --submission {name} --workload {workload}", "run it as written"),
            (f"$EDITOR {_shown(module)}", "make it yours"),
        ]

    existing = [p for p in files if p.exists()]
    if package and root.exists() and not root.is_dir():
        existing.insert(0, root)
    if existing:
        raise UserInputError(
            f"{_shown(existing[0])} already exists; not overwriting it (choose another name or --dir)"
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:  # "x": never overwrite, even in a race
            fh.write(text)
        result.files.append(path)
    return result


def _shown(path: Path) -> str:
    """A path as a user would type it: relative to the current directory where possible."""
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve())
        text = str(rel)
        return text if text.startswith(".") else f"./{text}"
    except ValueError:
        return str(path)
