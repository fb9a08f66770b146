"""Running an AlgoPerf PyTorch submission module unchanged, as an optbench optimizer.

harness/plugins/algoperf.py recognises the module; this turns it into an
ordinary optimizer plugin (:class:`Adapter`) whose hooks give the module what
AlgoPerf's ``submission_runner.py`` gives it:

* ``setup`` (untimed, before step 1): the :class:`Workload` object, AlgoPerf's
  rng, then ``init_optimizer_state(workload, model, None, hyperparameters, rng)``;
  ``get_batch_size`` is asked with AlgoPerf's name of the workload, and the
  record says what it asked and what the run used (the workload's own);
* ``update`` (timed): ``data_selection`` from an input queue that yields the
  batch the harness's timed loop loaded for this step (never a second load),
  then ``update_params``; the loss it returns is the first ``loss_fn`` mean of
  the step, on the device;
* ``prepare_for_eval`` (timed, where the module has one): its parameters are
  what the harness evaluates, and what training continues from, as in AlgoPerf.

Differences from AlgoPerf, by design: ``eval_results`` stays empty (a
submission never sees held-out metrics in optbench), the batch size is the
workload's, the trial's ``dropout_rate`` builds the workload's model (as
AlgoPerf's ``init_model_fn``; ``model_fn``'s argument is not re-applied), and a
``TrainingCompleteError`` ends the run as
an error (optbench ends runs at the target or the budget).

Where a real ``algoperf`` package is importable the module gets it; otherwise
the stand-in in harness/plugins/algoperf_shim/ is put on ``sys.path`` for the
import only, never ahead of an installed ``algoperf``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from harness import api
from harness.common.losses import per_example_loss
from harness.common.seeding import derive_seed
from harness.errors import OptbenchError, PluginError
from harness.plugins import algoperf
from harness.plugins.registry import _one_line, _plugin_frames, _where_raised

SHIM = Path(__file__).with_name("algoperf_shim")
UPDATE_ARGS = ("workload", "current_param_container", "current_params_types", "model_state", "hyperparameters",
               "batch", "loss_type", "optimizer_state", "eval_results", "global_step", "rng")
PREPARE_ARGS = tuple(a for a in UPDATE_ARGS if a != "batch")
# How AlgoPerf's runner calls each function: positional arguments, keywords.
CALLS = {
    "init_optimizer_state": (5, ()),
    "update_params": (0, UPDATE_ARGS),
    "get_batch_size": (1, ()),
    "data_selection": (8, ()),
    "prepare_for_eval": (0, PREPARE_ARGS),
}
LOSS_TYPES = {"softmax": "SOFTMAX_CROSS_ENTROPY", "stablemax": "SOFTMAX_CROSS_ENTROPY",
              "sigmoid": "SIGMOID_CROSS_ENTROPY", "mse": "MEAN_SQUARED_ERROR"}


# --------------------------------------------------------------------------- #
# Loading                                                                      #
# --------------------------------------------------------------------------- #


@contextlib.contextmanager
def algoperf_importable():
    """The installed ``algoperf`` when there is one; else the shim, on
    ``sys.path`` only inside this block."""
    if "algoperf" in sys.modules or importlib.util.find_spec("algoperf") is not None:
        yield
        return
    sys.path.insert(0, str(SHIM))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(SHIM))


def adapter(plugin: Any, import_plugin: Any) -> "Adapter":
    """Import the AlgoPerf module behind ``plugin`` and check it; its :class:`Adapter`."""
    label = plugin.label
    with algoperf_importable():
        module = import_plugin(plugin)
        try:
            spec = importlib.import_module("algoperf.spec")
        except Exception as exc:
            raise PluginError(f"{label}: cannot import algoperf.spec: {_one_line(exc)}") from None
    check_functions(module, label)
    return Adapter(plugin, module, spec)


def check_functions(module: Any, label: str) -> None:
    """Each AlgoPerf function present and callable the way AlgoPerf's runner calls it."""
    for name in (*algoperf.REQUIRED, *algoperf.OPTIONAL):
        fn = getattr(module, name, None)
        if fn is None:
            if name in algoperf.REQUIRED:
                raise PluginError(f"{label}: an AlgoPerf submission defines {', '.join(algoperf.REQUIRED)}; missing {name}")
            continue
        if not callable(fn):
            raise PluginError(f"{label}: {name} must be a function, got {type(fn).__name__}")
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins and C functions: nothing to check
            continue
        positional, keywords = CALLS[name]
        try:
            signature.bind(*([None] * positional), **dict.fromkeys(keywords))
        except TypeError as exc:
            shown = ", ".join([f"<{positional} positional>"] if positional else [f"{k}=..." for k in keywords])
            raise PluginError(f"{label}: {name} has the wrong signature for AlgoPerf's call {name}({shown}): {exc}") from None


# --------------------------------------------------------------------------- #
# AlgoPerf's rng for PyTorch (algoperf/random_utils.py without JAX)            #
# --------------------------------------------------------------------------- #

MAX_INT32 = 2**31 - 1


def _unsigned(seed: Any) -> Any:
    if isinstance(seed, (list, np.ndarray)):
        return [int(s) % MAX_INT32 for s in np.asarray(seed).tolist()]
    return int(seed) % MAX_INT32


def split(seed: Any, num: int = 2) -> np.ndarray:
    return np.random.RandomState(seed=_unsigned(seed)).randint(0, MAX_INT32, dtype=np.int32, size=[num, 2])


def run_rng(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(init_optimizer_state's rng, the loop's rng) from the run's seed, as
    submission_runner.py derives them from its 32-bit rng_seed."""
    rng = split(split(derive_seed(seed, "algoperf") % 2**32, 2)[0], 2)[0]
    _data, opt_init, _model_init, loop = split(rng, 4)
    return opt_init, loop


class StepRngs:
    """Each step's rngs for data_selection, update_params, prepare_for_eval (and
    evaluation, unused), AlgoPerf's int32 pairs, drawn in step order from one
    generator seeded by the loop's rng. AlgoPerf folds the step into its rng and
    splits it (two ``RandomState`` seedings, about 1 ms a step here, timed);
    this costs some 40 us and is as deterministic in (seed, step)."""

    def __init__(self, loop_rng: np.ndarray) -> None:
        self._generator = np.random.default_rng([int(v) for v in np.asarray(loop_rng).ravel()])

    def next(self) -> np.ndarray:
        return self._generator.integers(0, MAX_INT32, size=(4, 2), dtype=np.int32)


# --------------------------------------------------------------------------- #
# Batches and the input queue                                                  #
# --------------------------------------------------------------------------- #


class Batch(dict):
    """AlgoPerf's batch dict (``inputs``, ``targets``, ``weights`` where the
    workload masks), remembering the workload's own batch it was made from."""

    __slots__ = ("native",)


def as_batch(native: Any) -> Batch:
    """A workload batch as AlgoPerf's dict: ``(x, y)`` -> inputs x, targets y;
    ``(a, b, ..., y)`` -> inputs (a, b, ...), targets y; a graph batch -> inputs
    the graph, targets its ``y``, weights its ``mask``."""
    batch = Batch()
    batch.native = native
    if isinstance(native, (tuple, list)) and not hasattr(native, "y"):  # a graph batch may be a NamedTuple
        batch["inputs"] = native[0] if len(native) == 2 else tuple(native[:-1])
        batch["targets"] = native[-1]
        return batch
    batch["inputs"] = native
    for key, attr in (("targets", "y"), ("weights", "mask")):
        if getattr(native, attr, None) is not None:
            batch[key] = getattr(native, attr)
    return batch


def native_batch(batch: Any) -> Any:
    """The workload batch behind an AlgoPerf dict: its own, or rebuilt from a
    dict the submission made (e.g. a slice of each entry)."""
    if isinstance(batch, Batch):
        return batch.native
    inputs = batch["inputs"]
    if hasattr(inputs, "y"):  # a graph batch carries its labels
        return inputs
    if isinstance(inputs, tuple):
        return (*inputs, batch["targets"])
    if torch.is_tensor(inputs):
        return (inputs, batch["targets"])
    return inputs


class InputQueue:
    """AlgoPerf's infinitely repeating input queue, fed by the timed loop: each
    step it holds the one batch the harness loaded for that step."""

    def __init__(self) -> None:
        self._batch: Batch | None = None

    def put(self, native: Any) -> None:
        self._batch = as_batch(native)

    def __iter__(self) -> "InputQueue":
        return self

    def __next__(self) -> Batch:
        if self._batch is None:
            raise RuntimeError("data_selection took a second batch in one step: optbench's input queue "
                               "holds the one batch the harness loads per step")
        batch, self._batch = self._batch, None
        return batch


# --------------------------------------------------------------------------- #
# The workload object                                                          #
# --------------------------------------------------------------------------- #


def _freeze_batch_norm(module: torch.nn.Module, update_batch_norm: bool) -> None:
    """AlgoPerf's update_batch_norm_fn: BatchNorm momentum 0 while statistics must not move."""
    if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return
    if not update_batch_norm:
        if not hasattr(module, "momentum_backup"):
            module.momentum_backup = module.momentum
        module.momentum = torch.zeros_like(module.momentum_backup) if torch.is_tensor(module.momentum_backup) else 0.0
    elif hasattr(module, "momentum_backup"):
        module.momentum = module.momentum_backup


def parameter_types(model: torch.nn.Module, types: dict[str, api.ParamType], spec: Any) -> dict[str, Any]:
    """optbench's parameter types as AlgoPerf's ``ParameterType``: norms split
    into batch-norm or layer-norm scale and bias by the layer that owns them."""
    kinds = spec.ParameterType
    batch_norms = {name for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    plain = {api.ParamType.MATRIX: kinds.WEIGHT, api.ParamType.CONV: kinds.CONV_WEIGHT,
             api.ParamType.EMBEDDING: kinds.EMBEDDING, api.ParamType.HEAD: kinds.WEIGHT,
             api.ParamType.BIAS: kinds.BIAS, api.ParamType.OTHER: kinds.WEIGHT}
    out = {}
    for name, kind in types.items():
        owner, _, leaf = name.rpartition(".")
        if kind is api.ParamType.NORM:
            norm = "BATCH_NORM" if owner in batch_norms else "LAYER_NORM"
            out[name] = kinds[f"{norm}_{'BIAS' if leaf == 'bias' else 'SCALE'}"]
        else:
            out[name] = plain[api.ParamType(kind)]
    return out


class Workload:
    """What AlgoPerf's runner hands a submission as ``workload``, over optbench's
    task: ``model_fn`` and ``loss_fn`` read the task's :class:`harness.api.Outputs`.
    ``init_model_fn`` is the harness's (it builds the model); a submission never calls it."""

    def __init__(self, task: Any, model: torch.nn.Module, step_hint: int, spec: Any, loss_kind: str) -> None:
        size = task.size
        self._task, self._spec, self._target = task, spec, size.target
        self._loss_kind = loss_kind
        self._outputs: api.Outputs | None = None  # of the last model_fn call: targets' shape, loss kind
        self.step_loss: torch.Tensor | None = None  # the step's first loss_fn mean: the loop's train/loss
        self.metrics_logger = None  # AlgoPerf passes None unless its own logging is set up
        self.step_hint = step_hint
        self.target_metric_name = size.target.metric
        self.validation_target_value = size.target.validation
        self.test_target_value = size.target.test
        self.max_allowed_runtime_sec = size.max_runtime_s
        self.eval_period_time_sec = size.eval_every_s
        self.loss_type = spec.LossType[LOSS_TYPES[loss_kind]]
        self._types = task.param_types(model)
        self.param_shapes = {n: spec.ShapeTuple(tuple(p.shape)) for n, p in model.named_parameters()}
        self.model_params_types = parameter_types(model, self._types, spec)

    def attach_metrics_logger(self, metrics_logger: Any) -> None:
        self.metrics_logger = metrics_logger

    def has_reached_validation_target(self, eval_result: dict[str, float]) -> bool:
        return self._target.met(eval_result)

    def has_reached_test_target(self, eval_result: dict[str, float]) -> bool:
        return bool(self._target.test_met(eval_result))

    def is_output_params(self, param_key: str) -> bool:
        return self._types.get(param_key) is api.ParamType.HEAD

    def init_model_fn(self, rng: Any, dropout_rate: Any = None, aux_dropout_rate: Any = None) -> Any:
        raise RuntimeError("init_model_fn is the runner's: optbench builds the workload's model before init_optimizer_state")

    def output_activation_fn(self, logits_batch: torch.Tensor, framework: str = "pytorch") -> torch.Tensor:
        if self._loss_kind == "sigmoid":
            return torch.sigmoid(logits_batch)
        return logits_batch if self._loss_kind == "mse" else torch.softmax(logits_batch, dim=-1)

    def model_fn(self, params: torch.nn.Module, augmented_and_preprocessed_input_batch: dict[str, Any],
                 model_state: Any, mode: Any, rng: Any, update_batch_norm: bool,
                 dropout_rate: float | None = None) -> tuple[torch.Tensor, Any]:
        # dropout_rate is accepted as AlgoPerf's model_fn accepts it; the
        # trial's dropout_rate built the workload's model (as AlgoPerf's
        # init_model_fn does), so it is not applied again here.
        model, evaluating = params, getattr(mode, "name", mode) == "EVAL"
        if evaluating:
            if update_batch_norm:
                raise ValueError("Batch norm statistics cannot be updated during evaluation.")
            model.eval()
        else:
            model.train()
            model.apply(functools.partial(_freeze_batch_norm, update_batch_norm=update_batch_norm))
        with torch.no_grad() if evaluating else contextlib.nullcontext():
            self._outputs = self._task.outputs(model, native_batch(augmented_and_preprocessed_input_batch))
        return self._outputs.logits, model_state

    def loss_fn(self, label_batch: torch.Tensor, logits_batch: torch.Tensor, mask_batch: torch.Tensor | None = None,
                label_smoothing: float = 0.0) -> dict[str, torch.Tensor]:
        """AlgoPerf's loss dict: ``summed``, ``n_valid_examples`` and ``per_example``
        (masked entries 0), unsynced across ranks, with ``label_smoothing``."""
        last = self._outputs
        targets = label_batch
        if last is not None and targets.shape != last.targets.shape and targets.numel() == last.targets.numel():
            targets = targets.reshape(last.targets.shape)  # a language model's (B, T) as its (B*T,) rows
        kind = last.loss if last is not None else self._loss_kind
        per = per_example_loss(api.Outputs(logits_batch, targets, None, kind), label_smoothing)
        if mask_batch is not None:
            weights = mask_batch.reshape(per.shape) if mask_batch.numel() == per.numel() else mask_batch
            per = torch.where(weights.bool(), per, torch.zeros((), dtype=per.dtype, device=per.device))
            n_valid = weights.sum()
        else:
            n_valid = torch.full((), per.numel(), dtype=torch.int64, device=per.device)  # a fill: no host copy
        summed = per.sum()
        if self.step_loss is None:
            self.step_loss = (summed / n_valid).detach()
        return {"summed": summed, "n_valid_examples": n_valid, "per_example": per}


# --------------------------------------------------------------------------- #
# The adapter: an optimizer plugin whose hooks drive the module                #
# --------------------------------------------------------------------------- #


class Adapter:
    """An AlgoPerf module seen as an optbench optimizer submission."""

    KIND = "optimizer"

    def __init__(self, plugin: Any, module: Any, spec: Any) -> None:
        meta = plugin.meta
        self.DESCRIPTION, self.PAPER = meta.get("DESCRIPTION", ""), meta.get("PAPER", "")
        self.DEFAULTS, self.SEARCH_SPACE = dict(meta.get("DEFAULTS") or {}), meta.get("SEARCH_SPACE") or {}
        self.module, self.spec, self.label = module, spec, plugin.label
        self.files = (str(plugin.source),) if plugin.source else ()
        if hasattr(module, "prepare_for_eval"):  # the loop calls (and times) the hook only where there is one
            self.prepare_for_eval = self._prepare_for_eval

    def make_optimizer(self, params: list, hp: api.Hyperparameters, step_hint: int) -> "AlgoPerfState":
        return AlgoPerfState(self, hp)

    def setup(self, ctx: api.StepContext) -> dict[str, Any]:
        return ctx.optimizer.setup(ctx)

    def update(self, ctx: api.StepContext) -> torch.Tensor:
        return ctx.optimizer.update(ctx)

    def _prepare_for_eval(self, ctx: api.StepContext) -> None:
        ctx.optimizer.prepare_for_eval(ctx)

    def call(self, name: str, step: int | None, *args: Any, **kwargs: Any) -> Any:
        """The module's ``name``; an exception from it becomes a one-line PluginError naming it."""
        try:
            return getattr(self.module, name)(*args, **kwargs)
        except OptbenchError:
            raise
        except Exception as exc:
            at = f" at step {step + 1} (global_step {step})" if step is not None else ""
            why = _one_line(exc)
            if isinstance(exc, getattr(self.spec, "TrainingCompleteError", ())):
                why += " (optbench ends a run at its target or its budget, not when a submission declares it done)"
            error = PluginError(f"{self.label}: {name} raised{at}: {why}{_where_raised(exc, self.files)}")
            error.plugin_frames = _plugin_frames(exc, self.files)
            raise error from exc


def hyperparameters_tuple(hp: api.Hyperparameters) -> Any:
    """AlgoPerf's hyperparameters: a namedtuple in the search space's order, or None (self-tuning)."""
    if not hp:
        return None
    return collections.namedtuple("Hyperparameters", list(hp))(**hp)


class AlgoPerfState:
    """One run of an AlgoPerf module (the run's ``ctx.optimizer``): its optimizer
    state, model state, rng and input queue between the harness's hooks."""

    def __init__(self, adapter: Adapter, hp: api.Hyperparameters) -> None:
        self.adapter, self.hp = adapter, hyperparameters_tuple(hp)
        self.optimizer_state: Any = None
        self.model_state: Any = None
        self.params: Any = None
        self.workload: Workload | None = None
        self.queue = InputQueue()
        self.eval_results: list = []  # stays empty: held-out metrics are the harness's
        self.rng: StepRngs | None = None  # each step's rngs, in step order
        self.prepare_rng: Any = None
        self.wants_train_state = "train_state" in _parameters(adapter.module.update_params)
        self.train_state = MappingProxyType({"validation_goal_reached": False, "test_goal_reached": False,
                                             "is_time_remaining": True, "training_complete": False})

    @property
    def param_groups(self) -> list:
        """The first torch optimizer's groups in the optimizer state (the record's lr column)."""
        state = self.optimizer_state
        values = state.values() if isinstance(state, dict) else state if isinstance(state, (tuple, list)) else [state]
        for value in values:
            if isinstance(value, torch.optim.Optimizer):
                return value.param_groups
        raise AttributeError("param_groups")

    def setup(self, ctx: api.StepContext) -> dict[str, Any]:
        """Untimed, before step 1: the workload object, the rng, init_optimizer_state."""
        adapter = self.adapter
        model = getattr(ctx.model, "module", ctx.model)  # AlgoPerf types the unwrapped model's names
        self.workload = Workload(ctx.task, model, ctx.step_hint, adapter.spec, _loss_kind(ctx))
        opt_init_rng, loop_rng = run_rng(ctx.seed)
        self.rng = StepRngs(loop_rng)
        self.params = ctx.model
        self.optimizer_state = adapter.call("init_optimizer_state", None, self.workload, self.params, None, self.hp,
                                            opt_init_rng)
        return {"algoperf": self.describe(ctx)}

    def update(self, ctx: api.StepContext) -> torch.Tensor:
        """One AlgoPerf step on the batch the loop loaded: data_selection, update_params."""
        adapter, step, workload = self.adapter, ctx.step, self.workload
        self.queue.put(ctx.batch)
        data_rng, update_rng, self.prepare_rng, _eval_rng = self.rng.next()
        batch = adapter.call("data_selection", step, workload, self.queue, self.optimizer_state, self.params,
                             self.model_state, self.hp, step, data_rng)
        workload.step_loss = None
        extra = {"train_state": self.train_state} if self.wants_train_state else {}
        out = adapter.call(
            "update_params", step, workload=workload, current_param_container=self.params,
            current_params_types=workload.model_params_types, model_state=self.model_state, hyperparameters=self.hp,
            batch=batch, loss_type=workload.loss_type, optimizer_state=self.optimizer_state,
            eval_results=self.eval_results, global_step=step, rng=update_rng, **extra)
        self.adopt(ctx, "update_params", out)
        loss = workload.step_loss
        return loss if loss is not None else torch.zeros((), device=ctx.task.device)

    def prepare_for_eval(self, ctx: api.StepContext) -> None:
        """Timed, at an eval boundary: the module's parameters become what is evaluated."""
        workload = self.workload
        out = self.adapter.call(
            "prepare_for_eval", ctx.step, workload=workload, current_param_container=self.params,
            current_params_types=workload.model_params_types, model_state=self.model_state, hyperparameters=self.hp,
            loss_type=workload.loss_type, optimizer_state=self.optimizer_state, eval_results=self.eval_results,
            global_step=ctx.step + 1, rng=self.prepare_rng)
        self.adopt(ctx, "prepare_for_eval", out)

    def adopt(self, ctx: api.StepContext, name: str, out: Any) -> None:
        """Take (optimizer_state, params, model_state) back; new params are the run's model."""
        if not (isinstance(out, tuple) and len(out) == 3):
            raise PluginError(f"{self.adapter.label}: {name} returned {type(out).__name__}; AlgoPerf expects "
                              "(optimizer_state, params, model_state)")
        self.optimizer_state, params, self.model_state = out
        if params is not self.params:
            if not isinstance(params, torch.nn.Module):
                raise PluginError(f"{self.adapter.label}: {name} returned params of type {type(params).__name__}; "
                                  "a PyTorch submission returns the model (an nn.Module)")
            self.params = ctx.model = params

    def describe(self, ctx: api.StepContext) -> dict[str, Any]:
        """The record's account of how the module was run: spec, batch size, dropout."""
        name = algoperf.algoperf_workload_name(ctx.workload)
        used = ctx.task.size.batch_size
        info: dict[str, Any] = {"spec": _spec_origin(self.adapter.spec), "workload": name, "batch_size": used,
                                "hyperparameters": None if self.hp is None else dict(self.hp._asdict())}
        if name is None:
            info["batch_size_note"] = f"AlgoPerf has no {ctx.workload!r} workload: get_batch_size was not asked"
        else:
            try:
                asked = self.adapter.module.get_batch_size(name)
                info["get_batch_size"] = asked
                info["batch_size_note"] = (f"get_batch_size({name!r}) = {asked}: used" if asked == used else
                                           f"get_batch_size({name!r}) = {asked}; the size's batch size {used} is used "
                                           "(tiny sizes keep the workload's; so does a batch_size override)")
            except Exception as exc:  # AlgoPerf's baselines raise ValueError for workloads they do not list
                info["get_batch_size"] = None
                info["batch_size_note"] = f"get_batch_size({name!r}) raised {_one_line(exc)}; the workload's batch size {used} is used"
        if self.hp is not None and "dropout_rate" in self.hp._fields:
            info["dropout_note"] = (f"dropout_rate={self.hp.dropout_rate} built into the workload's model where it "
                                    "takes dropout_rate (as AlgoPerf's init_model_fn); model_fn's argument is not re-applied")
        return info


def _parameters(fn: Any) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


def _spec_origin(spec: Any) -> str:
    package = sys.modules.get(spec.__name__.rpartition(".")[0])
    if getattr(package, "OPTBENCH_SHIM", False):
        return "optbench's algoperf stand-in (no algoperf package installed)"
    return f"algoperf {getattr(package, '__version__', '?')} ({getattr(spec, '__file__', '?')})"


def _loss_kind(ctx: api.StepContext) -> str:
    """The task's loss kind (AlgoPerf's ``loss_type``, passed from step 1 on),
    read from its outputs on the first batch: untimed, no gradient, the model
    in eval mode and every RNG as it was."""
    model = ctx.model
    with torch.random.fork_rng(devices=[ctx.task.device] if ctx.task.device.type == "cuda" else []):
        model.eval()
        try:
            with torch.no_grad():
                return ctx.task.outputs(model, ctx.task.next_batch(0)).loss
        except NotImplementedError as exc:
            raise PluginError(f"AlgoPerf submissions need the workload's model outputs: {exc}") from None
        finally:
            model.train()


__all__ = ["Adapter", "Workload", "InputQueue", "Batch", "adapter", "check_functions", "algoperf_importable",
           "split", "run_rng", "StepRngs", "hyperparameters_tuple", "parameter_types"]
