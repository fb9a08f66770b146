"""Building what a run needs, untimed: the data directory, the device, the
task, the model with its norm, the optimizer and schedule.

Shared by the runner (harness/run/execution.py) and the step-time measurement
(harness/run/speed.py), which builds exactly what a run builds.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from harness import api
from harness.errors import UserInputError


def resolve_data_dir(config: dict[str, Any]) -> Path:
    if config.get("data_dir"):
        return Path(config["data_dir"]).expanduser()
    return Path(os.environ.get("OPTBENCH_DATA", "~/.cache/optbench")).expanduser()


def resolve_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device {name!r} requested but CUDA is not available")
    return device


def import_task(spec: str):
    """The Task class named by ``"module:Class"`` (WorkloadInfo.task)."""
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_task(spec: str, size: api.Size, device, data_dir: Path, seed: int, synthetic: bool = False,
              settings: Any = None) -> api.Task:
    """The workload's task (``spec``: WorkloadInfo.task). ``synthetic``: random
    inputs of the real shapes instead of the dataset, which the task must
    accept as a keyword (``Task.__init__``); passed only when asked, so a
    workload written before it still runs on its data. ``settings``: a workload
    variant's (api.WorkloadInfo.variants), passed as ``settings=`` only when given."""
    cls = import_task(spec)
    extra = {} if settings is None else {"settings": dict(settings)}
    if not synthetic:
        return cls(size, device, data_dir, seed, **extra)
    import inspect

    if "synthetic" not in inspect.signature(cls.__init__).parameters:
        raise UserInputError(f"workload task {spec} does not take synthetic=True: it cannot run without its dataset "
                             "(leave out --synthetic-data / data.synthetic)")
    return cls(size, device, data_dir, seed, synthetic=True, **extra)


def build_model(task: api.Task, norm_sub, hp_norm: api.Hyperparameters, device):
    """The workload's model with the norm submission at every norm site, on ``device``, in train mode."""
    norm_hook = norm_sub.obj.make_norm
    supported = set(norm_sub.sites)

    def norm_factory(site: str, num_features: int):
        if site not in supported:
            raise UserInputError(f"norm {norm_sub.name!r} does not support site {site!r}")
        return norm_hook(site, num_features, hp_norm)

    model = task.build_model(norm_factory)
    transform = norm_sub.hook("transform_model")
    if transform is not None:
        model = transform(model, hp_norm) or model
    model = model.to(device)
    model.train()
    return model


def build_optimizer(optimizer_sub, params, hp: api.Hyperparameters, step_hint: int):
    """(optimizer, schedule or None) of an optimizer submission."""
    optimizer = optimizer_sub.obj.make_optimizer(params, hp, step_hint)
    make_schedule = optimizer_sub.hook("make_schedule")
    return optimizer, (make_schedule(optimizer, hp, step_hint) if make_schedule else None)


__all__ = ["resolve_data_dir", "resolve_device", "import_task", "make_task", "build_model", "build_optimizer"]
