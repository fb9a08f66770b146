"""Tests for the gpt workload: the shipped corpus, the FineWeb shard loader on
fake shards in the real format, the model, and the task's batches and evaluation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.api import ParamType
from harness.errors import DataError
from harness.params import typed_parameters
from harness.run.records import read_metrics
from harness.run import execute, plan_run
from workloads.gpt import FULL, TINY, WORKLOAD, data
from workloads.gpt.model import GPT, GPT2_SMALL, GPTConfig
from workloads.gpt.task import SETTINGS, GPTTask

REPO = Path(__file__).resolve().parents[1]
LN = lambda site, c: nn.LayerNorm(c)  # noqa: E731
SMALL = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)


class CountingNorm:
    """A norm factory that records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, site, num_features):
        self.calls.append((site, num_features))
        return nn.LayerNorm(num_features)


# --------------------------------------------------------------------------- #
# workload description and tiny corpus                                        #
# --------------------------------------------------------------------------- #


def test_import_does_not_load_torch():
    code = "import sys, workloads.gpt; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_workload_info():
    assert WORKLOAD.norm_sites == ("token",) and WORKLOAD.default_norm == "layernorm"
    assert WORKLOAD.default_optimizer == "nadamw"
    assert FULL.target.validation == 3.28 and FULL.target.direction == "min" and FULL.device == "cuda"
    assert "modded-nanogpt" in FULL.calibration and TINY.calibration
    assert TINY.target.metric == FULL.target.metric == "loss"
    assert SETTINGS["full"].model == GPT2_SMALL
    assert SETTINGS["full"].eval_windows * GPT2_SMALL.block_size == 10_485_760  # modded-nanogpt's val_tokens


def test_tiny_corpus_verified_and_split():
    splits = data.tiny_splits()
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 786_432 and sizes["train"] == 707_788
    assert all(v.dtype == np.uint8 and v.max() < data.VOCAB_SIZE for v in splits.values())
    # Contiguous: the splits, concatenated, are the file.
    text = data.TINY_CORPUS.read_text(encoding="ascii")
    assert data.decode(np.concatenate(list(splits.values()))[:500]) == text[:500]
    assert data.decode(splits["validation"][:200]) == text[sizes["train"] : sizes["train"] + 200]


def test_tiny_corpus_hash_mismatch(tmp_path):
    bad = tmp_path / "corpus.txt"
    bad.write_bytes(data.TINY_CORPUS.read_bytes()[:-1] + b"!")
    with pytest.raises(DataError, match="sha256 mismatch"):
        data.tiny_splits.__wrapped__(bad)
    with pytest.raises(DataError, match="missing"):
        data.tiny_splits.__wrapped__(tmp_path / "nope.txt")


def test_encode_decode_round_trip():
    text = "def f(x):\n    return {'a': x ~ 1}\n"
    assert data.decode(data.encode(text)) == text
    assert data.encode("\n A~").tolist() == [0, 1, 34, 95]
    with pytest.raises(DataError, match="alphabet"):
        data.encode("caf\u00e9")


# --------------------------------------------------------------------------- #
# full data: modded-nanogpt shards, on fake files in the real format          #
# --------------------------------------------------------------------------- #


def write_fake_fineweb(data_dir: Path, train_shards=(300, 200), val_tokens=100, seed=0):
    """Shards named as modded-nanogpt's, with random GPT-2 token ids."""
    rng = np.random.default_rng(seed)
    directory = data_dir / data.FINEWEB_DIR
    directory.mkdir(parents=True, exist_ok=True)
    val = rng.integers(0, 50257, val_tokens)
    data.write_shard(directory / "fineweb_val_000000.bin", val)
    train = [rng.integers(0, 50257, n) for n in train_shards]
    for i, tokens in enumerate(train, start=1):
        data.write_shard(directory / f"fineweb_train_{i:06d}.bin", tokens)
    return np.concatenate(train), val


def test_shard_layout_is_modded_nanogpts(tmp_path):
    tokens = np.array([0, 1, 50256, 65535, 7], dtype=np.int64)
    path = data.write_shard(tmp_path / "s.bin", tokens)
    raw = path.read_bytes()
    assert len(raw) == 256 * 4 + 2 * 5
    header = np.frombuffer(raw[:1024], dtype="<i4")
    assert header[:3].tolist() == [20240520, 1, 5] and not header[3:].any()
    assert raw[1024:1026] == b"\x00\x00" and raw[1030:1032] == b"\xff\xff"  # uint16 little-endian
    assert data.read_shard(path).tolist() == tokens.tolist()


def test_bad_shards_are_data_errors(tmp_path):
    path = data.write_shard(tmp_path / "s.bin", np.arange(10))
    raw = path.read_bytes()

    (tmp_path / "magic.bin").write_bytes(np.int32(20240521).tobytes() + raw[4:])
    with pytest.raises(DataError, match="magic number 20240521"):
        data.read_shard(tmp_path / "magic.bin")
    (tmp_path / "version.bin").write_bytes(raw[:4] + np.int32(2).tobytes() + raw[8:])
    with pytest.raises(DataError, match="version 2"):
        data.read_shard(tmp_path / "version.bin")
    (tmp_path / "truncated.bin").write_bytes(raw[:-2])
    with pytest.raises(DataError, match="header says 10 tokens.*truncated"):
        data.read_shard(tmp_path / "truncated.bin")
    (tmp_path / "short.bin").write_bytes(raw[:100])
    with pytest.raises(DataError, match="shorter than"):
        data.read_shard(tmp_path / "short.bin")
    with pytest.raises(DataError, match="not found"):
        data.read_shard(tmp_path / "absent.bin")


def test_fineweb_splits_read_shards_in_order(tmp_path):
    train, val = write_fake_fineweb(tmp_path)
    splits = data.fineweb_splits(tmp_path, train_tokens=400, val_tokens=60)
    assert np.array_equal(np.concatenate(splits["train"]), train[:400])  # crosses the shard boundary
    assert np.array_equal(np.concatenate(splits["validation"]), val[:60])
    with pytest.raises(DataError, match="fewer than"):
        data.fineweb_splits(tmp_path, train_tokens=400, val_tokens=101)


def test_missing_shards_say_how_to_get_them(tmp_path):
    with pytest.raises(DataError) as err:
        data.fineweb_splits(tmp_path, 10, 10)
    message = str(err.value)
    assert "bench data prepare gpt" in message and "cached_fineweb10B.py" in message
    assert str(tmp_path / "fineweb10B") in message


def test_prepare_downloads_checks_and_keeps(tmp_path):
    source = tmp_path / "hf"
    _, val = write_fake_fineweb(source, train_shards=(50, 40))
    base = (source / data.FINEWEB_DIR).as_uri()
    out = data.prepare(tmp_path / "d", num_train_shards=2, base_url=base)
    assert sorted(p.name for p in out.iterdir()) == [
        "fineweb_train_000001.bin", "fineweb_train_000002.bin", "fineweb_val_000000.bin",
    ]  # fmt: skip
    assert np.array_equal(data.read_shard(out / "fineweb_val_000000.bin"), val)
    # Idempotent: valid files are kept without fetching.
    assert data.prepare(tmp_path / "d", num_train_shards=2, base_url="http://127.0.0.1:9/none") == out
    # A damaged download never takes the final name.
    (source / data.FINEWEB_DIR / "fineweb_train_000003.bin").write_bytes(b"\x00" * 2000)
    with pytest.raises(DataError, match="magic number 0"):
        data.prepare(tmp_path / "d", num_train_shards=3, base_url=base)
    assert sorted(p.name for p in out.iterdir())[-2:] == ["fineweb_train_000002.bin", "fineweb_val_000000.bin"]


def test_prepare_offline_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cached_fineweb10B.py"):
        data.prepare(tmp_path, num_train_shards=1, base_url="http://127.0.0.1:9")


# --------------------------------------------------------------------------- #
# model                                                                       #
# --------------------------------------------------------------------------- #


def test_model_forward_backward_and_norm_sites():
    torch.manual_seed(0)
    norm = CountingNorm()
    model = GPT(SMALL, norm)
    assert norm.calls == [("token", 16)] * (2 * SMALL.n_layer + 1)  # ln_1, ln_2 per block + ln_f
    idx = torch.randint(0, 50, (3, 16))
    logits = model(idx)
    assert logits.shape == (3, 16, 50)
    nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_model_is_causal_and_tied():
    torch.manual_seed(0)
    model = GPT(SMALL, LN).eval()
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, 10] = (idx[0, 10] + 1) % 50
    a, b = model(idx), model(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6) and not torch.allclose(a[0, 10:], b[0, 10:])
    assert model.lm_head.weight is model.transformer.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names


def test_gpt2_small_shape_and_init():
    with torch.device("meta"):  # shapes only: no 124M-parameter initialization
        model = GPT(GPT2_SMALL, LN)
    assert sum(p.numel() for p in model.parameters()) == 124_475_904  # nanoGPT's, vocabulary padded to 50304
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=12, n_head=4, n_embd=192), LN)
    proj = model.transformer.h[0].attn.c_proj.weight
    assert abs(proj.std().item() - 0.02 / (2 * 12) ** 0.5) < 3e-4  # scaled residual projections
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 3e-4
    assert not model.transformer.h[0].attn.c_attn.bias.any()


def test_peri_ln_slots_are_used():
    torch.manual_seed(0)
    model = GPT(SMALL, LN).eval()
    idx = torch.randint(0, 50, (2, 16))
    base = model(idx)
    for block in model.transformer.h:  # what a peri_ln transform_model does
        assert isinstance(block.attn_out_norm, nn.Identity) and isinstance(block.mlp_out_norm, nn.Identity)
        block.attn_out_norm, block.mlp_out_norm = nn.LayerNorm(16), nn.LayerNorm(16)
        assert isinstance(block.mlp.act, nn.GELU)
    assert not torch.allclose(model(idx), base)


# --------------------------------------------------------------------------- #
# task                                                                        #
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tiny_task():
    return GPTTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)


def test_param_types(tiny_task):
    torch.manual_seed(0)
    model = tiny_task.build_model(LN)
    for block in model.transformer.h:  # peri-LN norms added later are typed too
        block.attn_out_norm = nn.RMSNorm(model.config.n_embd)
    types = tiny_task.param_types(model)
    assert set(types) == {n for n, _ in model.named_parameters()}
    assert types["transformer.wte.weight"] == types["transformer.wpe.weight"] == ParamType.EMBEDDING
    assert ParamType.HEAD not in types.values()
    assert types["transformer.h.0.attn.c_attn.weight"] == types["transformer.h.2.mlp.c_proj.weight"] == ParamType.MATRIX
    assert types["transformer.h.0.attn.c_attn.bias"] == ParamType.BIAS
    for name in ("ln_1.weight", "ln_2.bias", "attn_out_norm.weight"):
        assert types[f"transformer.h.1.{name}"] == ParamType.NORM
    assert types["transformer.ln_f.weight"] == ParamType.NORM
    typed = typed_parameters(model, types)
    assert sum(p.param.numel() for p in typed) == sum(p.numel() for p in model.parameters())


def test_tiny_batches_deterministic(tiny_task):
    x5, y5 = tiny_task.next_batch(5)
    assert x5.shape == y5.shape == (TINY.batch_size, 64) and x5.dtype == torch.long
    assert x5.device.type == "cpu"
    assert torch.equal(x5[:, 1:], y5[:, :-1])  # targets are the inputs shifted by one
    other = GPTTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)
    for x, y in (tiny_task.next_batch(5), other.next_batch(5)):
        assert torch.equal(x, x5) and torch.equal(y, y5)
    assert not torch.equal(tiny_task.next_batch(6)[0], x5)
    assert not torch.equal(GPTTask(TINY, torch.device("cpu"), Path("/x"), seed=1).next_batch(5)[0], x5)
    # Windows are real text of the training split.
    train = tiny_task.train
    start = int(torch.nonzero(train.unfold(0, 64, 1).eq(x5[0]).all(1))[0])
    assert torch.equal(train[start + 1 : start + 65], y5[0])


def test_tiny_loss_and_evaluate(tiny_task):
    torch.manual_seed(0)
    model = tiny_task.build_model(LN)
    loss = tiny_task.loss(model, tiny_task.next_batch(0))
    assert loss.ndim == 0 and abs(loss.item() - np.log(data.VOCAB_SIZE)) < 0.3  # ~uniform at init
    model.eval()
    with torch.no_grad():
        m1, m2 = tiny_task.evaluate(model), tiny_task.evaluate(model)
    assert m1 == m2 and set(m1) == {"validation/loss", "test/loss"}
    assert all(isinstance(v, float) and 3.5 < v < 5.5 for v in m1.values())


def _full_task(data_dir, seed=0):
    SETTINGS["fake"] = dataclasses.replace(
        SETTINGS["full"], model=GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16), eval_windows=5,
        eval_batch_size=2, train_tokens=450,
    )
    size = dataclasses.replace(FULL, name="fake", batch_size=4, device="cpu")
    try:
        return GPTTask(size, torch.device("cpu"), data_dir, seed=seed)
    finally:
        del SETTINGS["fake"]


def test_full_task_on_fake_shards(tmp_path):
    train, val = write_fake_fineweb(tmp_path)
    task = _full_task(tmp_path)
    assert task.eval_splits == ["validation"] and len(task.train) == 450
    x, y = task.next_batch(3)
    assert x.shape == (4, 16) and x.dtype == torch.long and int(x.max()) < 50257 and int(x.min()) >= 0
    assert torch.equal(task.next_batch(3)[0], x) and torch.equal(_full_task(tmp_path).next_batch(3)[0], x)
    assert not torch.equal(_full_task(tmp_path, seed=1).next_batch(3)[0], x)
    # ids >= 32768 survive the int16 storage
    big = train[:450] >= 32768
    assert big.any() and np.array_equal(task._ids(task.train).numpy(), train[:450])
    torch.manual_seed(0)
    model = task.build_model(LN).eval()
    with torch.no_grad():
        metrics = task.evaluate(model)
    assert set(metrics) == {"validation/loss"} and metrics["validation/loss"] > 10.0  # ~ln(50304) at init


# --------------------------------------------------------------------------- #
# runs                                                                        #
# --------------------------------------------------------------------------- #


def _short_run(tmp_path, seed, steps=6, submission="adamw"):
    plan = plan_run("gpt", submission, size="tiny", seed=seed, output=tmp_path,
                    overrides=[f"budget.max_steps={steps}", "eval.every_steps=3", "threads=1"])
    result = execute(plan)
    assert result.status == "budget_exhausted", result.record["reason"]
    return [{k: v for k, v in r.items() if k not in ("timed_s", "wall_s")} for r in read_metrics(result.run_dir)]


def test_same_seed_same_metrics(tmp_path):
    a, b = _short_run(tmp_path / "a", 3), _short_run(tmp_path / "b", 3)
    assert len(a) == 2 and a == b
    assert a[-1]["validation/loss"] < a[0]["validation/loss"] < np.log(data.VOCAB_SIZE)
    assert _short_run(tmp_path / "c", 4, steps=3) != a[:1]


def test_param_types_with_weight_norm(tiny_task):
    model = tiny_task.build_model(LN)
    torch.nn.utils.parametrizations.weight_norm(model.transformer.h[0].mlp.c_fc)
    types = tiny_task.param_types(model)
    prefix = "transformer.h.0.mlp.c_fc.parametrizations.weight."
    assert types[prefix + "original1"] == ParamType.MATRIX and types[prefix + "original0"] == ParamType.NORM


def test_peri_ln_submission_fills_the_slots(tiny_task):
    peri_ln = pytest.importorskip("submissions.norms.peri_ln")
    from harness.api import Hyperparameters

    hp = Hyperparameters(peri_ln.DEFAULTS)
    model = peri_ln.transform_model(tiny_task.build_model(lambda s, c: peri_ln.make_norm(s, c, hp)), hp)
    assert all(isinstance(b.attn_out_norm, nn.LayerNorm) and isinstance(b.mlp_out_norm, nn.LayerNorm)
               for b in model.transformer.h)
    types = tiny_task.param_types(model)
    assert types["transformer.h.2.mlp_out_norm.weight"] == ParamType.NORM
    assert torch.isfinite(tiny_task.loss(model, tiny_task.next_batch(0)))
