"""The user cache: plugin metadata for `bench list`, generated tiny data for runs.

Both must be invisible except in speed: never stale, exact in value and type,
and a corrupt, unwritable or disabled cache only means recomputing. Every
test here gets its own cache directory (tests/conftest.py keeps the session
away from ~/.cache as well).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.common import datacache

from harness.plugins import metacache

from harness.plugins import registry

from harness.common import usercache
from harness.plugins.registry import read_literal_metadata
from tests.test_plugins import fake_dist, write

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(path))
    monkeypatch.delenv("OPTBENCH_CACHE", raising=False)
    monkeypatch.setattr(metacache, "_loaded", None)  # as a fresh process would start
    return path


def fresh_process(monkeypatch) -> None:
    """Forget what this process read from the metadata cache file."""
    monkeypatch.setattr(metacache, "_loaded", None)


# --------------------------------------------------------------------------- #
# where                                                                        #
# --------------------------------------------------------------------------- #


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTBENCH_CACHE_DIR", raising=False)
    monkeypatch.delenv("OPTBENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert usercache.cache_dir() == tmp_path / "xdg" / "optbench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert usercache.cache_dir() == tmp_path / "home" / ".cache" / "optbench"
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path / "mine"))
    assert usercache.cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("OPTBENCH_CACHE", "0")
    assert usercache.cache_dir() is None


# --------------------------------------------------------------------------- #
# plugin metadata                                                              #
# --------------------------------------------------------------------------- #

PLUGIN = '''\
KIND = "optimizer"
DESCRIPTION = "first"
DEFAULTS = {"lr": 0.01, "betas": (0.9, 0.999), "nesterov": True, "steps": 3, "floor": -0.0}
SEARCH_SPACE = {"lr": {"min": 1e-3, "max": 1e-1, "scaling": "log"}, "steps": {"feasible_points": [1, 3]}}

def make_optimizer(params, hp, step_hint):
    raise NotImplementedError
'''


def test_metadata_comes_back_with_its_exact_types(cache, tmp_path, monkeypatch):
    plugin = write(tmp_path / "typed.py", PLUGIN)
    parsed = read_literal_metadata(plugin)
    fresh_process(monkeypatch)
    monkeypatch.setattr(registry, "ast", SimpleNamespace(parse=_no_parsing))  # registry's ast only: pytest parses too
    cached = read_literal_metadata(plugin)
    assert cached == parsed
    assert [list(d) for d in cached[0].values() if isinstance(d, dict)] == [list(d) for d in parsed[0].values() if isinstance(d, dict)]
    assert cached[0]["DEFAULTS"]["betas"] == (0.9, 0.999) and isinstance(cached[0]["DEFAULTS"]["betas"], tuple)
    assert cached[0]["SEARCH_SPACE"]["steps"]["feasible_points"] == [1, 3]
    assert type(cached[0]["DEFAULTS"]["nesterov"]) is bool and type(cached[0]["DEFAULTS"]["steps"]) is int
    assert str(cached[0]["DEFAULTS"]["floor"]) == "-0.0"


def test_norm_sites_stay_a_tuple(cache, monkeypatch):
    path = registry.BUILTIN_SUBMISSIONS / "norms" / "batchnorm.py"
    parsed, _ = read_literal_metadata(path)
    fresh_process(monkeypatch)
    cached, _ = read_literal_metadata(path)
    assert cached["SITES"] == parsed["SITES"] and type(cached["SITES"]) is type(parsed["SITES"])


def _no_parsing(*args, **kwargs):
    raise AssertionError("parsed although the cache holds this file")


def test_an_edit_is_seen_even_with_the_same_size_and_time(cache, tmp_path, monkeypatch):
    plugin = write(tmp_path / "edited.py", PLUGIN)
    assert read_literal_metadata(plugin)[0]["DESCRIPTION"] == "first"
    stat = plugin.stat()
    plugin.write_text(PLUGIN.replace('"first"', '"other"'))  # same size...
    os.utime(plugin, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...and the same modification time
    fresh_process(monkeypatch)
    assert read_literal_metadata(plugin)[0]["DESCRIPTION"] == "other"


def test_bench_list_sees_an_edited_plugin(cache, tmp_path):
    """End to end, through `bench list` in fresh processes sharing one cache."""
    site = tmp_path / "site"
    plugin = write(site / "cacheplug.py", PLUGIN)
    fake_dist(site, "cachedist", "1.0", submissions={"cacheplug": "cacheplug"})

    def listed() -> dict:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
        out = subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", "list", "--json"],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return {s["name"]: s for s in json.loads(out.stdout)["submissions"]}

    assert listed()["cacheplug"]["description"] == "first"
    entries = json.loads(next(cache.glob("plugin-metadata-*.json")).read_text())["entries"]
    assert str(plugin) in entries and str(registry.BUILTIN_SUBMISSIONS / "optimizers" / "adamw.py") in entries

    stat = plugin.stat()
    plugin.write_text(PLUGIN.replace('"first"', '"again"'))
    os.utime(plugin, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert listed()["cacheplug"]["description"] == "again"

    plugin.write_text('KIND = "norm"\nSITES = ("node",)\nDESCRIPTION = "now a norm"\n')
    now = listed()["cacheplug"]
    assert (now["kind"], now["sites"], now["description"]) == ("norm", ["node"], "now a norm")


def test_a_corrupt_or_unwritable_metadata_cache_only_costs_a_parse(cache, tmp_path, monkeypatch):
    plugin = write(tmp_path / "p.py", PLUGIN)
    expected = read_literal_metadata(plugin)
    cache_file = next(cache.glob("plugin-metadata-*.json"))
    for garbage in (b"{not json", b'{"format": 1, "entries": {"%s": {"sha256": 3}}}' % str(plugin).encode(), b"[]", b""):
        cache_file.write_bytes(garbage)
        fresh_process(monkeypatch)
        assert read_literal_metadata(plugin) == expected

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(blocked / "cache"))
    fresh_process(monkeypatch)
    assert read_literal_metadata(plugin) == expected


def test_metadata_cache_off(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTBENCH_CACHE", "0")
    plugin = write(tmp_path / "p.py", PLUGIN)
    read_literal_metadata(plugin)
    assert not cache.exists()


def test_deleted_plugins_leave_the_metadata_cache(cache, tmp_path):
    gone = write(tmp_path / "gone.py", PLUGIN)
    read_literal_metadata(gone)
    gone.unlink()
    read_literal_metadata(write(tmp_path / "kept.py", PLUGIN))
    entries = json.loads(next(cache.glob("plugin-metadata-*.json")).read_text())["entries"]
    assert str(tmp_path / "kept.py") in entries and str(gone) not in entries


# --------------------------------------------------------------------------- #
# generated data                                                               #
# --------------------------------------------------------------------------- #


class Generator:
    """A generator that counts its calls; its arrays cover the awkward cases."""

    def __init__(self, seed: int = 0) -> None:
        self.calls = 0
        self.seed = seed

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        rng = np.random.default_rng(self.seed)
        labels = rng.random((50, 4)).astype(np.float32)
        labels[labels < 0.2] = np.nan
        return {
            "train.x": rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8),
            "train.y": rng.integers(0, 10, 40).astype(np.int64),
            "labels": labels,
            "fortran": np.asfortranarray(rng.random((5, 7))),
            "empty": np.zeros((0, 2), dtype=np.int64),
        }


def same_bits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a
    )


def cached(gen: Generator, source: Path, params: dict | None = None) -> dict[str, np.ndarray]:
    return datacache.cached_arrays("test-data", params or {"version": 1}, [source], gen)


@pytest.fixture
def source(tmp_path) -> Path:
    return write(tmp_path / "generator.py", "VERSION = 1\n")


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "generated").glob(f"test-data-{'[0-9a-f]' * datacache.KEY_CHARS}.npz"))


def test_cached_data_is_bit_identical_to_generated(cache, source):
    gen = Generator()
    generated = cached(gen, source)
    assert gen.calls == 1 and len(entries(cache)) == 1
    loaded = cached(gen, source)
    assert gen.calls == 1  # served from the cache
    assert same_bits(generated, loaded) and same_bits(loaded, Generator()())


def test_the_key_covers_parameters_and_generator_source(cache, source):
    gen = Generator()
    cached(gen, source)
    cached(gen, source, {"version": 2})
    assert gen.calls == 2
    source.write_text("VERSION = 1  # an edit without a version bump\n")
    cached(gen, source)
    assert gen.calls == 3 and len(entries(cache)) == 3


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "manifest", "swap"])
def test_a_damaged_entry_is_regenerated_and_replaced(cache, source, damage):
    gen = Generator()
    good = cached(gen, source)
    (path,) = entries(cache)
    raw = bytearray(path.read_bytes())
    if damage == "flip":  # one bit of image data: the zip still opens, the digest does not match
        offset = raw.index(bytes(good["train.x"][0, 0, 0, :4]))
        raw[offset] ^= 1
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "manifest":  # well-formed, but says another key
        arrays = {k: v for k, v in Generator()().items()}
        manifest = {"key": "0" * 64, "arrays": {}}
        np.savez(path, **arrays, __manifest__=np.array(json.dumps(manifest)))
    elif damage == "swap":  # another generator's arrays under this key's manifest
        with np.load(path, allow_pickle=False) as npz:
            manifest = str(npz["__manifest__"])
        np.savez(path, **Generator(seed=1)(), __manifest__=np.array(manifest))
    again = cached(gen, source)
    assert gen.calls == 2 and same_bits(again, good)
    assert same_bits(cached(gen, source), good) and gen.calls == 2  # the replacement is good


def test_a_pickle_in_the_cache_is_never_loaded(cache, source):
    gen = Generator()
    cached(gen, source)
    (path,) = entries(cache)
    with np.load(path, allow_pickle=False) as npz:
        manifest = str(npz["__manifest__"])
    np.savez(path, **{**Generator()(), "train.y": np.array([object()] * 40, dtype=object)}, __manifest__=np.array(manifest))
    assert same_bits(cached(gen, source), Generator()()) and gen.calls == 2


def test_data_cache_off_or_unwritable(cache, source, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTBENCH_CACHE", "0")
    gen = Generator()
    cached(gen, source)
    cached(gen, source)
    assert gen.calls == 2 and not cache.exists()

    monkeypatch.delenv("OPTBENCH_CACHE")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(blocked / "cache"))
    assert same_bits(cached(gen, source), Generator()()) and gen.calls == 3


def test_old_entries_are_pruned(cache, source):
    gen = Generator()
    for version in range(datacache.KEEP + 2):
        cached(gen, source, {"version": version})
    assert len(entries(cache)) == datacache.KEEP
    other = datacache.cached_arrays("test-data-other", {}, [source], gen)  # a name sharing the prefix is left alone
    assert other and len(entries(cache)) == datacache.KEEP


# --------------------------------------------------------------------------- #
# the workloads' generated data, with and without the cache                    #
# --------------------------------------------------------------------------- #


def _cifar():
    from workloads.cifar import data

    return data.shapes_splits, lambda s: {f"{k}.{i}": a for k, pair in s.items() for i, a in enumerate(pair)}


def _diffusion():
    from workloads.diffusion import data

    return data.shapes16_splits, lambda s: dict(s)


def _gnn():
    import dataclasses

    from workloads.gnn import data

    return data.molgen_splits, lambda s: {f"{k}.{f.name}": getattr(g, f.name) for k, g in s.items() for f in dataclasses.fields(g)}


@pytest.mark.parametrize("workload", [_cifar, _diffusion, _gnn], ids=["cifar", "diffusion", "gnn"])
def test_tiny_data_is_the_same_from_the_cache(cache, workload):
    splits, flatten = workload()
    splits.cache_clear()  # the per-process copy
    try:
        generated = flatten(splits())  # a cold cache returns what generation returned
        assert len(list((cache / "generated").glob("*.npz"))) == 1
        splits.cache_clear()
        loaded = flatten(splits())
    finally:
        splits.cache_clear()  # later tests must not see this test's cache directory's arrays
    assert same_bits(generated, loaded)


def test_arrays_digest_names_a_dataset_by_its_bytes():
    a = {"train.x": np.arange(12, dtype=np.uint8).reshape(3, 4), "train.y": np.array([0, 1, 2])}
    digest = datacache.arrays_digest(a)
    assert len(digest) == 64 and digest == datacache.arrays_digest(dict(reversed(list(a.items()))))  # order-free
    changed = {**a, "train.y": np.array([0, 1, 3])}
    renamed = {"valid.x": a["train.x"], "train.y": a["train.y"]}
    retyped = {**a, "train.y": a["train.y"].astype(np.int32)}
    reshaped = {**a, "train.x": a["train.x"].reshape(4, 3)}
    others = [datacache.arrays_digest(d) for d in (changed, renamed, retyped, reshaped)]
    assert digest not in others and len(set(others)) == 4
