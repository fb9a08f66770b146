"""NAdamW with warmup + cosine decay, written to AlgoPerf's PyTorch submission API.

AlgoPerf's NAdamW baseline (algorithms/archived_paper_baselines/nadamw/pytorch),
with the two choices of optbench's built-in ``nadamw`` so both compute the
same run: no weight decay on biases and norm parameters (read from
``current_params_types``), and linear warmup from lr/warmup then cosine decay
to 0 at ``step_hint`` (harness.schedules.warmup_cosine), written out here
because a submission module imports only AlgoPerf's API.
"""

import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed.nn as dist_nn
from torch.optim.lr_scheduler import LambdaLR

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP = pytorch_setup()[0]

NO_DECAY = (
  spec.ParameterType.BIAS,
  spec.ParameterType.BATCH_NORM_SCALE,
  spec.ParameterType.BATCH_NORM_BIAS,
  spec.ParameterType.LAYER_NORM_SCALE,
  spec.ParameterType.LAYER_NORM_BIAS,
  spec.ParameterType.ATTENTION_BIAS,
)


class NAdamW(torch.optim.Optimizer):
  """AdamW with Nesterov momentum (Table 1 of arXiv:1910.05446), as AlgoPerf's baseline."""

  def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    super().__init__(params, {'lr': lr, 'betas': betas, 'eps': eps, 'weight_decay': weight_decay})

  @torch.no_grad()
  def step(self, closure=None):
    for group in self.param_groups:
      lr, eps, wd = group['lr'], group['eps'], group['weight_decay']
      beta1, beta2 = group['betas']
      for p in group['params']:
        if p.grad is None:
          continue
        grad = p.grad
        state = self.state[p]
        if len(state) == 0:
          state['step'] = 0
          state['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
          state['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state['step'] += 1
        step = state['step']
        exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']
        p.mul_(1 - lr * wd)
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        nesterov = exp_avg.mul(beta1).add_(grad, alpha=1 - beta1)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(eps)
        p.addcdiv_(nesterov, denom, value=-lr / (1 - beta1**step))


def init_optimizer_state(
  workload: spec.Workload,
  model_params: spec.ParameterContainer,
  model_state: spec.ModelAuxiliaryState,
  hyperparameters: spec.Hyperparameters,
  rng: spec.RandomState,
) -> spec.OptimizerState:
  del model_state
  del rng
  types = workload.model_params_types
  module = getattr(model_params, 'module', model_params)
  decay, plain = [], []
  for name, param in module.named_parameters():
    (plain if types[name] in NO_DECAY else decay).append(param)
  groups = [{'params': decay, 'weight_decay': hyperparameters.weight_decay}]
  if plain:
    groups.append({'params': plain, 'weight_decay': 0.0})
  optimizer = NAdamW(
    groups,
    lr=hyperparameters.learning_rate,
    betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
    eps=1e-8,
  )
  step_hint = workload.step_hint
  warmup = max(1, int(round(hyperparameters.warmup_factor * step_hint)))
  decay_steps = max(1, step_hint - warmup)

  def factor(step):
    if step < warmup:
      return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / decay_steps)))

  return {'optimizer': optimizer, 'scheduler': LambdaLR(optimizer, factor)}


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
  train_state: Optional[Dict[str, Any]] = None,
) -> spec.UpdateReturn:
  del current_params_types, loss_type, eval_results, train_state
  current_model = current_param_container
  current_model.train()
  optimizer_state['optimizer'].zero_grad()
  logits_batch, new_model_state = workload.model_fn(
    params=current_model,
    augmented_and_preprocessed_input_batch=batch,
    model_state=model_state,
    mode=spec.ForwardPassMode.TRAIN,
    rng=rng,
    update_batch_norm=True,
    dropout_rate=getattr(hyperparameters, 'dropout_rate', 0.0),
  )
  loss_dict = workload.loss_fn(
    label_batch=batch['targets'],
    logits_batch=logits_batch,
    mask_batch=batch.get('weights'),
    label_smoothing=getattr(hyperparameters, 'label_smoothing', 0.0),
  )
  summed_loss = loss_dict['summed']
  n_valid_examples = loss_dict['n_valid_examples']
  if USE_PYTORCH_DDP:
    summed_loss = dist_nn.all_reduce(summed_loss)
    n_valid_examples = dist_nn.all_reduce(n_valid_examples)
  loss = summed_loss / n_valid_examples
  loss.backward()
  optimizer_state['optimizer'].step()
  optimizer_state['scheduler'].step()
  return (optimizer_state, current_param_container, new_model_state)


def prepare_for_eval(
  workload: spec.Workload,
  current_param_container: spec.ParameterContainer,
  current_params_types: spec.ParameterTypeTree,
  model_state: spec.ModelAuxiliaryState,
  hyperparameters: spec.Hyperparameters,
  loss_type: spec.LossType,
  optimizer_state: spec.OptimizerState,
  eval_results: List[Tuple[int, float]],
  global_step: int,
  rng: spec.RandomState,
) -> spec.UpdateReturn:
  del workload, hyperparameters, current_params_types, loss_type, eval_results, global_step, rng
  return (optimizer_state, current_param_container, model_state)


def get_batch_size(workload_name):
  if workload_name == 'ogbg':
    return 512
  elif workload_name == 'wmt':
    return 128
  raise ValueError(f'Unsupported workload name: {workload_name}.')


def data_selection(
  workload: spec.Workload,
  input_queue: Iterator[Dict[str, spec.Tensor]],
  optimizer_state: spec.OptimizerState,
  current_param_container: spec.ParameterContainer,
  model_state: spec.ModelAuxiliaryState,
  hyperparameters: spec.Hyperparameters,
  global_step: int,
  rng: spec.RandomState,
) -> Dict[str, spec.Tensor]:
  del workload, optimizer_state, current_param_container, model_state, hyperparameters, global_step, rng
  return next(input_queue)
