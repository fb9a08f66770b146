"""Tests for the gnn workload: generated molecules, the OGB raw-file loader on
fake files in OGB's format, the GraphNetwork, batching, mean average precision,
and determinism of short runs."""

from __future__ import annotations

import dataclasses
import gzip
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.api import ParamType
from harness.run.records import read_metrics
from harness.run import execute, plan_run
from workloads.gnn import FULL, TINY, WORKLOAD, data
from workloads.gnn.model import GNN, GNNConfig
from workloads.gnn.task import GnnTask, GraphStore, masked_bce, mean_average_precision

REPO = Path(__file__).resolve().parents[1]
LN = lambda site, c: nn.LayerNorm(c)  # noqa: E731
SMALL = GNNConfig(node_features=data.NODE_FEATURES, edge_features=data.EDGE_FEATURES, num_outputs=len(data.TASKS),
                  latent_dim=16, hidden_dims=(16,), steps=2, dropout=0.0)


# --------------------------------------------------------------------------- #
# Fake ogbg-molpcba raw files in OGB's on-disk format                         #
# --------------------------------------------------------------------------- #


def _write_csv_gz(path: Path, rows) -> None:
    """Headerless csv, gzip-compressed, as OGB writes it; NaN as an empty field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows:
        row = np.atleast_1d(row)
        lines.append(",".join("" if (isinstance(v, float) and np.isnan(v)) else str(v) for v in row.tolist()))
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def write_fake_pcba(data_dir: Path, num_tasks: int = 4, seed: int = 0):
    """Six small molecules (node ids local to each graph, one direction per
    bond) in ``<data_dir>/ogbg_molpcba/pcba``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    num_nodes = np.array([3, 5, 2, 4, 6, 3])
    edges, num_edges = [], []
    for n in num_nodes:
        chain = [(i, i + 1) for i in range(n - 1)]  # a path, plus a ring bond in the bigger ones
        if n >= 4:
            chain.append((0, n - 1))
        edges += chain
        num_edges.append(len(chain))
    node_feat = rng.integers(0, 5, size=(num_nodes.sum(), 9))
    edge_feat = rng.integers(0, 3, size=(len(edges), 3))
    labels = rng.integers(0, 2, size=(len(num_nodes), num_tasks)).astype(float)
    labels[rng.random(labels.shape) < 0.3] = np.nan
    root = data.pcba_root(data_dir)
    raw = root / "raw"
    _write_csv_gz(raw / "edge.csv.gz", np.array(edges))
    _write_csv_gz(raw / "edge-feat.csv.gz", edge_feat)
    _write_csv_gz(raw / "node-feat.csv.gz", node_feat)
    _write_csv_gz(raw / "graph-label.csv.gz", labels)
    _write_csv_gz(raw / "num-node-list.csv.gz", num_nodes)
    _write_csv_gz(raw / "num-edge-list.csv.gz", np.array(num_edges))
    splits = {"train": [0, 2, 4, 5], "valid": [1], "test": [3]}
    for name, ids in splits.items():
        _write_csv_gz(root / "split" / "scaffold" / f"{name}.csv.gz", np.array(ids))
    return dict(num_nodes=num_nodes, num_edges=np.array(num_edges), edges=np.array(edges), node_feat=node_feat,
                edge_feat=edge_feat, labels=labels, splits=splits)


def test_import_does_not_load_torch():
    code = "import sys, workloads.gnn; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_workload_info():
    assert FULL.batch_size == 512 and FULL.step_hint == 80_000 and FULL.eval_every_s == 240
    assert FULL.target.validation == 0.28098 and FULL.target.test == 0.268729 and FULL.max_runtime_s == 12011
    assert TINY.device == "cpu" and TINY.eval_every_steps and "seed" in TINY.calibration
    assert WORKLOAD.norm_sites == ("node",) and WORKLOAD.default_optimizer == "nadamw"


# --------------------------------------------------------------------------- #
# full data: the OGB loader                                                   #
# --------------------------------------------------------------------------- #


def test_load_fake_pcba(tmp_path):
    written = write_fake_pcba(tmp_path)
    splits = data.load_pcba(tmp_path, num_tasks=4)
    assert set(splits) == {"train", "validation", "test"}
    train = splits["train"]
    assert train.num_graphs == 4 and train.num_nodes.tolist() == [3, 2, 6, 3]
    # Graph 4 (the third training graph): its rows, in file order.
    node_ptr = np.concatenate([[0], np.cumsum(written["num_nodes"])])
    edge_ptr = np.concatenate([[0], np.cumsum(written["num_edges"])])
    t_node = np.concatenate([[0], np.cumsum(train.num_nodes)])
    t_edge = np.concatenate([[0], np.cumsum(train.num_edges)])
    assert np.array_equal(train.node_feat[t_node[2]:t_node[3]], written["node_feat"][node_ptr[4]:node_ptr[5]])
    assert np.array_equal(train.edge_index[t_edge[2]:t_edge[3]], written["edges"][edge_ptr[4]:edge_ptr[5]])
    assert np.array_equal(train.edge_feat[t_edge[2]:t_edge[3]], written["edge_feat"][edge_ptr[4]:edge_ptr[5]])
    assert np.array_equal(splits["test"].labels, written["labels"][[3]], equal_nan=True)
    assert np.isnan(np.concatenate([s.labels for s in splits.values()])).any()  # empty field -> NaN
    assert train.node_feat.dtype == np.float32 and train.edge_index.dtype == np.int64


def test_missing_pcba_file_says_how_to_get_it(tmp_path):
    write_fake_pcba(tmp_path)
    (data.pcba_root(tmp_path) / "raw" / "edge-feat.csv.gz").unlink()
    with pytest.raises(FileNotFoundError) as err:
        data.load_pcba(tmp_path, num_tasks=4)
    assert "bench data prepare gnn" in str(err.value) and "edge-feat.csv.gz" in str(err.value)


@pytest.mark.parametrize("damage", ["not_gzip", "edge_out_of_graph", "count_mismatch", "split_overlap", "bad_label"])
def test_corrupt_pcba_is_a_clear_error(tmp_path, damage):
    write_fake_pcba(tmp_path)
    root = data.pcba_root(tmp_path)
    if damage == "not_gzip":
        (root / "raw" / "node-feat.csv.gz").write_bytes(b"this is not gzip")
    elif damage == "edge_out_of_graph":
        _write_csv_gz(root / "raw" / "edge.csv.gz", np.array([(0, 7)] * 19))  # graph 0 has 3 nodes
    elif damage == "count_mismatch":
        _write_csv_gz(root / "raw" / "num-node-list.csv.gz", np.array([3, 5, 2, 4, 6, 4]))
    elif damage == "split_overlap":
        _write_csv_gz(root / "split" / "scaffold" / "test.csv.gz", np.array([0]))
    elif damage == "bad_label":
        _write_csv_gz(root / "raw" / "graph-label.csv.gz", np.full((6, 4), 2.0))
    with pytest.raises(ValueError) as err:
        data.load_pcba(tmp_path, num_tasks=4)
    assert str(root) in str(err.value)


def test_prepare_unpacks_ogb_zip(tmp_path):
    source = tmp_path / "source"
    write_fake_pcba(source)
    archive = tmp_path / "pcba.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in data.pcba_root(source).rglob("*"):
            if f.is_file():
                z.write(f, Path("pcba") / f.relative_to(data.pcba_root(source)))
    target = tmp_path / "data"
    root = data.prepare(target, url=archive.as_uri())
    assert root == data.pcba_root(target)
    assert data.load_pcba(target, num_tasks=4)["train"].num_graphs == 4
    assert [p.name for p in (target / data.PCBA_DIR).iterdir()] == ["pcba"]  # no temp dirs left
    assert data.prepare(target, url="http://127.0.0.1:9/never-fetched") == root  # idempotent


def test_prepare_offline_explains_manual_placement(tmp_path):
    with pytest.raises(RuntimeError) as err:
        data.prepare(tmp_path, url="http://127.0.0.1:9/pcba.zip")
    assert "pcba.zip" in str(err.value) and str(tmp_path / data.PCBA_DIR) in str(err.value)
    assert not data.pcba_root(tmp_path).exists()


# --------------------------------------------------------------------------- #
# tiny data                                                                   #
# --------------------------------------------------------------------------- #


def test_generated_molecules_deterministic_and_valid():
    a, b = data.generate_molecules(60, seed=5), data.generate_molecules(60, seed=5)
    for field in dataclasses.fields(a):
        assert np.array_equal(getattr(a, field.name), getattr(b, field.name), equal_nan=True)
    a.validate("generated")
    assert a.labels.shape == (60, len(data.TASKS))
    assert not np.array_equal(data.generate_molecules(60, seed=6).num_nodes, a.num_nodes)
    # Valence: no atom has more bonds than its element allows (aromatic counts 1).
    order = data.BOND_ORDER[a.edge_feat[:, :4].argmax(1)]
    node_ptr = np.concatenate([[0], np.cumsum(a.num_nodes)[:-1]])
    owner = np.repeat(node_ptr, a.num_edges)
    used = np.zeros(len(a.node_feat), dtype=np.int64)
    np.add.at(used, a.edge_index[:, 0] + owner, order)
    np.add.at(used, a.edge_index[:, 1] + owner, order)
    assert (used <= data.VALENCE[a.node_feat[:, :6].argmax(1)]).all()


def test_generated_labels_are_balanced_enough():
    splits = data.molgen_splits()
    assert {k: v.num_graphs for k, v in splits.items()} == data.MOLGEN_SPLITS
    y = splits["train"].labels
    missing = np.isnan(y).mean()
    assert 0.07 < missing < 0.13
    rates = np.nanmean(y, axis=0)
    assert (rates > 0.08).all() and (rates < 0.8).all(), dict(zip(data.TASKS, rates.round(3)))


# --------------------------------------------------------------------------- #
# metric and loss                                                             #
# --------------------------------------------------------------------------- #


def _ap(scores, labels, mask=None):
    s = torch.tensor(scores, dtype=torch.float32)[:, None]
    y = torch.tensor(labels, dtype=torch.float32)[:, None]
    m = torch.ones_like(y, dtype=torch.bool) if mask is None else torch.tensor(mask)[:, None]
    return mean_average_precision(s, y, m).item()


def test_average_precision_hand_worked():
    # Ranked 1 0 1 0: precision at the positives 1/1 and 2/3 -> (1 + 2/3) / 2.
    assert _ap([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # A perfect ranking, and the worst one (positives last: 1/3 and 2/4).
    assert _ap([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert _ap([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == pytest.approx((1 / 3 + 2 / 4) / 2)
    # Ties form one threshold (scikit-learn's average_precision_score): the
    # tied pair {1, 0} at 0.8 counts as precision 2/3 for its positive.
    assert _ap([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert _ap([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0]) == pytest.approx(0.25)
    # Missing labels are ignored: the masked-out positive at the top changes nothing.
    assert _ap([0.95, 0.9, 0.8, 0.7, 0.6], [1, 1, 0, 1, 0], [False, True, True, True, True]) == pytest.approx(5 / 6)


def test_mean_average_precision_skips_undefined_tasks():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.7, 0.6, 0.5]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.ones_like(labels, dtype=torch.bool)
    # Task 0: ranked 1 0 0 -> AP 1. Task 1: ranked 1(0.8) 0(0.6) 1(0.1) -> (1 + 2/3)/2.
    # Task 2 has no positive: left out of the mean (OGB's rule).
    assert mean_average_precision(scores, labels, mask).item() == pytest.approx((1 + 5 / 6) / 2)
    mask[:, :2] = False
    assert np.isnan(mean_average_precision(scores, labels, mask).item())


def test_masked_bce_ignores_missing():
    logits = torch.tensor([[0.0, 5.0], [2.0, -1.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[True, False], [True, True]])
    expected = (np.log(2) + np.log1p(np.exp(2.0)) + np.log1p(np.exp(-1.0))) / 3
    assert masked_bce(logits, y, mask).item() == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- #
# model                                                                       #
# --------------------------------------------------------------------------- #


def _store():
    return GraphStore(data.generate_molecules(12, seed=1), torch.device("cpu"))


def test_model_forward_backward_and_norm_sites():
    store = _store()
    batch = store.plan(torch.arange(12)).batch(0, 5)
    calls = []

    def counting(site, c):
        calls.append((site, c))
        return nn.LayerNorm(c)

    torch.manual_seed(0)
    model = GNN(SMALL, counting)
    assert calls == [("node", 16)] * (3 * SMALL.steps)  # edge, node and global MLP per step
    assert sum(isinstance(m, nn.LayerNorm) for m in model.modules()) == 3 * SMALL.steps
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 3 * SMALL.steps  # modules, swappable
    logits = model(batch)
    assert logits.shape == (5, len(data.TASKS))
    masked_bce(logits, batch.y, batch.mask).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # BatchNorm also fits every site: (rows, features).
    GNN(SMALL, lambda site, c: nn.BatchNorm1d(c))(batch).sum().backward()


def test_algoperf_model_size():
    model = GNN(GNNConfig(), LN)
    assert sum(p.numel() for p in model.parameters()) == 3_554_176  # AlgoPerf's ogbg GNN
    assert len(model.layers) == 5


def test_batch_matches_per_graph_construction():
    """A planned batch equals the graphs glued together by hand."""
    graphs = data.generate_molecules(12, seed=1)
    store = GraphStore(graphs, torch.device("cpu"))
    order = torch.tensor([7, 2, 11, 0, 5])
    batch = store.plan(order).batch(1, 4)  # graphs 2, 11, 0
    node_ptr = np.concatenate([[0], np.cumsum(graphs.num_nodes)])
    edge_ptr = np.concatenate([[0], np.cumsum(graphs.num_edges)])
    xs, edges, offset = [], [], 0
    for position, g in enumerate([2, 11, 0]):
        xs.append(graphs.node_feat[node_ptr[g]:node_ptr[g + 1]])
        e = graphs.edge_index[edge_ptr[g]:edge_ptr[g + 1]] + offset
        edges += [(int(s), int(r), position) for s, r in np.concatenate([e, e[:, ::-1]])]
        offset += graphs.num_nodes[g]
    assert torch.equal(batch.x, torch.from_numpy(np.concatenate(xs)))
    assert batch.num_nodes == offset and batch.num_graphs == 3
    got = sorted(zip(batch.edge_index[0].tolist(), batch.edge_index[1].tolist(), batch.edge_graph.tolist()))
    assert got == sorted(edges)
    assert batch.node_graph.tolist() == sum([[p] * int(graphs.num_nodes[g]) for p, g in enumerate([2, 11, 0])], [])
    expected_y = np.nan_to_num(graphs.labels[[2, 11, 0]])
    assert torch.equal(batch.y, torch.from_numpy(expected_y)) and torch.equal(batch.mask, torch.from_numpy(~np.isnan(graphs.labels[[2, 11, 0]])))


# --------------------------------------------------------------------------- #
# task                                                                        #
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tiny_task():
    return GnnTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)


def test_tiny_batches_are_deterministic(tiny_task):
    other = GnnTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)
    b5 = tiny_task.next_batch(5)
    late = tiny_task.next_batch(5 + 2 * tiny_task.steps_per_epoch)  # another epoch in between
    assert b5.num_graphs == TINY.batch_size and b5.y.shape == (TINY.batch_size, len(data.TASKS))
    assert b5.x.device.type == "cpu" and b5.x.dtype == torch.float32
    for again in (tiny_task.next_batch(5), other.next_batch(5)):  # any order, any instance
        assert all(torch.equal(u, v) if torch.is_tensor(u) else u == v for u, v in zip(again, b5))
    assert not torch.equal(tiny_task.next_batch(6).y, b5.y)
    assert not torch.equal(late.y, b5.y)
    reseeded = GnnTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=1)
    assert not torch.equal(reseeded.next_batch(5).y, b5.y)
    # An epoch visits every training graph at most once.
    seen = torch.cat([tiny_task._plan.order])
    assert len(torch.unique(seen)) == len(seen) == tiny_task.steps_per_epoch * TINY.batch_size


def test_tiny_loss_param_types_and_evaluate(tiny_task):
    torch.manual_seed(0)
    model = tiny_task.build_model(LN)
    loss = tiny_task.loss(model, tiny_task.next_batch(0))
    assert loss.ndim == 0 and 0.4 < loss.item() < 1.5  # ~ln 2 at initialization
    types = tiny_task.param_types(model)
    assert types["decoder.weight"] == ParamType.HEAD and types["layers.0.edge_mlp.1.weight"] == ParamType.NORM
    assert types["layers.0.edge_mlp.0.weight"] == ParamType.MATRIX and types["node_embedder.bias"] == ParamType.BIAS
    assert set(types) == {name for name, _ in model.named_parameters()}
    model.eval()
    with torch.no_grad():
        first, second = tiny_task.evaluate(model), tiny_task.evaluate(model)
    assert first == second
    assert set(first) == {f"{s}/{m}" for s in ("validation", "test") for m in ("mean_average_precision", "loss")}
    assert 0.0 < first["validation/mean_average_precision"] < 1.0


def test_full_task_on_fake_files(tmp_path):
    write_fake_pcba(tmp_path, num_tasks=128)
    size = dataclasses.replace(FULL, batch_size=2, device="cpu")
    task = GnnTask(size, torch.device("cpu"), tmp_path, seed=0)
    assert task.steps_per_epoch == 2
    torch.manual_seed(0)
    model = task.build_model(LN)
    batch = task.next_batch(3)
    assert batch.x.shape[1] == 9 and batch.edge_attr.shape[1] == 3 and batch.num_graphs == 2
    task.loss(model, batch).backward()
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model)
    assert set(metrics) == {f"{s}/{m}" for s in ("validation", "test") for m in ("mean_average_precision", "loss")}


def test_same_seed_same_metrics(tmp_path):
    def run(seed, name):
        # Two CPU threads, as a default run: with advanced indexing in the model
        # (index_put_ backward) this test failed from thread races.
        plan = plan_run("gnn", "adamw", size="tiny", seed=seed, output=tmp_path / name,
                        overrides=["budget.max_steps=4", "eval.every_steps=2", "budget.max_runtime_s=600", "threads=2"])
        result = execute(plan)
        assert result.status == "budget_exhausted", result.record["reason"]
        rows = read_metrics(result.run_dir)
        return [{k: v for k, v in r.items() if k not in ("timed_s", "wall_s")} for r in rows]

    a, b = run(7, "a"), run(7, "b")
    assert len(a) == 2 and a == b
    assert run(8, "c") != a
    json.dumps(a, allow_nan=False)
