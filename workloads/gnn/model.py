"""AlgoPerf's ogbg GraphNetwork, read top to bottom.

A Graph Network (Battaglia et al. 2018, "Relational inductive biases, deep
learning, and graph networks", arXiv:1806.01261, Algorithm 1) as AlgoPerf's
ogbg workload builds it (algoperf/workloads/ogbg/ogbg_pytorch/models.py, ported
from init2winit's jraph model). Each of ``steps`` rounds updates edges, then
nodes, then a per-graph global vector u::

    e'_k = MLP_e([e_k, v_{s(k)}, v_{r(k)}, u])                    every edge k: s -> r
    v'_i = MLP_v([v_i, sum_{k: s(k)=i} e'_k, sum_{k: r(k)=i} e'_k, u])
    u'   = MLP_u([sum_i v'_i, sum_k e'_k, u])                      per graph

with every MLP ``Linear -> norm -> activation -> dropout`` (hidden_dims deep) and
no residual connections. Nodes and edges are first embedded by one linear layer
each, u starts at zero with ``num_outputs`` features, and the prediction is a
linear read-out of the final u: one logit per task.

Unlike Battaglia et al.'s algorithm (and like AlgoPerf), a node aggregates its
outgoing and incoming edges separately. Edges are stored in both directions.

Normalization comes from the norm factory: ``norm("node", hidden)`` inside
every MLP (AlgoPerf uses LayerNorm there). The rows it normalizes are nodes,
edges or graphs, all laid out (rows, features). Activations are modules so a
norm submission's ``transform_model`` can swap them. Sums over edges and nodes
use torch_geometric's ``scatter`` / ``global_add_pool`` with the output sizes
passed in, so no step waits on the device to learn a size.

    full size   latent 256, hidden (256,), 5 steps, 128 tasks, dropout 0.1 (AlgoPerf)
    tiny size   latent 64, hidden (64,), 3 steps, 16 tasks, no dropout
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch_geometric.nn import global_add_pool
from torch_geometric.utils import scatter

from harness.api import NormFactory

HEAD = "decoder"  # module name of the read-out, typed ParamType.HEAD


class GraphBatch(NamedTuple):
    """Graphs of one batch, concatenated; everything on the device.

    ``num_nodes`` and ``num_graphs`` are host ints (known without a device sync:
    the task computes them from per-graph sizes it keeps on the host)."""

    x: torch.Tensor  # (N, F_node) node features
    edge_index: torch.Tensor  # (2, E) long: senders, receivers (batch node ids)
    edge_attr: torch.Tensor  # (E, F_edge)
    node_graph: torch.Tensor  # (N,) long: graph of each node, 0..num_graphs-1
    edge_graph: torch.Tensor  # (E,) long: graph of each edge
    num_nodes: int
    num_graphs: int
    y: torch.Tensor  # (B, T) float labels, 0 where missing
    mask: torch.Tensor  # (B, T) bool: label present


@dataclass(frozen=True)
class GNNConfig:
    node_features: int = 9
    edge_features: int = 3
    num_outputs: int = 128
    latent_dim: int = 256
    hidden_dims: tuple[int, ...] = (256,)
    steps: int = 5
    dropout: float = 0.1


ALGOPERF_OGBG = GNNConfig()


class MLP(nn.Sequential):
    """``Linear -> norm -> ReLU -> Dropout`` for each hidden width."""

    def __init__(self, in_dim: int, hidden_dims: tuple[int, ...], dropout: float, norm: NormFactory):
        layers = []
        for dim in hidden_dims:
            layers += [nn.Linear(in_dim, dim), norm("node", dim), nn.ReLU(), nn.Dropout(dropout)]
            in_dim = dim
        super().__init__(*layers)


class GraphNetworkLayer(nn.Module):
    """One round of edge, node and global updates (module docstring)."""

    def __init__(self, edge_in: int, node_in: int, global_in: int, config: GNNConfig, norm: NormFactory):
        super().__init__()
        self.edge_mlp = MLP(edge_in, config.hidden_dims, config.dropout, norm)
        self.node_mlp = MLP(node_in, config.hidden_dims, config.dropout, norm)
        self.global_mlp = MLP(global_in, config.hidden_dims, config.dropout, norm)

    def forward(self, nodes, edges, globals_, g: GraphBatch):
        senders, receivers = g.edge_index
        # index_select, not nodes[senders]: its backward is index_add_, which is
        # deterministic on the CPU; advanced indexing's (index_put_ with
        # accumulate) races between threads and breaks same-seed-same-metrics.
        gather = torch.index_select
        edge_in = [edges, gather(nodes, 0, senders), gather(nodes, 0, receivers), gather(globals_, 0, g.edge_graph)]
        edges = self.edge_mlp(torch.cat(edge_in, dim=-1))
        sent = scatter(edges, senders, dim=0, dim_size=g.num_nodes, reduce="sum")
        received = scatter(edges, receivers, dim=0, dim_size=g.num_nodes, reduce="sum")
        nodes = self.node_mlp(torch.cat([nodes, sent, received, gather(globals_, 0, g.node_graph)], dim=-1))
        pooled_nodes = global_add_pool(nodes, g.node_graph, size=g.num_graphs)
        pooled_edges = global_add_pool(edges, g.edge_graph, size=g.num_graphs)
        globals_ = self.global_mlp(torch.cat([pooled_nodes, pooled_edges, globals_], dim=-1))
        return nodes, edges, globals_


class GNN(nn.Module):
    def __init__(self, config: GNNConfig, norm: NormFactory):
        super().__init__()
        self.config = config
        latent, hidden, out = config.latent_dim, config.hidden_dims[-1], config.num_outputs
        self.node_embedder = nn.Linear(config.node_features, latent)
        self.edge_embedder = nn.Linear(config.edge_features, latent)
        layers = []
        for step in range(config.steps):
            if step == 0:  # inputs: embeddings and the zero globals of width num_outputs
                dims = (latent * 3 + out, latent + hidden * 2 + out, hidden * 2 + out)
            else:
                dims = (hidden * 4, hidden * 4, hidden * 3)
            layers.append(GraphNetworkLayer(*dims, config, norm))
        self.layers = nn.ModuleList(layers)
        self.decoder = nn.Linear(hidden, out)
        self._init_weights()

    def _init_weights(self) -> None:
        # LeCun normal truncated at two standard deviations (JAX's lecun_normal,
        # which AlgoPerf's PyTorch port reproduces); zero biases. The constant
        # is the std of a unit normal truncated to [-2, 2], so the weights'
        # variance is 1 / fan_in after truncation.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                std = math.sqrt(1.0 / module.in_features) / 0.87962566103423978
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(module.bias)

    def forward(self, g: GraphBatch) -> torch.Tensor:
        nodes = self.node_embedder(g.x)
        edges = self.edge_embedder(g.edge_attr)
        globals_ = nodes.new_zeros(g.num_graphs, self.config.num_outputs)
        for layer in self.layers:
            nodes, edges, globals_ = layer(nodes, edges, globals_, g)
        return self.decoder(globals_)  # (num_graphs, num_outputs) logits
