"""Heavy-ball momentum whose prepare_for_eval swaps in the initial weights (AlgoPerf's PyTorch API).

A stand-in for weight averaging (LAWA, EMA): evaluation must see the weights
prepare_for_eval put in the model, and training must go on from the weights
it trained, which update_params swaps back before its step.
"""

import copy
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch.optim.lr_scheduler import LambdaLR

from algoperf import spec


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
  del model_state, rng
  optimizer = torch.optim.SGD(
    model_params.parameters(),
    lr=hyperparameters.learning_rate,
    momentum=1.0 - hyperparameters.one_minus_beta1,
    weight_decay=hyperparameters.weight_decay,
  )
  warmup_steps = max(1, int(hyperparameters.warmup_factor * workload.step_hint))
  scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
  initial = copy.deepcopy(model_params.state_dict())
  return {'optimizer': optimizer, 'scheduler': scheduler, 'initial': initial, 'trained': None}


def _swap_back(model, optimizer_state):
  if optimizer_state['trained'] is not None:
    model.load_state_dict(optimizer_state['trained'])
    optimizer_state['trained'] = None


def update_params(
  workload: spec.Workload,
  current_param_container: spec.ParameterContainer,
  current_params_types: spec.ParameterTypeTree,
  model_state: spec.ModelAuxiliaryState,
  hyperparameters: spec.Hyperparameters,
  batch: Dict[str, spec.Tensor],
  loss_type: spec.LossType,
  optimizer_state: spec.OptimizerState,
  eval_results: List[Tuple[int, float]],
  global_step: int,
  rng: spec.RandomState,
) -> spec.UpdateReturn:
  model = current_param_container
  _swap_back(model, optimizer_state)
  model.train()
  optimizer_state['optimizer'].zero_grad()
  logits, new_model_state = workload.model_fn(
    model, batch, model_state, spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True)
  loss_dict = workload.loss_fn(batch['targets'], logits, batch.get('weights'))
  loss = loss_dict['summed'] / loss_dict['n_valid_examples']
  loss.backward()
  optimizer_state['optimizer'].step()
  optimizer_state['scheduler'].step()
  return (optimizer_state, model, new_model_state)


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
  model = current_param_container
  optimizer_state['trained'] = copy.deepcopy(model.state_dict())
  model.load_state_dict(optimizer_state['initial'])
  return (optimizer_state, model, model_state)


def get_batch_size(workload_name):
  raise ValueError(f'Unsupported workload name: {workload_name}.')


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
  return next(input_queue)
