"""Data for the gpt workload: a shipped character corpus (tiny) and FineWeb GPT-2 token shards (full).

tiny -- CPython docstrings, character level
    ``tiny_corpus.txt`` (768 KiB, made once by ``make_corpus.py`` from the
    standard library's docstrings; PSF License) ships in the repository and is
    checked against ``TINY_CORPUS_SHA256`` before use. Its alphabet is the 95
    printable ASCII characters plus newline: token id 0 is ``"\\n"``, ids 1-95
    are ``" "`` .. ``"~"``. Split into contiguous chunks: the first 90% of the
    text trains, the next 5% validates, the last 5% tests.

full -- FineWeb 10B tokens, GPT-2 BPE, modded-nanogpt's shards
    The ``.bin`` shards of modded-nanogpt (github.com/KellerJordan/modded-nanogpt,
    ``data/cached_fineweb10B.py``; Hugging Face dataset ``kjj0/fineweb10B-gpt2``):
    ``fineweb_train_000001.bin`` .. ``fineweb_train_000103.bin`` (~100M tokens
    each) and ``fineweb_val_000000.bin`` (100M tokens), under
    ``<data_dir>/fineweb10B/``. Each file is::

        header  256 x int32 (little-endian): [0] magic 20240520, [1] version 1,
                [2] number of tokens N, the rest zero
        tokens  N x uint16 (little-endian) GPT-2 token ids

    so its size is exactly 1024 + 2 N bytes. Shards are memory-mapped with
    numpy; nothing is read until the task copies the tokens it uses.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from harness.common.files import download
from harness.errors import DataError, DatasetCorrupt, DatasetMissing, DownloadFailed  # noqa: F401  (this workload's data API)


# --------------------------------------------------------------------------- #
# tiny: the shipped character corpus                                          #
# --------------------------------------------------------------------------- #

TINY_CORPUS = Path(__file__).with_name("tiny_corpus.txt")
TINY_CORPUS_SHA256 = "4ce54face3842f5d017f30e2e162b9008cc6e9f50c97a8fdb3459c4224882879"
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # id = position in this string
VOCAB_SIZE = len(ALPHABET)  # 96
SPLIT_FRACTIONS = {"train": 0.90, "validation": 0.05, "test": 0.05}


def encode(text: str) -> np.ndarray:
    """Token ids (uint8) of ``text``; every character must be in ALPHABET."""
    table = np.full(256, 255, dtype=np.uint8)
    table[np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)] = np.arange(VOCAB_SIZE, dtype=np.uint8)
    bad = sorted(set(text) - set(ALPHABET))
    if bad:
        raise DatasetCorrupt(f"characters outside the tiny alphabet: {bad[:20]!r}")
    return table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]


def decode(ids) -> str:
    return "".join(ALPHABET[int(i)] for i in ids)


@functools.lru_cache(maxsize=1)  # many trials in one process read once (callers must not mutate)
def tiny_splits(path: str | os.PathLike = TINY_CORPUS, sha256: str = TINY_CORPUS_SHA256) -> dict[str, np.ndarray]:
    """``{"train" | "validation" | "test": uint8 token ids}``, contiguous 90/5/5."""
    path = Path(path)
    if not path.is_file():
        raise DatasetMissing(f"tiny corpus {path} is missing; it ships with optbench (restore it from git)")
    payload = path.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise DatasetCorrupt(
            f"{path}: sha256 mismatch (expected {sha256}, got {actual}); the tiny target is calibrated "
            "on the shipped file: restore it from git (or, after `python -m workloads.gpt.make_corpus`, "
            "update TINY_CORPUS_SHA256 and recalibrate)"
        )
    ids = encode(payload.decode("ascii"))
    n_train = int(len(ids) * SPLIT_FRACTIONS["train"])
    n_val = int(len(ids) * SPLIT_FRACTIONS["validation"])
    return {
        "train": ids[:n_train],
        "validation": ids[n_train : n_train + n_val],
        "test": ids[n_train + n_val :],
    }


# --------------------------------------------------------------------------- #
# full: modded-nanogpt's FineWeb token shards                                 #
# --------------------------------------------------------------------------- #

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
FINEWEB_DIR = "fineweb10B"
TRAIN_GLOB = "fineweb_train_*.bin"
VAL_GLOB = "fineweb_val_*.bin"
FINEWEB_REPO_URL = "https://huggingface.co/datasets/kjj0/fineweb10B-gpt2/resolve/main"
FINEWEB_TRAIN_SHARDS = 103  # fineweb_train_000001.bin .. 000103.bin (~10.3B tokens)


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """The tokens of one shard as a read-only uint16 memory map (N,), after
    checking the header and that the file holds exactly N tokens."""
    path = Path(path)
    if not path.is_file():
        raise DatasetMissing(f"token shard {path} not found")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise DatasetCorrupt(f"{path}: {size} bytes, shorter than the {HEADER_BYTES}-byte header; truncated?")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != SHARD_MAGIC:
        raise DatasetCorrupt(
            f"{path}: magic number {int(header[0])}, expected {SHARD_MAGIC}; not a modded-nanogpt token shard"
        )
    if header[1] != SHARD_VERSION:
        raise DatasetCorrupt(f"{path}: shard format version {int(header[1])}, only version {SHARD_VERSION} is supported")
    num_tokens = int(header[2])
    expected = HEADER_BYTES + 2 * num_tokens
    if num_tokens <= 0 or size != expected:
        raise DatasetCorrupt(
            f"{path}: header says {num_tokens} tokens ({expected} bytes in all) but the file has {size} bytes; "
            "truncated or damaged: delete it and run `bench data prepare gpt`"
        )
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(num_tokens,))


def shard_paths(data_dir: str | os.PathLike, pattern: str) -> list[Path]:
    directory = Path(data_dir) / FINEWEB_DIR
    paths = sorted(directory.glob(pattern))
    if not paths:
        raise DatasetMissing(
            f"no FineWeb token shards {directory / pattern}. Run `bench data prepare gpt` to download them "
            f"({FINEWEB_REPO_URL}), or copy modded-nanogpt's data/fineweb10B/*.bin (made by its "
            f"data/cached_fineweb10B.py) to {directory}/"
        )
    return paths


def token_slices(paths: list[Path], max_tokens: int | None = None) -> list[np.ndarray]:
    """Memory-mapped slices of the shards ``paths``, in order, holding the first
    ``max_tokens`` tokens in all (every token if None). Every shard is checked
    first, so a damaged one fails before gigabytes are copied; the caller copies
    the slices where it wants them (the task: straight onto the device)."""
    shards = [read_shard(p) for p in paths]
    slices, left = [], sum(len(s) for s in shards) if max_tokens is None else max_tokens
    for shard in shards:
        if left <= 0:
            break
        slices.append(shard[:left])
        left -= len(slices[-1])
    return slices


def fineweb_splits(data_dir: str | os.PathLike, train_tokens: int, val_tokens: int) -> dict[str, list[np.ndarray]]:
    """``{"train": [...], "validation": [...]}`` memory-mapped token slices from
    ``<data_dir>/fineweb10B/``: the first ``train_tokens`` of the training
    shards in name order, and the first ``val_tokens`` of the validation shard
    (modded-nanogpt's fixed validation set)."""
    val = token_slices(shard_paths(data_dir, VAL_GLOB), val_tokens)
    if sum(len(s) for s in val) < val_tokens:
        raise DatasetCorrupt(f"the validation shards hold fewer than the {val_tokens} tokens evaluated")
    return {"train": token_slices(shard_paths(data_dir, TRAIN_GLOB), train_tokens), "validation": val}


def write_shard(path: str | os.PathLike, tokens) -> Path:
    """Write ``tokens`` (ids < 65536) as a shard in the format above (tests, tools)."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise ValueError("token ids must fit in uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, len(tokens))
    path = Path(path)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())
    return path


def prepare(data_dir: str | os.PathLike, num_train_shards: int = FINEWEB_TRAIN_SHARDS, base_url: str = FINEWEB_REPO_URL) -> Path:
    """Download the FineWeb GPT-2 token shards into ``<data_dir>/fineweb10B/``
    (what ``bench data prepare gpt`` runs): the validation shard and the first
    ``num_train_shards`` training shards, the files modded-nanogpt's
    ``data/cached_fineweb10B.py`` fetches with ``hf_hub_download``, here over
    plain HTTPS. About 200 MB per shard; the full size reads ~60 shards.

    Hugging Face publishes no checksum list for them, so each file is checked
    by format instead (header and exact length, ``read_shard``) before it is
    renamed into place; files already present and valid are kept."""
    directory = Path(data_dir) / FINEWEB_DIR
    directory.mkdir(parents=True, exist_ok=True)
    names = ["fineweb_val_000000.bin"] + [f"fineweb_train_{i:06d}.bin" for i in range(1, num_train_shards + 1)]
    for name in names:
        path = directory / name
        if path.is_file():
            try:
                read_shard(path)
                continue
            except DataError:
                pass  # damaged: fetch again
        _download(f"{base_url}/{name}", path)
    return directory


def _download(url: str, path: Path) -> None:
    # Header and length are checked before the file takes its final name.
    download(url, path, check=read_shard, offline_hint=(
        "Without internet access, run modded-nanogpt's data/cached_fineweb10B.py on another machine "
        f"and copy data/fineweb10B/*.bin to {path.parent}/"))
