"""AlgoPerf's submission API (algoperf/spec.py), the parts PyTorch submissions use.

Enums, type aliases, ``ShapeTuple``, ``TrainingCompleteError`` and the
function types are AlgoPerf's, value for value. ``Workload`` is a plain base
class with the attributes a submission reads; optbench's adapter passes its
own workload object (harness/plugins/algoperf_runtime.py).
"""

import enum
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from torch import nn


class LossType(enum.Enum):
    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ForwardPassMode(enum.Enum):
    TRAIN = 0
    EVAL = 1


class ParameterType(enum.Enum):
    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12
    ATTENTION_KV = 13
    ATTENTION_BIAS = 14


Tensor = Any


class ShapeTuple:
    def __init__(self, shape_tuple):
        self.shape_tuple = shape_tuple

    def __repr__(self):
        return f"ShapeTuple({self.shape_tuple})"

    def __eq__(self, other):
        return self.shape_tuple == other.shape_tuple


Shape = Union[Tuple[int], Tuple[int, int], Tuple[int, int, int], Tuple[int, int, int, int], ShapeTuple]
ParameterShapeTree = Dict[str, Dict[str, Shape]]
ParameterKey = str
ParameterContainer = Union[Dict[ParameterKey, Dict[ParameterKey, Tensor]], nn.Module]
ParameterTypeTree = Dict[ParameterKey, Dict[ParameterKey, ParameterType]]
RandomState = Any
OptimizerState = Union[Dict[str, Any], Tuple[Any, Any]]
Hyperparameters = Any
Timing = int
Steps = int
ModelAuxiliaryState = Any
ModelInitState = Tuple[ParameterContainer, ModelAuxiliaryState]


class Workload:
    """What a submission may read of a workload (AlgoPerf's abstract base, in brief)."""

    def __init__(self, *args, **kwargs) -> None:
        self._param_shapes = None
        self._param_types = None
        self.metrics_logger = None

    def attach_metrics_logger(self, metrics_logger) -> None:
        self.metrics_logger = metrics_logger

    @property
    def param_shapes(self):
        return self._param_shapes

    @property
    def model_params_types(self):
        return self._param_types


class TrainingCompleteError(Exception):
    pass


InitOptimizerFn = Callable[[Workload, ParameterContainer, ModelAuxiliaryState, Hyperparameters, RandomState], OptimizerState]
UpdateReturn = Tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]
UpdateParamsFn = Callable[
    [Workload, ParameterContainer, ParameterTypeTree, ModelAuxiliaryState, Hyperparameters, Dict[str, Tensor],
     LossType, OptimizerState, List[Tuple[int, float]], int, RandomState, Optional[Dict[str, Any]]],
    UpdateReturn,
]
PrepareForEvalFn = Callable[
    [Workload, ParameterContainer, ParameterTypeTree, ModelAuxiliaryState, Hyperparameters, LossType,
     OptimizerState, List[Tuple[int, float]], int, RandomState],
    UpdateReturn,
]
DataSelectionFn = Callable[
    [Workload, Iterator[Dict[str, Any]], OptimizerState, ParameterContainer, LossType, Hyperparameters, int,
     RandomState],
    Tuple[Tensor, Tensor],
]
