"""Data for the gnn workload: generated molecules (tiny) and ogbg-molpcba (full).

Both sizes hand the task the same thing, a :class:`GraphSet` per split: every
graph of the split concatenated, in the layout of OGB's raw files --

    node_feat   float32 (total_nodes, F_node)   one row per atom
    edge_index  int64   (total_edges, 2)        one row per bond, *one* direction,
                                                node ids local to their graph
    edge_feat   float32 (total_edges, F_edge)
    num_nodes   int64   (num_graphs,)           graph g owns the next num_nodes[g] rows
    num_edges   int64   (num_graphs,)
    labels      float32 (num_graphs, T)         1 / 0, NaN where a label is missing

tiny -- ``molgen v1``: molecule-like graphs with a multi-task label set
    Random molecules built the way a chemist would draw them: a tree of heavy
    atoms (C, N, O, S, F, Cl) that respects valence (F and Cl are leaves), 0-3
    ring closures of 3-6 atoms on atom-disjoint tree paths (so the simple cycles
    of the graph are exactly these rings), rings of 5-6 atoms made aromatic
    with some probability, then double and triple bonds where valence allows.
    Node features are OGB-like one-hot codes (atom type, in ring, aromatic);
    edge features the bond type and whether the bond is in a ring.

    The 16 labels (``TASKS``) are structural facts of each molecule, like the
    bioassay outcomes of molpcba but computed exactly from the graph: counts
    (two halogens, exactly one ring, more N than O), one-bond motifs (carbonyl,
    halogen on an aromatic ring, a carbon carrying two heteroatoms, ...) and
    motifs reaching two or three bonds or along chains (S within 3 bonds of N,
    two halogens within 3 bonds, N and O exactly 3 bonds apart, a chain of five
    ring-free sp3 carbons, a ring-free chain of seven atoms). A message-passing
    network learns the counts and one-bond motifs in a few hundred steps and
    the far-reaching ones slowly, so mean average precision climbs steadily
    instead of jumping. As in molpcba, labels are missing at random (10%, NaN)
    and are ignored by the loss and the metric. Everything is regenerated in
    memory, identically every time, from fixed seeds (a few seconds: pure
    Python, ~0.5 ms a molecule; cached per process, and on disk as a verified
    copy by harness/common/datacache.py).

full -- ogbg-molpcba (Hu et al., Open Graph Benchmark, NeurIPS 2020)
    The raw csv.gz files of OGB's ``pcba.zip``, read with pandas exactly as
    ``ogb.io.read_graph_raw.read_csv_graph_raw`` and TFDS's ``ogbg_molpcba``
    builder (the source of AlgoPerf's pipeline) read them::

        <data_dir>/ogbg_molpcba/pcba/raw/edge.csv.gz            (E, 2) int, local node ids
                                         edge-feat.csv.gz       (E, 3) int
                                         node-feat.csv.gz       (N, 9) int
                                         graph-label.csv.gz     (G, 128) float, empty = NaN
                                         num-node-list.csv.gz   (G,) int
                                         num-edge-list.csv.gz   (G,) int
        <data_dir>/ogbg_molpcba/pcba/split/scaffold/{train,valid,test}.csv.gz   graph ids

    Every file is headerless; graphs are stored one after another. The scaffold
    split gives 350343 / 43793 / 43793 graphs. Features stay the raw integer
    codes as floats, as AlgoPerf feeds them to its linear embedders.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import tempfile
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.common.datacache import cached_arrays
from harness.common.files import download
from harness.errors import DataError, DatasetCorrupt, DatasetMissing, DownloadFailed  # noqa: F401  (this workload's data API)


@dataclass
class GraphSet:
    """One split: its graphs concatenated (see the module docstring)."""

    node_feat: np.ndarray
    edge_index: np.ndarray
    edge_feat: np.ndarray
    num_nodes: np.ndarray
    num_edges: np.ndarray
    labels: np.ndarray

    @property
    def num_graphs(self) -> int:
        return len(self.num_nodes)

    def validate(self, name: str = "graph set") -> "GraphSet":
        """Raise DatasetCorrupt unless the arrays describe well-formed graphs."""
        g = self.num_graphs

        def fail(what: str):
            raise DatasetCorrupt(f"{name}: {what}")

        if self.num_edges.shape != (g,) or self.labels.ndim != 2 or len(self.labels) != g:
            fail(f"{g} graphs in num-node-list but {len(self.num_edges)} in num-edge-list and {len(self.labels)} label rows")
        if (self.num_nodes < 1).any() or (self.num_edges < 0).any():
            fail("every graph needs at least one node and a non-negative edge count")
        if len(self.node_feat) != self.num_nodes.sum():
            fail(f"num-node-list sums to {self.num_nodes.sum()} nodes but there are {len(self.node_feat)} node feature rows")
        if len(self.edge_index) != self.num_edges.sum() or len(self.edge_feat) != len(self.edge_index):
            fail(f"num-edge-list sums to {self.num_edges.sum()} edges but there are {len(self.edge_index)} edges "
                 f"and {len(self.edge_feat)} edge feature rows")
        if self.edge_index.ndim != 2 or self.edge_index.shape[1] != 2:
            fail(f"edge list must have 2 columns, has shape {self.edge_index.shape}")
        # Edge endpoints are local to their graph: 0 <= id < num_nodes of that graph.
        owner_nodes = np.repeat(self.num_nodes, self.num_edges)
        if len(self.edge_index) and ((self.edge_index < 0).any() or (self.edge_index >= owner_nodes[:, None]).any()):
            fail("an edge points outside its graph (node ids must be local, 0 <= id < num_nodes)")
        finite = self.labels[~np.isnan(self.labels)]
        if not np.isin(finite, (0.0, 1.0)).all():
            fail("labels must be 0, 1 or missing (NaN)")
        return self

    def subset(self, graph_ids: np.ndarray) -> "GraphSet":
        """The graphs ``graph_ids`` (in that order) as a new set."""
        graph_ids = np.asarray(graph_ids, dtype=np.int64)
        node_ptr = np.concatenate([[0], np.cumsum(self.num_nodes)])
        edge_ptr = np.concatenate([[0], np.cumsum(self.num_edges)])
        node_rows = _ranges(node_ptr[graph_ids], self.num_nodes[graph_ids])
        edge_rows = _ranges(edge_ptr[graph_ids], self.num_edges[graph_ids])
        return GraphSet(
            node_feat=self.node_feat[node_rows],
            edge_index=self.edge_index[edge_rows],
            edge_feat=self.edge_feat[edge_rows],
            num_nodes=self.num_nodes[graph_ids],
            num_edges=self.num_edges[graph_ids],
            labels=self.labels[graph_ids],
        )


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), vectorized."""
    total = int(counts.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return offsets + np.arange(total)


# --------------------------------------------------------------------------- #
# tiny: generated molecules                                                   #
# --------------------------------------------------------------------------- #

MOLGEN_VERSION = 1  # bump when generation or labels change: tiny targets are calibrated on it
MOLGEN_SEED = 20261123
MOLGEN_SPLITS = {"train": 4_000, "validation": 1_000, "test": 500}
MISSING_LABEL_RATE = 0.10

ATOMS = ("C", "N", "O", "S", "F", "Cl")
ATOM_PROBS = (0.62, 0.14, 0.12, 0.04, 0.04, 0.04)
VALENCE = np.array([4, 3, 2, 2, 1, 1])
C, N, O, S, F, CL = range(6)
HALOGENS = (F, CL)
HETERO = (N, O, S)
SINGLE, DOUBLE, TRIPLE, AROMATIC = range(4)
BOND_ORDER = np.array([1, 2, 3, 1])  # valence an aromatic bond uses (kept simple: 1)
NODE_FEATURES = len(ATOMS) + 2  # one-hot atom type, in ring, aromatic
EDGE_FEATURES = 4 + 1  # one-hot bond type, in ring
MIN_ATOMS, MAX_ATOMS = 10, 26
RING_SIZES, RING_PROBS = (3, 4, 5, 6), (0.1, 0.1, 0.35, 0.45)
RING_COUNT_PROBS = (0.2, 0.35, 0.3, 0.15)  # 0, 1, 2, 3 ring closures
RING_ATTEMPTS = 4
CHAIN_PROB = 0.55  # attach the next atom to the previous one
AROMATIC_PROB = 0.6  # a 5- or 6-ring is aromatic
DOUBLE_PROB, DOUBLE_PROB_HETERO = 0.2, 0.6  # per eligible bond: C-C, or with N / O / S
TRIPLE_PROB, TRIPLE_PROB_HETERO = 0.1, 0.4

TASKS = (  # easy (one atom or one bond, or a count) first, then farther-reaching motifs
    "carbonyl",  # C=O
    "two_halogens",  # >= 2 of F, Cl
    "aromatic_heteroatom",  # N, O or S in an aromatic ring
    "more_n_than_o",
    "exactly_one_ring",
    "quaternary_carbon",  # C bonded to 4 heavy atoms
    "halogen_on_aromatic",  # F / Cl bonded to an aromatic atom
    "geminal_heteroatoms",  # a carbon bonded to >= 2 of N, O, S
    "exocyclic_double_bond",  # a ring atom bonded to a ring-free atom that has a double bond
    "halogen_near_ring",  # F / Cl at most 2 bonds from a ring atom
    "two_aromatic_substituents",  # >= 2 aromatic atoms carrying a ring-free neighbour
    "s_near_n",  # S and N at most 3 bonds apart
    "halogens_near",  # two halogens at most 3 bonds apart
    "n_o_three_bonds",  # N and O exactly 3 bonds apart (shortest path)
    "carbon_chain_5",  # a path of 5 ring-free carbons with only single bonds
    "long_chain_7",  # a path of 7 ring-free atoms
)


class _Draws:
    """Uniform numbers drawn from a numpy generator in blocks: one Python-level
    generator call per block instead of per decision keeps generation fast, and
    the stream stays a pure function of the generator's seed."""

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16):
        self.rng, self.block = rng, block
        self.values, self.i = rng.random(block).tolist(), 0

    def uniform(self) -> float:
        if self.i == self.block:
            self.values, self.i = self.rng.random(self.block).tolist(), 0
        self.i += 1
        return self.values[self.i - 1]

    def below(self, n: int) -> int:
        return min(int(self.uniform() * n), n - 1)

    def pick(self, cumulative: tuple[float, ...]) -> int:
        """An index drawn with the probabilities whose running sums are ``cumulative``."""
        u = self.uniform() * cumulative[-1]
        return next((k for k, c in enumerate(cumulative) if u < c), len(cumulative) - 1)


def _cumulative(probs):
    return tuple(float(x) for x in np.cumsum(probs))


ATOM_CUM = _cumulative(ATOM_PROBS)
RING_SIZE_CUM = _cumulative(RING_PROBS)
RING_COUNT_CUM = _cumulative(RING_COUNT_PROBS)


class _Molecule:
    """One generated molecule under construction (small: plain Python lists)."""

    def __init__(self, draws: _Draws):
        n = MIN_ATOMS + draws.below(MAX_ATOMS - MIN_ATOMS + 1)
        self.atoms = [C] + [draws.pick(ATOM_CUM) for _ in range(n - 1)]  # grow from a carbon
        self.free = [int(VALENCE[a]) for a in self.atoms]  # valence not yet used by bonds
        self.adj: list[dict[int, int]] = [{} for _ in range(n)]  # neighbour -> bond type
        self.in_ring = [False] * n
        self.aromatic = [False] * n
        self.rings: list[list[int]] = []
        self._grow_tree(draws)
        self._close_rings(draws)
        self._add_multiple_bonds(draws)

    def _bond(self, i: int, j: int, kind: int = SINGLE) -> None:
        extra = int(BOND_ORDER[kind]) - (int(BOND_ORDER[self.adj[i][j]]) if j in self.adj[i] else 0)
        self.free[i] -= extra
        self.free[j] -= extra
        self.adj[i][j] = kind
        self.adj[j][i] = kind

    def _truncate(self, n: int) -> None:
        for name in ("atoms", "free", "adj", "in_ring", "aromatic"):
            del getattr(self, name)[n:]

    def _grow_tree(self, draws) -> None:
        # Attach each atom to the previous one when it can (chains, as in real
        # molecules), otherwise to a random earlier atom with a free valence.
        for i in range(1, len(self.atoms)):
            if self.free[i - 1] > 0 and draws.uniform() < CHAIN_PROB:
                j = i - 1
            else:
                open_atoms = [k for k in range(i) if self.free[k] > 0]
                if not open_atoms:  # saturated: drop the remaining atoms
                    self._truncate(i)
                    return
                j = open_atoms[draws.below(len(open_atoms))]
            self._bond(i, j)

    def _paths_from(self, u: int, length: int) -> list[list[int]]:
        """Paths of ``length`` bonds from ``u`` through ring-free atoms (tree
        paths: ring closures join ring atoms only) ending at an atom that can
        take one more bond."""
        out, stack = [], [[u]]
        while stack:
            path = stack.pop()
            if len(path) == length + 1:
                if self.free[path[-1]] > 0:
                    out.append(path)
                continue
            for k in self.adj[path[-1]]:
                if not self.in_ring[k] and (len(path) < 2 or k != path[-2]):
                    stack.append(path + [k])
        return out

    def _close_rings(self, draws) -> None:
        for _ in range(draws.pick(RING_COUNT_CUM)):
            size = RING_SIZES[draws.pick(RING_SIZE_CUM)]
            starts = [u for u in range(len(self.atoms)) if self.free[u] > 0 and not self.in_ring[u]]
            candidates = []
            for _attempt in range(RING_ATTEMPTS):  # a random ring end, then a random path from it
                if not starts:
                    break
                candidates = self._paths_from(starts.pop(draws.below(len(starts))), size - 1)
                if candidates:
                    break
            if not candidates:
                continue
            # Atom-disjoint rings: the graph's simple cycles are exactly the rings.
            path = candidates[draws.below(len(candidates))]
            self._bond(path[0], path[-1])
            for k in path:
                self.in_ring[k] = True
            self.rings.append(path)
            if size >= 5 and draws.uniform() < AROMATIC_PROB:
                for a, b in zip(path, path[1:] + path[:1]):
                    self._bond(a, b, AROMATIC)
                for k in path:
                    self.aromatic[k] = True

    def _add_multiple_bonds(self, draws) -> None:
        for i in range(len(self.atoms)):
            for j, kind in list(self.adj[i].items()):
                if j < i or kind != SINGLE or (self.in_ring[i] and self.in_ring[j]):
                    continue
                free = min(self.free[i], self.free[j])
                hetero = self.atoms[i] != C or self.atoms[j] != C
                if free >= 2 and draws.uniform() < (TRIPLE_PROB_HETERO if hetero else TRIPLE_PROB):
                    self._bond(i, j, TRIPLE)
                elif free >= 1 and draws.uniform() < (DOUBLE_PROB_HETERO if hetero else DOUBLE_PROB):
                    self._bond(i, j, DOUBLE)

    # -- labels --------------------------------------------------------------- #

    def labels(self) -> list[bool]:
        """The TASKS, in order, from the finished graph (numpy on n x n matrices)."""
        n = len(self.atoms)
        atoms = np.array(self.atoms)
        ring = np.array(self.in_ring)
        aromatic = np.array(self.aromatic)
        bond = np.full((n, n), -1)  # bond type, -1 where no bond
        for i, nbrs in enumerate(self.adj):
            for j, kind in nbrs.items():
                bond[i, j] = kind
        adj = (bond >= 0).astype(np.int64)
        within2 = (adj + adj @ adj) > 0
        within3 = (adj + adj @ adj + adj @ adj @ adj) > 0
        np.fill_diagonal(within2, False)
        np.fill_diagonal(within3, False)
        exactly3 = within3 & ~within2 & ~(adj > 0)

        is_c, is_n, is_o, is_s = (atoms == C), (atoms == N), (atoms == O), (atoms == S)
        halogen = (atoms == F) | (atoms == CL)
        hetero = is_n | is_o | is_s
        degree = adj.sum(1)
        carbonyl_c = is_c & ((bond == DOUBLE) & is_o[None, :]).any(1)
        sp3_chain_c = is_c & ~ring & ((bond < 0) | (bond == SINGLE)).all(1)
        # Substituents of aromatic rings: ring-free atoms bonded to an aromatic atom.
        substituted = aromatic & ((adj > 0) & ~ring[None, :]).any(1)

        def pair(a, b, relation):  # an a-atom and a b-atom in relation
            return bool((relation[a] & b[None, :]).any())

        return [
            bool(carbonyl_c.any()),  # carbonyl
            int(halogen.sum()) >= 2,  # two_halogens
            bool((aromatic & hetero).any()),  # aromatic_heteroatom
            int(is_n.sum()) > int(is_o.sum()),  # more_n_than_o
            len(self.rings) == 1,  # exactly_one_ring
            bool((is_c & (degree == 4)).any()),  # quaternary_carbon
            pair(halogen, aromatic, adj > 0),  # halogen_on_aromatic
            bool((is_c & (((adj > 0) & hetero[None, :]).sum(1) >= 2)).any()),  # geminal_heteroatoms
            pair(ring, (bond == DOUBLE).any(1) & ~ring, adj > 0),  # exocyclic_double_bond
            pair(halogen, ring, within2),  # halogen_near_ring
            int(substituted.sum()) >= 2,  # two_aromatic_substituents
            pair(is_s, is_n, within3),  # s_near_n
            pair(halogen, halogen, within3),  # halogens_near
            pair(is_n, is_o, exactly3),  # n_o_three_bonds
            self._longest_path(sp3_chain_c) >= 5,  # carbon_chain_5
            self._longest_path(~ring) >= 7,  # long_chain_7
        ]

    def _longest_path(self, keep: np.ndarray) -> int:
        """Atoms on the longest path of the subgraph induced by ``keep``. Ring
        atoms are never kept here, so the subgraph is a forest and two sweeps of
        breadth-first search from any atom of a tree give its diameter."""
        best, seen = 0, np.zeros(len(keep), dtype=bool)
        for start in np.flatnonzero(keep):
            if seen[start]:
                continue
            far, _ = self._farthest(int(start), keep, seen)
            _, length = self._farthest(far, keep, seen)
            best = max(best, length + 1)
        return best

    def _farthest(self, start: int, keep, seen) -> tuple[int, int]:
        dist = {start: 0}
        queue = deque([start])
        while queue:
            i = queue.popleft()
            seen[i] = True
            for j in self.adj[i]:
                if keep[j] and j not in dist:
                    dist[j] = dist[i] + 1
                    queue.append(j)
        far = max(dist, key=dist.get)
        return far, dist[far]

    def arrays(self):
        n = len(self.atoms)
        node = np.zeros((n, NODE_FEATURES), dtype=np.float32)
        node[np.arange(n), self.atoms] = 1.0
        node[:, len(ATOMS)] = self.in_ring
        node[:, len(ATOMS) + 1] = self.aromatic
        edges = [(i, j, k) for i in range(n) for j, k in self.adj[i].items() if i < j]
        edge_index = np.array([(i, j) for i, j, _ in edges], dtype=np.int64).reshape(-1, 2)
        edge = np.zeros((len(edges), EDGE_FEATURES), dtype=np.float32)
        edge[np.arange(len(edges)), [k for _, _, k in edges]] = 1.0
        # Ring bonds: both atoms in the same ring, i.e. consecutive on a ring path.
        ring_bonds = {frozenset(p) for r in self.rings for p in zip(r, r[1:] + r[:1])}
        edge[:, 4] = [frozenset((i, j)) in ring_bonds for i, j, _ in edges]
        return node, edge_index, edge


def generate_molecules(num_graphs: int, seed: int) -> GraphSet:
    """``num_graphs`` random molecules and their labels, a pure function of ``seed``."""
    rng = np.random.default_rng(seed)
    draws = _Draws(rng)
    nodes, edge_indices, edges, num_nodes, num_edges, labels = [], [], [], [], [], []
    for _ in range(num_graphs):
        mol = _Molecule(draws)
        node, edge_index, edge = mol.arrays()
        nodes.append(node)
        edge_indices.append(edge_index)
        edges.append(edge)
        num_nodes.append(len(node))
        num_edges.append(len(edge_index))
        labels.append(mol.labels())
    y = np.array(labels, dtype=np.float32)
    y[rng.random(y.shape) < MISSING_LABEL_RATE] = np.nan
    return GraphSet(
        node_feat=np.concatenate(nodes),
        edge_index=np.concatenate(edge_indices),
        edge_feat=np.concatenate(edges),
        num_nodes=np.array(num_nodes, dtype=np.int64),
        num_edges=np.array(num_edges, dtype=np.int64),
        labels=y,
    )


@functools.lru_cache(maxsize=1)  # many trials in one process generate once (callers must not mutate)
def molgen_splits() -> dict[str, GraphSet]:
    """The tiny size's train / validation / test splits (~2 s to generate; a
    verified copy in the user cache, harness/common/datacache.py, loads in ~0.02 s).
    Each split has its own seed so changing one split's size leaves the others unchanged."""
    seeds = {split: MOLGEN_SEED + 1000 * MOLGEN_VERSION + i for i, split in enumerate(MOLGEN_SPLITS)}
    fields = [f.name for f in dataclasses.fields(GraphSet)]

    def generate() -> dict[str, np.ndarray]:
        arrays = {}
        for split, n in MOLGEN_SPLITS.items():
            graphs = generate_molecules(n, seed=seeds[split])
            arrays.update({f"{split}.{f}": getattr(graphs, f) for f in fields})
        return arrays

    params = {"version": MOLGEN_VERSION, "splits": MOLGEN_SPLITS, "seeds": seeds}
    arrays = cached_arrays("gnn-molgen", params, [__file__], generate)
    return {split: GraphSet(**{f: arrays[f"{split}.{f}"] for f in fields}) for split in MOLGEN_SPLITS}


# --------------------------------------------------------------------------- #
# full: ogbg-molpcba from OGB's raw files                                     #
# --------------------------------------------------------------------------- #

PCBA_URL = "https://snap.stanford.edu/ogb/data/graphproppred/csv_mol_download/pcba.zip"
PCBA_DIR = "ogbg_molpcba"  # under data_dir; the zip unpacks to PCBA_DIR/pcba/
PCBA_RAW_FILES = (
    "edge.csv.gz",
    "edge-feat.csv.gz",
    "node-feat.csv.gz",
    "graph-label.csv.gz",
    "num-node-list.csv.gz",
    "num-edge-list.csv.gz",
)
PCBA_SPLITS = {"train": "train", "validation": "valid", "test": "test"}  # ours -> OGB's file name
PCBA_NUM_TASKS = 128
PCBA_NODE_FEATURES = 9
PCBA_EDGE_FEATURES = 3
# OGB does not publish checksums of its zips; the loader checks structure instead.


def pcba_root(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / PCBA_DIR / "pcba"


def _read_csv(path: Path, dtype) -> np.ndarray:
    import pandas as pd

    if not path.is_file():
        raise DatasetMissing(
            f"ogbg-molpcba file {path} not found. Run `bench data prepare gnn` to download OGB's "
            f"pcba.zip, or unzip it from {PCBA_URL} so that {path.parent} holds the raw files."
        )
    try:
        values = pd.read_csv(path, compression="gzip", header=None).values
    except Exception as e:  # gzip / csv / decoding errors all mean a bad file
        raise DatasetCorrupt(f"{path}: not a readable gzip csv ({type(e).__name__}: {e})") from e
    try:
        return values.astype(dtype)
    except (TypeError, ValueError) as e:
        raise DatasetCorrupt(f"{path}: non-numeric values ({e})") from e


def _columns(values: np.ndarray, width: int, path: Path) -> np.ndarray:
    if values.ndim != 2 or values.shape[1] != width:
        raise DatasetCorrupt(f"{path}: expected {width} columns, found shape {values.shape}")
    return values


def load_pcba(
    data_dir: str | os.PathLike,
    num_tasks: int = PCBA_NUM_TASKS,
    node_features: int = PCBA_NODE_FEATURES,
    edge_features: int = PCBA_EDGE_FEATURES,
) -> dict[str, GraphSet]:
    """ogbg-molpcba's scaffold split as ``{"train", "validation", "test"}`` graph sets.

    The widths default to molpcba's (128 tasks, 9 node and 3 edge features);
    tests pass smaller fake files in the same format."""
    root = pcba_root(data_dir)
    raw = root / "raw"
    edge_index = _columns(_read_csv(raw / "edge.csv.gz", np.int64), 2, raw / "edge.csv.gz")
    edge_feat = _columns(_read_csv(raw / "edge-feat.csv.gz", np.float32), edge_features, raw / "edge-feat.csv.gz")
    node_feat = _columns(_read_csv(raw / "node-feat.csv.gz", np.float32), node_features, raw / "node-feat.csv.gz")
    labels = _columns(_read_csv(raw / "graph-label.csv.gz", np.float32), num_tasks, raw / "graph-label.csv.gz")
    num_nodes = _columns(_read_csv(raw / "num-node-list.csv.gz", np.int64), 1, raw / "num-node-list.csv.gz")[:, 0]
    num_edges = _columns(_read_csv(raw / "num-edge-list.csv.gz", np.int64), 1, raw / "num-edge-list.csv.gz")[:, 0]
    everything = GraphSet(node_feat, edge_index, edge_feat, num_nodes, num_edges, labels).validate(str(raw))

    splits, seen = {}, np.zeros(everything.num_graphs, dtype=bool)
    for ours, theirs in PCBA_SPLITS.items():
        path = root / "split" / "scaffold" / f"{theirs}.csv.gz"
        ids = _columns(_read_csv(path, np.int64), 1, path)[:, 0]
        if len(ids) == 0 or ids.min() < 0 or ids.max() >= everything.num_graphs:
            raise DatasetCorrupt(f"{path}: graph ids must lie in [0, {everything.num_graphs})")
        if seen[ids].any() or len(np.unique(ids)) != len(ids):
            raise DatasetCorrupt(f"{path}: graph ids repeat or overlap another split")
        seen[ids] = True
        splits[ours] = everything.subset(ids)
    return splits


# --------------------------------------------------------------------------- #
# synthetic: random graphs of ogbg-molpcba's shapes (bench run --synthetic-data) #
# --------------------------------------------------------------------------- #

PCBA_SPLIT_SIZES = {"train": 350_343, "validation": 43_793, "test": 43_793}
# OGB's atom and bond feature vectors (ogb.utils.features): categories per column.
PCBA_ATOM_CATEGORIES = (119, 5, 12, 12, 10, 6, 6, 2, 2)
PCBA_BOND_CATEGORIES = (5, 6, 2)
SYNTHETIC_ATOMS = (13, 40)  # uniform in [13, 40): mean 26 atoms, as molpcba's 26.0
SYNTHETIC_RINGS = (1, 5)  # bonds beyond a spanning tree, uniform in [1, 5): ~27.5 bonds (molpcba: 28.1)
SYNTHETIC_MISSING = 0.5  # share of labels missing (NaN)
SYNTHETIC_POSITIVE = 0.1  # share of present labels that are 1


def synthetic_graphs(num_graphs: int, seed: int, num_tasks: int = PCBA_NUM_TASKS) -> GraphSet:
    """``num_graphs`` random molecule-sized graphs with molpcba's feature shapes:
    a random spanning tree plus a few extra bonds each, integer atom and bond
    categories in OGB's ranges (float32, as the loader gives them), and labels
    of ``num_tasks`` tasks, some missing. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    num_nodes = rng.integers(*SYNTHETIC_ATOMS, size=num_graphs)
    rings = rng.integers(*SYNTHETIC_RINGS, size=num_graphs)
    # Tree bonds: local atom k >= 1 bonds to a uniformly chosen earlier atom.
    child = _ranges(np.ones(num_graphs, dtype=np.int64), num_nodes - 1)
    parent = np.floor(rng.random(len(child)) * child).astype(np.int64)
    # Ring bonds: two distinct atoms of the graph.
    ring_n = np.repeat(num_nodes, rings)
    a = np.floor(rng.random(len(ring_n)) * ring_n).astype(np.int64)
    b = (a + 1 + np.floor(rng.random(len(ring_n)) * (ring_n - 1)).astype(np.int64)) % ring_n
    owner = np.concatenate([np.repeat(np.arange(num_graphs), num_nodes - 1), np.repeat(np.arange(num_graphs), rings)])
    by_graph = np.argsort(owner, kind="stable")  # each graph's bonds together, graphs in order
    edge_index = np.stack([np.concatenate([parent, a]), np.concatenate([child, b])], axis=1)[by_graph]

    def categories(rows: int, sizes: tuple[int, ...]) -> np.ndarray:
        return np.floor(rng.random((rows, len(sizes)), dtype=np.float32) * np.array(sizes, dtype=np.float32))

    labels = (rng.random((num_graphs, num_tasks), dtype=np.float32) < SYNTHETIC_POSITIVE).astype(np.float32)
    labels[rng.random((num_graphs, num_tasks), dtype=np.float32) < SYNTHETIC_MISSING] = np.nan
    return GraphSet(
        node_feat=categories(int(num_nodes.sum()), PCBA_ATOM_CATEGORIES),
        edge_index=edge_index,
        edge_feat=categories(len(edge_index), PCBA_BOND_CATEGORIES),
        num_nodes=num_nodes.astype(np.int64),
        num_edges=(num_nodes - 1 + rings).astype(np.int64),
        labels=labels,
    )


def prepare(data_dir: str | os.PathLike, url: str = PCBA_URL) -> Path:
    """Download OGB's pcba.zip and unpack it to ``<data_dir>/ogbg_molpcba/pcba``
    (what ``bench data prepare gnn`` runs). Idempotent: a complete unpacked
    dataset is kept. The zip is unpacked into a temporary directory and moved
    into place only once every raw file is there."""
    root = pcba_root(data_dir)
    if all((root / "raw" / f).is_file() for f in PCBA_RAW_FILES):
        return root
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=parent, prefix=".pcba-download-"))
    try:
        archive = download(url, workdir / "pcba.zip", offline_hint=(
            f"Without internet access, fetch pcba.zip on another machine and unzip it into {parent} "
            f"(giving {root}/raw/...); then run again."))
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(workdir / "unpacked")
        except zipfile.BadZipFile as e:
            raise DatasetCorrupt(f"{url}: the download is not a zip archive ({e})") from e
        unpacked = workdir / "unpacked" / "pcba"
        missing = [f for f in PCBA_RAW_FILES if not (unpacked / "raw" / f).is_file()]
        if missing:
            raise DatasetCorrupt(f"{url}: the archive lacks pcba/raw/{', '.join(missing)}")
        if root.exists():
            shutil.rmtree(root)
        os.replace(unpacked, root)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return root
