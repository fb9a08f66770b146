"""The optbench contracts. Read this file first.

optbench measures one number: wall-clock seconds of *training* until a fixed
validation target is met. Three kinds of code meet here:

* a **workload** (``workloads/<family>/``) owns data, model, loss and evaluation
  and fixes, per *size*, the batch size, the target, the timed budget and the
  step hint (a tiny size's budget is reference work, tuned-baseline steps that
  each machine turns into its own seconds: :class:`Size`, harness/run/speed.py);
* an **optimizer submission** (``submissions/optimizers/<name>.py`` or a plugin)
  turns parameters into an optimizer and a learning-rate schedule;
* a **norm submission** (``submissions/norms/<name>.py`` or a plugin) builds the
  normalization layer placed at every norm site of the workload's model.

The harness (``harness/run/execution.py``) pairs one optimizer with one norm on one
workload size and times the training loop under AlgoPerf's rules.

This module is deliberately free of torch imports: ``bench list`` and
``bench --help`` read workload metadata without paying for ``import torch``.

Writing a submission
--------------------
A submission is a plain Python module (or any object) with these names::

    KIND = "optimizer"                      # or "norm"
    DESCRIPTION = "one line for bench list"
    PAPER = "citation or URL"
    DEFAULTS = {"lr": 1e-3, ...}            # self-tuning hyperparameters
    SEARCH_SPACE = {"lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"}, ...}

    # optimizer submissions
    def make_optimizer(params: list[TypedParameter], hp: Hyperparameters,
                       step_hint: int) -> torch.optim.Optimizer: ...
    def make_schedule(optimizer, hp, step_hint) -> LRScheduler | None: ...   # optional
    def update(ctx: StepContext) -> torch.Tensor: ...                        # optional
    def prepare_for_eval(ctx: StepContext) -> None: ...                      # optional
    def prepare_for_train(ctx: StepContext) -> None: ...                     # optional
    def setup(ctx: StepContext) -> dict | None: ...   # optional: once, untimed, before step 1;
                                                      # a dict it returns joins the record's submission block

    # norm submissions
    SITES = ("conv", "node")                # the NormSite values it supports
    def make_norm(site: str, num_features: int, hp: Hyperparameters) -> nn.Module: ...
    def transform_model(model, hp) -> nn.Module: ...                         # optional

An optimizer whose own ``update`` cannot honour a workload hyperparameter
(:data:`WORKLOAD_HYPERPARAMETERS`; ``grad_clip`` is the one a step applies)
says so with a literal ``REFUSES = {"grad_clip": "why"}``, and a run that sets
it is refused before it starts.

A norm layer that also applies the nonlinearity (EvoNorm) says so on the
module it returns; a ``transform_model`` may use the residual-block hooks that
a workload's model exposes. Both are described at :data:`NormFactory` below.

``KIND``, ``DESCRIPTION``, ``PAPER``, ``DEFAULTS``, ``SEARCH_SPACE`` and ``SITES``
must be literals: optbench reads them without importing the module.
``submissions/optimizers/adamw.py`` is the model to copy.

Search spaces use AlgoPerf's ``tuning_search_space.json`` format: each
hyperparameter is ``{"min": a, "max": b, "scaling": "log" | "linear"}`` or
``{"feasible_points": [...]}``. AlgoPerf's workload-side names
(``label_smoothing``, ``dropout_rate``, ``aux_dropout_rate``, ``grad_clip``:
:data:`WORKLOAD_HYPERPARAMETERS`) sit among the optimizer's hyperparameters,
as in AlgoPerf's files; the harness hands them to the workload
(:attr:`Task.hyperparameters`) or applies them in the step (``grad_clip``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pathlib import Path

    import torch
    from torch import nn


# --------------------------------------------------------------------------- #
# What a workload fixes                                                        #
# --------------------------------------------------------------------------- #

Direction = Literal["max", "min"]

#: A tiny size's budget buys the tuned baseline's steps to its target over this
#: fraction: the baseline reaches the target at about two thirds of the budget
#: (the calibration rule, harness/sweeps/calibrate.py).
BUDGET_FRACTION = 0.67


def comparison_sign(direction: Direction) -> str:
    """How a target reads: ``>`` for a metric to maximise, ``<`` to minimise."""
    return ">" if direction == "max" else "<"


def is_better(value: float | None, than: float | None, direction: Direction) -> bool:
    """Whether ``value`` is strictly better than ``than`` in ``direction``
    (False for a missing or non-finite value; True against a missing ``than``)."""
    if value is None or not math.isfinite(value):
        return False
    if than is None:
        return True
    return value > than if direction == "max" else value < than


@dataclass(frozen=True)
class Target:
    """The validation value that ends a run as `reached`, and an optional test value.

    ``metric`` names the quantity; evaluations report it as
    ``validation/<metric>`` and ``test/<metric>``. As in AlgoPerf, a target is
    met when the value is strictly better than the threshold, and a run is
    timed to the validation target alone (:meth:`met`); the test target is
    reported beside it (:meth:`test_met`), never waited for.
    """

    metric: str
    validation: float
    direction: Direction
    test: float | None = None

    @property
    def sign(self) -> str:
        return comparison_sign(self.direction)

    def _better(self, value: float | None, threshold: float) -> bool:
        return is_better(value, threshold, self.direction)

    def met(self, metrics: Mapping[str, float]) -> bool:
        """Whether ``validation/<metric>`` meets the validation target: what ends a run as reached."""
        return self._better(metrics.get(f"validation/{self.metric}"), self.validation)

    def test_met(self, metrics: Mapping[str, float]) -> bool | None:
        """Whether ``test/<metric>`` meets the test target; None when there is no test target.

        Reported, not timed: AlgoPerf ends a run at the validation target and
        states the test metric beside it. A missing or non-finite test value
        counts as not met.
        """
        if self.test is None:
            return None
        return self._better(metrics.get(f"test/{self.metric}"), self.test)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.validation,
            "direction": self.direction,
            "test_value": self.test,
        }


@dataclass(frozen=True)
class Size:
    """One fixed configuration of a workload (``tiny`` for CPU, ``full`` for GPU).

    Everything that defines the benchmark problem lives here, so two runs of the
    same size are comparable. ``eval_every_steps`` makes steps-to-target
    reproducible (tiny sizes); ``eval_every_s`` bounds evaluation overhead on
    long runs (full sizes), as AlgoPerf's ``eval_period_time_sec``.
    """

    name: str
    description: str
    dataset: str
    model: str
    batch_size: int
    target: Target
    max_runtime_s: float
    step_hint: int
    eval_every_steps: int | None = None
    eval_every_s: float | None = None
    max_steps: int | None = None
    device: Literal["cpu", "cuda"] = "cpu"
    calibration: str = ""  # how target and budget were set (shown by bench list --json)
    # The run the target was calibrated on (bench calibrate's best point):
    # {"optimizer": name, "hyperparameters": {...}, "steps", "steps_to_target",
    # "hardware_id", "seconds_per_step"}. The target promises that this tuned
    # baseline reaches it; the reach tests run exactly this.
    target_setting: Mapping[str, Any] | None = None
    # The budget as reference work (tiny sizes): the tuned baseline's steps to
    # the target in calibration (median seed). On any machine the budget in
    # seconds is reference_steps x that machine's seconds per step of the tuned
    # baseline / BUDGET_FRACTION (harness/run/speed.py), so it buys the same work
    # everywhere; ``max_runtime_s`` is then what it came to on the calibration's
    # class, target_setting["hardware_id"]. None: ``max_runtime_s`` is the
    # budget on any machine (full sizes, as AlgoPerf's).
    reference_steps: int | None = None

    @property
    def budget_steps(self) -> int | None:
        """Tuned-baseline steps the budget buys on any machine (None: a budget in seconds)."""
        if self.reference_steps is None:
            return None
        return math.ceil(self.reference_steps / BUDGET_FRACTION - 1e-9)

    def __post_init__(self) -> None:
        if (self.eval_every_steps is None) == (self.eval_every_s is None):
            raise ValueError(f"size {self.name!r}: set exactly one of eval_every_steps / eval_every_s")


@dataclass(frozen=True)
class WorkloadInfo:
    """What ``bench list`` shows and the runner needs before importing torch.

    ``task`` is ``"module:Class"`` of the :class:`Task` subclass that does the
    work; it is imported only when a run starts. ``prepare`` is an optional
    ``"module:function"`` taking ``data_dir`` that downloads and verifies the
    full size's dataset (``bench data prepare <workload>``).

    ``variants`` names settings of the task that change the problem (a model
    or loss mitigation, another precision): ``{"qk_norm": {"model.qk_norm":
    True}}``. A run picks one with ``bench run --variant NAME`` (or several
    joined by ``+``, :meth:`resolve_variant`); the runner then passes the
    settings to the task as ``Task(size, device, data_dir, seed,
    settings=...)``. A variant keeps its size's target and budget, and its
    runs are scored in a column of their own (docs/variants.md).
    """

    name: str
    description: str
    sizes: Mapping[str, Size]
    norm_sites: tuple[str, ...]
    default_norm: str
    default_optimizer: str
    task: str
    prepare: str | None = None
    #: The names of :data:`WORKLOAD_HYPERPARAMETERS` this workload implements
    #: (``grad_clip`` is the step's, taken by every workload: :meth:`takes`).
    hyperparameters: tuple[str, ...] = ()
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def resolve_variant(self, name: str) -> tuple[str, dict[str, Any]]:
        """(canonical name, settings) of ``name``: one declared variant, or
        several joined by ``+`` (``stablemax+float64``), merged left to right
        and named in declaration order, so either spelling is one variant. Two
        parts that set one key to different values are refused."""
        from harness.errors import UserInputError, did_you_mean

        parts = [p.strip() for p in str(name).split("+")]
        for part in parts:
            if part not in self.variants:
                have = list(self.variants)
                raise UserInputError(f"workload {self.name!r} has no variant {part!r}; "
                                     + (did_you_mean(part, have) if have else "it declares none"))
        order = list(self.variants)
        parts = sorted(set(parts), key=order.index)
        settings: dict[str, Any] = {}
        for part in parts:
            for key, value in self.variants[part].items():
                if key in settings and settings[key] != value:
                    raise UserInputError(f"variants of {name!r} disagree on {key}: {settings[key]!r} and {value!r}")
                settings[key] = value
        return "+".join(parts), settings

    def __post_init__(self) -> None:
        unknown = [n for n in self.hyperparameters if n not in WORKLOAD_HYPERPARAMETERS or n in STEP_HYPERPARAMETERS]
        if unknown:
            raise ValueError(f"workload {self.name!r}: hyperparameters {unknown} are not among "
                             f"{[n for n in WORKLOAD_HYPERPARAMETERS if n not in STEP_HYPERPARAMETERS]}")

    def takes(self) -> tuple[str, ...]:
        """Every workload hyperparameter a run of this workload accepts."""
        return (*self.hyperparameters, *STEP_HYPERPARAMETERS)


# --------------------------------------------------------------------------- #
# Parameter types and norm sites                                               #
# --------------------------------------------------------------------------- #


class ParamType(str, enum.Enum):
    """What a parameter is, so optimizers can treat kinds differently
    (Muon on matrices, no weight decay on norms and biases, ...)."""

    MATRIX = "matrix"  # weight of a linear layer (2-d)
    CONV = "conv"  # convolution kernel (>= 3-d)
    EMBEDDING = "embedding"  # lookup table (may be tied to the output head)
    HEAD = "head"  # final classifier / read-out weight
    BIAS = "bias"
    NORM = "norm"  # scale / shift (and other parameters) of norm layers
    OTHER = "other"


class NormSite(str, enum.Enum):
    """Where a workload places normalization layers, by input layout."""

    CONV = "conv"  # (N, C, H, W): channels of a conv feature map
    TOKEN = "token"  # (..., C): features of a token in a sequence
    NODE = "node"  # (N, C): features of a graph node / a flat vector


@dataclass
class TypedParameter:
    name: str
    param: "nn.Parameter"
    type: ParamType


class Hyperparameters(dict):
    """A dict whose keys also read as attributes: ``hp.lr`` or ``hp["lr"]``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(
                f"hyperparameter {key!r} is not set (have: {', '.join(sorted(self)) or 'none'})"
            ) from None


NormFactory = Callable[[str, int], "nn.Module"]
"""``norm(site, num_features) -> nn.Module``; the workload calls it at every norm site.

Normalization-activation layers. Some norm layers (EvoNorm) replace a norm
*and* the activation after it. Such a module has ``includes_activation = True``
and a method ``without_activation()`` that returns the layer to use at a site
that no activation follows (for EvoNorm, its affine transform alone). A
workload keeps its activations correct with the two helpers below:

* at a norm site directly followed by an activation, it leaves that activation
  out when :func:`norm_includes_activation` says the layer applies it;
* at a norm site that no activation follows (a residual branch's last norm, a
  shortcut's norm, the norm before attention), it uses
  :func:`norm_without_activation` of the layer.

Every other module passes through both unchanged, so a model built with an
ordinary norm is the same model, parameter for parameter and bit for bit. The
factory's signature stays ``(site, num_features)``: the workload tells the
layer, not the factory, so no factory or ``make_norm`` has to accept a new
argument. A workload that uses neither helper gets the full layer at every
site, followed by its own activations.

Residual-block hooks. A model may expose, on its residual blocks, attributes
that a ``transform_model`` sets to rescale the blocks without knowing their
insides; all are no-ops by default (the model is then unchanged, bit for bit).
The cifar ResNet's ``BasicBlock`` has them (``submissions/norms/nf.py`` uses
them for NF-ResNets):

* ``preact``: ``None`` or a module applied to the block input ``x`` before the
  residual branch and a projection shortcut read it (a pre-activation block's
  leading activation);
* ``input_scale``: a float multiplying that input (NF-ResNets' ``1 / beta``);
* ``branch_scale``: ``None`` or a module applied to the branch's output before
  the add (NF-ResNets' ``alpha`` times a SkipInit gain);
* ``transition``, for transforms to read: whether the shortcut is a
  projection of that scaled input; an identity shortcut always carries ``x``
  itself;
* ``act2``: the activation module applied after the add, which a transform
  that makes the block pre-activation replaces (the model's activation slots,
  like the cifar ResNet's ``stem_act``, are modules for the same reason).
"""


def norm_includes_activation(layer: "nn.Module") -> bool:
    """Whether ``layer`` applies the activation that follows its norm site itself,
    so the workload must leave its own activation out there."""
    return bool(getattr(layer, "includes_activation", False))


def norm_without_activation(layer: "nn.Module") -> "nn.Module":
    """The layer to place at a norm site that no activation follows: a
    normalization-activation layer's form without its nonlinearity, or ``layer``."""
    return layer.without_activation() if norm_includes_activation(layer) else layer


# --------------------------------------------------------------------------- #
# What a workload implements                                                   #
# --------------------------------------------------------------------------- #


#: How :class:`Outputs` turn into a loss (harness/common/losses.py).
OUTPUT_LOSSES = ("softmax", "stablemax", "sigmoid", "mse")


@dataclass
class Outputs:
    """What a model produced on a batch, in the form its loss reads it
    (``Task.outputs``): for code that needs more than the mean training loss,
    such as AlgoPerf's ``loss_fn`` (per-example losses, label smoothing) and the
    diagnostics (log Z, examples whose float32 loss is exactly 0).

    * ``logits``: (N, C) float scores, one row per example: an image, a graph,
      a token (a language model's (B, T, V) flattened to (B*T, V)); for
      ``mse``, the prediction, any shape with N first.
    * ``targets``: (N,) int64 class indices for ``softmax`` / ``stablemax``;
      (N, C) float 0/1 labels for ``sigmoid``; the regression target for ``mse``.
    * ``weights``: None, or 1/0 (or bool) per example ((N,)) or per label
      ((N, C) for ``sigmoid``): padding and missing labels count 0.
    * ``loss``: one of :data:`OUTPUT_LOSSES`.
    """

    logits: "torch.Tensor"
    targets: "torch.Tensor"
    weights: "torch.Tensor | None" = None
    loss: str = "softmax"


class Task:
    """One workload at one size, data loaded and ready.

    The runner calls, in order: ``__init__`` (untimed: load data onto the
    device), ``build_model`` (untimed), then per step ``next_batch`` and
    ``loss`` (timed), and ``evaluate`` at eval boundaries (untimed, under
    ``torch.no_grad()`` with the model in eval mode).

    ``hyperparameters`` holds the workload hyperparameters the run was given
    (names the workload declares in ``WorkloadInfo.hyperparameters``, from
    :data:`WORKLOAD_HYPERPARAMETERS`), set by the harness after ``__init__``
    and before ``build_model``; a name that is absent means the workload as
    it is (``self.hyperparameters.get("dropout_rate", <the size's own>)``).
    Label smoothing belongs to the training ``loss`` only: ``evaluate``'s
    losses stay unsmoothed, so targets mean the same with or without it.

    A workload whose data must be downloaded may take ``synthetic=True`` as a
    keyword of ``__init__`` (``bench run --synthetic-data``): random inputs of
    the real shapes and dtypes instead of the dataset, made once on the device
    (harness/common/synthetic.py); the harness passes it only when asked.
    """

    #: The run's workload hyperparameters (see above); empty unless given.
    hyperparameters: Mapping[str, Any] = MappingProxyType({})

    #: sha256 naming the exact data loaded (``harness.common.datacache.arrays_digest``
    #: of generated arrays, or the checked archive's sha256); records carry it
    #: so runs on different machines can be checked to have used the same bytes.
    #: None where computing it would cost more than it is worth (multi-GB shards).
    data_sha256: str | None = None

    def __init__(self, size: Size, device: "torch.device", data_dir: "Path", seed: int) -> None:
        self.size = size
        self.device = device
        self.data_dir = data_dir
        self.seed = seed

    def build_model(self, norm: NormFactory) -> "nn.Module":
        raise NotImplementedError

    def param_types(self, model: "nn.Module") -> dict[str, ParamType]:
        """Type of every parameter, by name. The default infers it from the
        owning module; override where the inference is wrong for your model."""
        return infer_param_types(model)

    def next_batch(self, step: int) -> Any:
        """The training batch for ``step``, on the device. Deterministic in
        (seed, step). Timed: keep it on-device and cheap."""
        raise NotImplementedError

    def loss(self, model: "nn.Module", batch: Any) -> "torch.Tensor":
        """Mean training loss of ``model`` on ``batch`` (a scalar tensor)."""
        raise NotImplementedError

    def evaluate(self, model: "nn.Module") -> dict[str, float]:
        """``{"validation/<metric>": v, "test/<metric>": v, ...}`` as floats."""
        raise NotImplementedError

    def outputs(self, model: "nn.Module", batch: Any) -> Outputs:
        """Optional: the model's :class:`Outputs` on ``batch``. A task that has
        it computes ``loss`` as ``harness.common.losses.mean_loss`` of them, so
        every reader of the outputs sees the loss the run trains on."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its model outputs")


# --------------------------------------------------------------------------- #
# What an optimizer submission sees at each step                               #
# --------------------------------------------------------------------------- #


class TrainingView:
    """The task as a submission sees it (``StepContext.task``): training only.

    ``next_batch(step)``, ``loss(model, batch)``, ``outputs(model, batch)``, ``param_types(model)``, and
    the ``size`` and ``device`` the run was given. No validation or test data
    and no ``evaluate``: evaluation is the harness's, untimed, and a
    submission that could call it could tune on held-out data. Anything else
    raises AttributeError naming what there is.

    The methods are the task's own, bound once here, so a step calls them at
    the same cost as on the task. A view states the contract and catches
    accidental use; it is not a sandbox (Python code can reach the bound
    methods' owner).
    """

    EXPOSED = ("next_batch", "loss", "outputs", "param_types", "size", "device")
    __slots__ = EXPOSED

    def __init__(self, task: Any) -> None:
        for name in self.EXPOSED:
            object.__setattr__(self, name, getattr(task, name))

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not exposed.
        raise AttributeError(
            f"a submission sees the task for training only: {name!r} is not available "
            f"(it has {', '.join(self.EXPOSED)}; validation and test data and evaluate() "
            "belong to the harness)"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the task's training view is read-only (tried to set {name!r})")


@dataclass
class StepContext:
    """Everything a custom ``update`` (SAM, SMB, closures, ...) may use.

    ``loss_fn()`` runs a forward pass on the current batch and returns the
    mean loss; call it as often as the algorithm needs (every call is timed).
    In a run, ``task`` is a :class:`TrainingView`: training batches and the
    loss, never validation or test data, never ``evaluate``.

    ``clip_gradients()`` applies the run's ``grad_clip`` (a no-op without
    one): a custom ``update`` calls it between ``backward()`` and the
    optimizer's step, as :func:`default_update` does. A run with ``grad_clip``
    whose ``update`` never calls it fails at its first evaluation, rather than
    run unclipped; an ``update`` that cannot clip says so in ``REFUSES``.
    """

    model: "nn.Module"
    optimizer: Any
    schedule: Any
    batch: Any
    step: int
    hp: Hyperparameters
    step_hint: int
    task: "Task | TrainingView"
    extra: dict[str, Any] = field(default_factory=dict)  # submission's own state
    grad_clip: float | None = None  # the run's grad_clip: the largest global gradient norm
    clip_calls: int = 0  # clip_gradients() calls so far (the harness checks a custom update clips)
    workload: str = ""  # the workload's name (AlgoPerf submissions ask their batch size by it)
    seed: int = 0  # the run's seed for the submission (harness.common.seeding.derive_seed(seed, "submission"))

    def loss_fn(self) -> "torch.Tensor":
        return self.task.loss(self.model, self.batch)

    def clip_gradients(self) -> "torch.Tensor | None":
        """Scale the gradients so their global L2 norm (all parameters as one
        vector) is at most ``grad_clip``; returns the norm before clipping, or
        None when the run has no ``grad_clip``. No device sync: the scale is
        computed and applied on the device."""
        self.clip_calls += 1
        if self.grad_clip is None:
            return None
        from torch.nn.utils import clip_grad_norm_

        return clip_grad_norm_(self.model.parameters(), self.grad_clip)


def default_update(ctx: StepContext) -> "torch.Tensor":
    """The usual step: forward, backward, gradient clipping (only with the
    run's ``grad_clip``), optimizer step, schedule step."""
    ctx.optimizer.zero_grad(set_to_none=True)
    loss = ctx.loss_fn()
    loss.backward()
    ctx.clip_gradients()
    ctx.optimizer.step()
    if ctx.schedule is not None:
        ctx.schedule.step()
    return loss.detach()


# Names a submission module may define; the registry checks them.
OPTIMIZER_REQUIRED = ("DEFAULTS", "SEARCH_SPACE", "make_optimizer")
OPTIMIZER_OPTIONAL = ("make_schedule", "update", "prepare_for_eval", "prepare_for_train", "setup")
NORM_REQUIRED = ("SITES", "make_norm")
NORM_OPTIONAL = ("DEFAULTS", "SEARCH_SPACE", "transform_model")
KINDS = ("optimizer", "norm")

def infer_param_types(model: "nn.Module", head: str | None = None) -> dict[str, ParamType]:
    """Type every parameter from the module that owns it.

    ``head`` names the module whose weight is the final read-out (typed HEAD,
    so e.g. Muon leaves it to AdamW). Modules may declare ``is_norm = True`` to
    mark hand-written norm layers. (Here, not in harness/params.py, because
    it is ``Task.param_types``'s default: the contract depends on nothing.)
    """
    from torch import nn
    from torch.nn.utils import parametrize

    norm_modules = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
    if hasattr(nn, "RMSNorm"):
        norm_modules = norm_modules + (nn.RMSNorm,)
    types: dict[str, ParamType] = {}
    modules = dict(model.named_modules())
    for module_name, module in modules.items():
        own = dict(module.named_parameters(recurse=False))
        owner_name, gains = module_name, set()
        if isinstance(module, parametrize.ParametrizationList):
            # The originals of a parametrized tensor (weight_norm, spectral_norm,
            # weight standardization) live in "<owner>.parametrizations.<tensor>":
            # type them by the owner. Originals smaller than the largest one
            # (weight_norm's magnitude g) are per-unit gains, typed NORM.
            owner_name = module_name.rsplit(".", 2)[0] if module_name.count(".") >= 2 else ""
            module = modules[owner_name]
            biggest = max((p.numel() for p in own.values()), default=0)
            gains = {n for n, p in own.items() if p.numel() < biggest}
        is_norm = isinstance(module, norm_modules) or getattr(module, "is_norm", False)
        for param_name, param in own.items():
            full = f"{module_name}.{param_name}" if module_name else param_name
            if is_norm or param_name in gains:
                types[full] = ParamType.NORM
            elif isinstance(module, nn.Embedding):
                types[full] = ParamType.EMBEDDING
            elif head is not None and owner_name == head and param.ndim >= 2:
                types[full] = ParamType.HEAD
            elif param.ndim == 1:
                types[full] = ParamType.BIAS
            elif param.ndim == 2:
                types[full] = ParamType.MATRIX
            elif param.ndim > 2:
                types[full] = ParamType.CONV
            else:
                types[full] = ParamType.OTHER
    return types


#: AlgoPerf's names for hyperparameters that optbench's built-ins call otherwise,
#: with the same meaning: AlgoPerf's tuning_search_space.json files drive
#: ``bench tune`` unchanged. A submission adds its own with a literal
#: ``ALIASES = {"their_name": "our_name"}``.
ALGOPERF_NAMES = {"learning_rate": "lr", "warmup_factor": "warmup_fraction"}

#: AlgoPerf's workload-side hyperparameters: name -> (what it does, the
#: accepted values). They arrive among the optimizer's hyperparameters, as in
#: AlgoPerf's tuning_search_space.json; a workload declares the ones it
#: implements (``WorkloadInfo.hyperparameters``), the step applies
#: ``grad_clip`` for every workload, and a run given one its workload does not
#: take is refused, never silently ignored. Absent, each is off: the workload
#: and the step exactly as without it.
WORKLOAD_HYPERPARAMETERS = {
    "label_smoothing": ("mixes the training targets with the uniform distribution (classification losses)", "in [0, 1)"),
    "dropout_rate": ("dropout probability of the model's dropout sites", "in [0, 1)"),
    "aux_dropout_rate": ("dropout probability of a second dropout site (attention weights)", "in [0, 1)"),
    "grad_clip": ("largest global L2 norm of the gradient, clipped in the step", "> 0 (null: no clipping)"),
}
ALGOPERF_WORKLOAD_HYPERPARAMETERS = tuple(WORKLOAD_HYPERPARAMETERS)
#: The ones the step applies, whatever the workload.
STEP_HYPERPARAMETERS = ("grad_clip",)


def check_workload_hyperparameter(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name`` (one of WORKLOAD_HYPERPARAMETERS), or None."""
    if name == "grad_clip" and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{name} must be a number {WORKLOAD_HYPERPARAMETERS[name][1]}, got {value!r}"
    ok = value > 0 if name == "grad_clip" else 0 <= value < 1
    return None if ok else f"{name} must be a number {WORKLOAD_HYPERPARAMETERS[name][1]}, got {value!r}"


def canonical_name(name: str, accepted: Any, aliases: Mapping[str, str] | None = None) -> str:
    """The name a submission knows ``name`` by: itself if accepted, else its
    alias (the submission's ``ALIASES``, then :data:`ALGOPERF_NAMES`) when the
    submission accepts that; otherwise ``name`` unchanged (and refused later)."""
    accepted = set(accepted)
    if name in accepted:
        return name
    target = {**ALGOPERF_NAMES, **(aliases or {})}.get(name)
    return target if target in accepted else name


def unknown_hyperparameter(section: str, name: str, accepted: Any) -> str:
    """Why ``name`` is refused, with the closest names (or what AlgoPerf means by it)."""
    from harness.errors import did_you_mean

    if name in WORKLOAD_HYPERPARAMETERS:
        return (f"{name!r} is a workload hyperparameter (AlgoPerf's), given among the optimizer's: "
                f"optimizer.{name}=..., or a bare {name} in a search space")
    return f"unknown {section} hyperparameter {name!r}; {did_you_mean(name, list(accepted))}"


class Status(str, enum.Enum):
    """How a run ended: run.json's ``status``, and everything that follows from it.

    A str enum, so ``record["status"] == Status.REACHED`` holds for the plain
    strings records carry.
    """

    RUNNING = "running"  # written at the start; a record left so was killed
    REACHED = "reached"  # the validation target met within the budget
    BUDGET_EXHAUSTED = "budget_exhausted"  # the timed budget (or step limit) spent first
    DIVERGED = "diverged"  # the training loss became non-finite
    INTERRUPTED = "interrupted"  # Ctrl-C, or a sweep stopped
    ERROR = "error"  # a plugin raised, a step never returned, evaluation changed the model, ...

    @property
    def is_measurement(self) -> bool:
        """A finished measurement: a sweep never reruns it."""
        return self in (Status.REACHED, Status.BUDGET_EXHAUSTED, Status.DIVERGED)

    @property
    def is_result(self) -> bool:
        """What a leaderboard counts: a measurement, or an error (a miss)."""
        return self.is_measurement or self is Status.ERROR

    @property
    def exit_code(self) -> int:
        """``bench run``'s exit code: 0 completed, 1 error, 130 interrupted."""
        return {Status.ERROR: 1, Status.INTERRUPTED: 130, Status.RUNNING: 1}.get(self, 0)

    @property
    def colour(self) -> str:
        return {Status.REACHED: "green", Status.BUDGET_EXHAUSTED: "yellow", Status.INTERRUPTED: "yellow"}.get(self, "red")

    @classmethod
    def of(cls, value: Any) -> "Status | None":
        """The status a record's string names, or None for anything else."""
        try:
            return cls(value)
        except ValueError:
            return None


# Run outcomes written to run.json by a finished run.
STATUSES = tuple(s.value for s in Status if s is not Status.RUNNING)
