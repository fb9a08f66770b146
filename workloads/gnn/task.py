"""The gnn task: graphs on the device, batches, masked loss, mean average precision.

Batching without per-step host work
-----------------------------------
Every split lives on the device as one concatenation of its graphs (node
features, edges stored in both directions with graph-local node ids, edge
features, labels). A *plan* fixes an order of graphs and, once, builds the
device index arrays that lay that order out: for each node and edge of the
ordered graphs, where it comes from and which graph it belongs to, with edge
endpoints renumbered to positions in the ordered node list. Batch ``i`` of a
plan is then a contiguous range of graphs, hence a contiguous range of nodes
and edges, whose bounds the host knows from per-graph sizes it keeps in numpy.
``next_batch`` is a few slices and gathers: no Python loop over graphs, no
torch_geometric ``Batch.from_data_list`` (which collates on the host), no
``.item()``, no device sync.

Training batches are a pure function of (seed, step): step ``s`` lies in epoch
``s // steps_per_epoch``, whose order is ``torch.randperm`` on a *CPU*
generator seeded by (seed, epoch) -- on the host so the host knows the batch
bounds without asking the device, and identical on every device. At an epoch
boundary (once every ``steps_per_epoch`` steps, inside the timed step) the host
draws the permutation, sums sizes, and copies three index vectors to the
device (pinned and non-blocking on CUDA); the device builds the plan. The
last partial batch of an epoch is dropped, so every step sees ``batch_size``
graphs. Measured on the tiny size (one thread, busy machine): ``next_batch``
~0.8 ms per step against ~200 ms for the whole step, plus ~0.1 s to lay out
an epoch (62 steps), i.e. about 1% of the timed step in all.

Loss and metric (AlgoPerf's ogbg)
---------------------------------
Sigmoid cross-entropy per (graph, task), averaged over the labels present
(missing labels are masked out). The metric is OGB's mean average precision:
for each task with at least one positive and one negative label among the
present ones, average precision over the present labels,

    AP = sum_k (R_k - R_{k-1}) * P_k        over distinct score thresholds, descending,

(P_k, R_k: precision and recall when predicting positive every score >= the
k-th threshold; tied scores form one threshold, as scikit-learn's
``average_precision_score`` which OGB's evaluator and AlgoPerf call), then the
mean over those tasks. Computed on the device, all tasks at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.api import NormFactory, Outputs, ParamType, Size, Task
from harness.common.losses import mean_loss
from harness.common import synthetic
from harness.common.datacache import arrays_digest
from harness.params import infer_param_types
from harness.common.seeding import derive_seed
from harness.errors import UserInputError

from . import data
from .model import ALGOPERF_OGBG, GNN, HEAD, GNNConfig, GraphBatch


@dataclass(frozen=True)
class _Settings:
    """What each size fixes beyond ``Size``."""

    model: GNNConfig
    eval_batch_size: int  # graphs per evaluation forward pass


SETTINGS = {
    "tiny": _Settings(
        model=GNNConfig(
            node_features=data.NODE_FEATURES,
            edge_features=data.EDGE_FEATURES,
            num_outputs=len(data.TASKS),
            latent_dim=64,
            hidden_dims=(64,),
            steps=3,
            dropout=0.0,
        ),
        eval_batch_size=1000,
    ),
    "full": _Settings(model=ALGOPERF_OGBG, eval_batch_size=8192),
}


# --------------------------------------------------------------------------- #
# graphs on the device                                                        #
# --------------------------------------------------------------------------- #


class GraphStore:
    """One split on the device, plus the per-graph sizes on the host."""

    def __init__(self, graphs: data.GraphSet, device: torch.device):
        self.device = device
        self.num_graphs = graphs.num_graphs
        self.num_nodes = graphs.num_nodes.astype(np.int64)  # host copies: batch bounds
        self.num_edges = 2 * graphs.num_edges.astype(np.int64)  # both directions

        # Both directions of every bond, grouped by graph: graph g's forward
        # edges, then the same edges reversed (senders and receivers swapped).
        owner = np.repeat(np.arange(self.num_graphs), graphs.num_edges)
        ei = graphs.edge_index
        senders = np.concatenate([ei[:, 0], ei[:, 1]])
        receivers = np.concatenate([ei[:, 1], ei[:, 0]])
        by_graph = np.argsort(np.concatenate([owner, owner]), kind="stable")
        edge_index = np.stack([senders[by_graph], receivers[by_graph]])
        edge_feat = np.concatenate([graphs.edge_feat, graphs.edge_feat])[by_graph]

        def put(array, dtype):
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype).to(device)

        self.x = put(graphs.node_feat, torch.float32)
        self.edge_index = put(edge_index, torch.long)  # (2, E) graph-local ids
        self.edge_attr = put(edge_feat, torch.float32)
        self.node_ptr = put(np.concatenate([[0], np.cumsum(self.num_nodes)[:-1]]), torch.long)
        self.edge_ptr = put(np.concatenate([[0], np.cumsum(self.num_edges)[:-1]]), torch.long)
        self.num_nodes_dev = put(self.num_nodes, torch.long)
        self.num_edges_dev = put(self.num_edges, torch.long)
        labels = graphs.labels
        self.mask = put(~np.isnan(labels), torch.bool)
        self.y = put(np.nan_to_num(labels, nan=0.0), torch.float32)

    def plan(self, order: torch.Tensor) -> "Plan":
        return Plan(self, order)


class Plan:
    """The graphs ``order`` (a CPU long tensor of graph ids) laid out on the
    device, ready to be cut into batches of consecutive graphs."""

    def __init__(self, store: GraphStore, order: torch.Tensor):
        self.store = store
        device = store.device
        order_np = order.numpy()
        # Host: where each graph's nodes and edges start in the ordered layout.
        self.node_cum = np.concatenate([[0], np.cumsum(store.num_nodes[order_np])])
        self.edge_cum = np.concatenate([[0], np.cumsum(store.num_edges[order_np])])
        n_total, e_total = int(self.node_cum[-1]), int(self.edge_cum[-1])

        def to_device(array: np.ndarray) -> torch.Tensor:
            t = torch.as_tensor(array, dtype=torch.long)
            if device.type == "cuda":  # an async copy: no wait on queued kernels
                return t.pin_memory().to(device, non_blocking=True)
            return t.to(device)

        self.order = to_device(order_np)
        node_start = to_device(self.node_cum[:-1])
        edge_start = to_device(self.edge_cum[:-1])
        positions = torch.arange(len(order_np), device=device)
        n_per_graph = store.num_nodes_dev[self.order]
        e_per_graph = store.num_edges_dev[self.order]
        # output_size: lengths from the host, so repeat_interleave needs no sync.
        self.node_graph = torch.repeat_interleave(positions, n_per_graph, output_size=n_total)
        self.edge_graph = torch.repeat_interleave(positions, e_per_graph, output_size=e_total)
        shift_nodes = store.node_ptr[self.order] - node_start  # source row - ordered row, per graph
        shift_edges = store.edge_ptr[self.order] - edge_start
        self.node_src = torch.arange(n_total, device=device) + shift_nodes[self.node_graph]
        self.edge_src = torch.arange(e_total, device=device) + shift_edges[self.edge_graph]
        # Endpoints as positions in the ordered node list.
        self.edge_index = store.edge_index[:, self.edge_src] + node_start[self.edge_graph]

    def __len__(self) -> int:
        return len(self.node_cum) - 1

    def batch(self, start: int, stop: int) -> GraphBatch:
        """Graphs ``start:stop`` of the order, as one batch."""
        s = self.store
        a, b = int(self.node_cum[start]), int(self.node_cum[stop])
        c, d = int(self.edge_cum[start]), int(self.edge_cum[stop])
        ids = self.order[start:stop]
        return GraphBatch(
            x=s.x[self.node_src[a:b]],
            edge_index=self.edge_index[:, c:d] - a,
            edge_attr=s.edge_attr[self.edge_src[c:d]],
            node_graph=self.node_graph[a:b] - start,
            edge_graph=self.edge_graph[c:d] - start,
            num_nodes=b - a,
            num_graphs=stop - start,
            y=s.y[ids],
            mask=s.mask[ids],
        )


# --------------------------------------------------------------------------- #
# loss and metric                                                             #
# --------------------------------------------------------------------------- #


def masked_bce(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Sigmoid cross-entropy over the labels present: their mean (or sum)."""
    losses = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    total = torch.where(mask, losses, 0.0).sum()
    if reduction == "sum":
        return total
    return total / mask.sum().clamp(min=1)


def mean_average_precision(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OGB's mean average precision of ``scores`` (graphs, tasks) against 0/1
    ``labels`` where ``mask``; NaN when no task has both classes. A 0-d tensor
    on the scores' device (see the module docstring for the definition)."""
    n = scores.shape[0]
    order = torch.argsort(scores, dim=0, descending=True, stable=True)
    s = scores.gather(0, order)
    y = labels.gather(0, order)
    m = mask.gather(0, order)
    pos = ((y == 1) & m).to(torch.float64)
    neg = ((y == 0) & m).to(torch.float64)
    tp, fp = pos.cumsum(0), neg.cumsum(0)
    # A threshold is the last row of a run of equal scores; every row takes
    # the precision at its run's last row (a reversed running minimum).
    is_last = torch.ones_like(s, dtype=torch.bool)
    is_last[:-1] = s[:-1] != s[1:]
    rows = torch.arange(n, device=s.device)[:, None].expand_as(s)
    last = torch.where(is_last, rows, n - 1).flip(0).cummin(0).values.flip(0)
    precision = (tp / (tp + fp).clamp(min=1)).gather(0, last)
    positives, negatives = pos.sum(0), neg.sum(0)
    ap = (pos * precision).sum(0) / positives.clamp(min=1)
    defined = ((positives > 0) & (negatives > 0)).to(torch.float64)
    return (ap * defined).sum() / defined.sum()  # 0 / 0 = NaN when none is defined


# --------------------------------------------------------------------------- #
# the task                                                                    #
# --------------------------------------------------------------------------- #


class GnnTask(Task):
    def __init__(self, size: Size, device: torch.device, data_dir: Path, seed: int, *, synthetic: bool = False) -> None:
        super().__init__(size, device, Path(data_dir), seed)
        if size.name not in SETTINGS:
            raise ValueError(f"gnn has no size {size.name!r} (have: {', '.join(SETTINGS)})")
        self.settings = SETTINGS[size.name]
        if synthetic:
            splits, self.data_sha256 = self._synthetic_splits(), None
        else:
            splits = data.molgen_splits() if size.name == "tiny" else data.load_pcba(self.data_dir)
            self.data_sha256 = arrays_digest(
                {f"{name}.{f.name}": getattr(graphs, f.name) for name, graphs in splits.items() for f in dataclasses.fields(graphs)}
            )
        self.stores = {name: GraphStore(graphs, device) for name, graphs in splits.items()}
        self.train = self.stores["train"]
        self.steps_per_epoch = self.train.num_graphs // size.batch_size
        if self.steps_per_epoch == 0:
            # A user's batch_size=N (config, a batch study) meets this before anything is written: one line.
            raise UserInputError(f"gnn {size.name}: batch_size {size.batch_size} "
                                 f"exceeds the {self.train.num_graphs} training graphs")
        # Evaluation sets in their stored order, laid out once.
        self.eval_plans = {
            name: store.plan(torch.arange(store.num_graphs)) for name, store in self.stores.items() if name != "train"
        }
        self._generator = torch.Generator()  # CPU: the host must know batch sizes
        self._epoch = -1
        self._plan: Plan | None = None

    def _synthetic_splits(self) -> dict[str, data.GraphSet]:
        """Random graphs of molpcba's sizes and feature shapes (data.synthetic_graphs),
        as many as its splits hold (off a GPU, a couple of batches). Made on the
        host, like every split here: batch bounds come from per-graph sizes the
        host keeps; the stores then live on the device."""
        if self.size.name == "tiny":
            raise ValueError("gnn tiny's molecules are generated already: synthetic data is for the full size")
        real, tasks = data.PCBA_SPLIT_SIZES, self.settings.model.num_outputs
        splits = {}
        for name, n in real.items():
            n = synthetic.count(n, self.device, self.size.batch_size)
            splits[name] = data.synthetic_graphs(n, derive_seed(self.seed, "synthetic", name), num_tasks=tasks)
        return splits

    def build_model(self, norm: NormFactory) -> nn.Module:
        config = self.settings.model  # AlgoPerf's dropout_rate replaces the size's own (0.1 full, 0 tiny)
        config = dataclasses.replace(config, dropout=self.hyperparameters.get("dropout_rate", config.dropout))
        return GNN(config, norm).to(self.device)

    def param_types(self, model: nn.Module) -> dict[str, ParamType]:
        return infer_param_types(model, head=HEAD)

    # -- training batches (timed) ------------------------------------------- #

    def next_batch(self, step: int) -> GraphBatch:
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:  # a new epoch's order, a function of (seed, epoch)
            self._generator.manual_seed(derive_seed(self.seed, "permutation", epoch))
            order = torch.randperm(self.train.num_graphs, generator=self._generator)
            self._plan = self.train.plan(order[: self.steps_per_epoch * self.size.batch_size])
            self._epoch = epoch
        b = self.size.batch_size
        return self._plan.batch(index * b, (index + 1) * b)

    def outputs(self, model: nn.Module, batch: GraphBatch) -> Outputs:
        return Outputs(model(batch), batch.y, batch.mask, loss="sigmoid")

    def loss(self, model: nn.Module, batch: GraphBatch) -> torch.Tensor:
        return mean_loss(self.outputs(model, batch), self.hyperparameters.get("label_smoothing", 0.0))

    # -- evaluation (untimed; the runner calls it under no_grad in eval mode) #

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        metrics = {}
        size = self.settings.eval_batch_size
        for name, plan in self.eval_plans.items():
            logits, loss_sum = [], torch.zeros((), device=self.device)
            for start in range(0, len(plan), size):
                batch = plan.batch(start, min(start + size, len(plan)))
                out = model(batch).float()
                loss_sum += masked_bce(out, batch.y, batch.mask, reduction="sum")
                logits.append(out)
            store = self.stores[name]
            # AlgoPerf ranks sigmoid probabilities (float32 ties included).
            mean_ap = mean_average_precision(torch.sigmoid(torch.cat(logits)), store.y, store.mask)
            metrics[f"{name}/mean_average_precision"] = mean_ap.item()
            metrics[f"{name}/loss"] = (loss_sum / store.mask.sum().clamp(min=1)).item()
        return metrics
