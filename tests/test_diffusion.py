"""The diffusion workload: data, UNet, DDPM batches, the fixed denoising metric, loader, runs."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.api import ParamType
from harness.run import execute, plan_run
from tests.test_cifar import write_fake_cifar
from harness.common import cifar10, shapes
from workloads.diffusion import FULL, TINY, WORKLOAD, data
from workloads.diffusion.model import DDPM_CIFAR10, AttnBlock, ResBlock, UNet, UNetConfig, timestep_embedding
from workloads.diffusion.task import METRIC, SETTINGS, DiffusionTask, make_betas

REPO = Path(__file__).resolve().parents[1]
GN = lambda site, c: nn.GroupNorm(math.gcd(8, c), c)  # noqa: E731
SMALL_32 = UNetConfig(ch=16, ch_mult=(1, 2, 2, 2), num_res_blocks=1, attn_resolutions=(16,), dropout=0.1)


class CountingNorm:
    """A norm factory that records every call (site, channels) and the module it returned."""

    def __init__(self):
        self.calls, self.modules = [], []

    def __call__(self, site, num_features):
        module = nn.GroupNorm(math.gcd(8, num_features), num_features)
        self.calls.append((site, num_features))
        self.modules.append(module)
        return module


# --------------------------------------------------------------------------- #
# workload description and tiny data                                          #
# --------------------------------------------------------------------------- #


def test_import_does_not_load_torch():
    code = "import sys, workloads.diffusion; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_workload_info():
    assert WORKLOAD.name == "diffusion" and set(WORKLOAD.sizes) == {"tiny", "full"}
    assert WORKLOAD.norm_sites == ("conv",) and WORKLOAD.default_norm == "groupnorm"
    assert WORKLOAD.default_optimizer == "adamw"
    for size in (TINY, FULL):
        assert size.target.metric == METRIC and size.target.direction == "min" and size.calibration
    assert TINY.device == "cpu" and TINY.eval_every_steps and FULL.device == "cuda" and FULL.eval_every_s
    assert FULL.batch_size == 128  # Ho et al.


def test_shapes16_are_downsampled_cifar_shapes():
    # The tiny target was calibrated on the cifar renderer of this version:
    # if cifar bumps it, the diffusion tiny target must be recalibrated.
    assert shapes.SHAPES_VERSION == data.CIFAR_SHAPES_VERSION
    x = data.render_shapes16(20, seed=3)
    assert x.shape == (20, 3, 16, 16) and x.dtype == np.uint8
    assert np.array_equal(x, data.render_shapes16(20, seed=3))
    assert not np.array_equal(x, data.render_shapes16(20, seed=4))
    big, _ = shapes.render_shapes(20, seed=3)
    block = big[7, 1, 4:6, 10:12].astype(float)
    assert x[7, 1, 2, 5] == np.rint(block.mean())
    with pytest.raises(ValueError):
        data.downsample2x(np.zeros((1, 3, 5, 4), dtype=np.uint8))


def test_shapes16_splits():
    splits = data.shapes16_splits()
    assert {k: len(v) for k, v in splits.items()} == data.SHAPES16_SPLITS
    assert not np.array_equal(splits["validation"][:5], splits["test"][:5])
    assert 40 < splits["train"].std() < 110  # real images, not blank or saturated


# --------------------------------------------------------------------------- #
# model                                                                       #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("config", [SETTINGS["tiny"].model, SMALL_32], ids=["tiny", "small32"])
def test_unet_forward_backward_and_norm_sites(config):
    torch.manual_seed(0)
    norm = CountingNorm()
    model = UNet(config, norm)
    # Every norm layer in the model came from the factory, at a conv site.
    assert {site for site, _ in norm.calls} == {"conv"}
    in_model = {id(m) for m in model.modules() if isinstance(m, nn.GroupNorm)}
    assert in_model == {id(m) for m in norm.modules}
    n_res = sum(isinstance(m, ResBlock) for m in model.modules())
    n_attn = sum(isinstance(m, AttnBlock) for m in model.modules())
    assert len(norm.calls) == 2 * n_res + n_attn + 1  # + the output norm
    # Activations are modules (so norm submissions can swap them): 3 per ResBlock, 2 more.
    assert sum(isinstance(m, nn.SiLU) for m in model.modules()) == 3 * n_res + 2

    s = config.image_size
    x, t = torch.randn(3, 3, s, s), torch.tensor([0, 500, 999])
    out = model(x, t)
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialized read-out, as Ho et al.
    _unzero(model)  # so every parameter receives a gradient
    model(x, t).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("weight"))


def _unzero(model):
    """Random weights where Ho et al. initialize to zero (read-out, last conv of each block)."""
    with torch.no_grad():
        model.conv_out.weight.normal_(0, 0.05)
        for m in model.modules():
            if isinstance(m, ResBlock):
                m.conv2.weight.normal_(0, 0.05)
            elif isinstance(m, AttnBlock):
                m.proj.weight.normal_(0, 0.05)


def test_unet_uses_the_timestep():
    torch.manual_seed(0)
    model = UNet(SETTINGS["tiny"].model, GN)
    _unzero(model)
    x = torch.randn(1, 3, 16, 16).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([10, 900]))
    assert not torch.allclose(out[0], out[1])
    emb = timestep_embedding(torch.tensor([0, 1, 999]), 32)
    assert emb.shape == (3, 32) and torch.equal(emb[0, :16], torch.zeros(16)) and torch.equal(emb[0, 16:], torch.ones(16))


def test_tiny_model_size():
    n = sum(p.numel() for p in UNet(SETTINGS["tiny"].model, GN).parameters())
    assert 100_000 <= n <= 500_000


def test_ddpm_cifar10_model_is_ho_et_al():
    # Ho et al. report 35.7M parameters for their CIFAR-10 model.
    model = UNet(DDPM_CIFAR10, lambda site, c: nn.GroupNorm(32, c))
    assert sum(p.numel() for p in model.parameters()) == 35_746_307
    assert sum(isinstance(m, AttnBlock) for m in model.modules()) == 2 + 3 + 1  # 16x16 down, up, middle


# --------------------------------------------------------------------------- #
# noise schedules                                                             #
# --------------------------------------------------------------------------- #


def test_schedules():
    betas = make_betas("linear", 1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    abar = torch.cumprod(1 - betas, 0)
    assert abar[-1] == pytest.approx(4.04e-5, rel=0.02)  # x_T is pure noise
    cosine = make_betas("cosine", 1000)
    abar_c = torch.cumprod(1 - cosine, 0)
    assert (cosine > 0).all() and (cosine <= 0.999).all() and (abar_c.diff() < 0).all()
    assert abar_c[499] == pytest.approx(math.cos((0.5 + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2, rel=1e-6)
    with pytest.raises(ValueError, match="linear, cosine"):
        make_betas("quadratic", 10)


# --------------------------------------------------------------------------- #
# tiny task                                                                   #
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tiny_task():
    return DiffusionTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)


def _x0_of(task, x_t, t, eps):
    """Invert x_t = sqrt(abar) x0 + sqrt(1 - abar) eps."""
    return (x_t - task.sqrt_one_minus_abar[t][:, None, None, None] * eps) / task.sqrt_abar[t][:, None, None, None]


def test_tiny_batches_are_ddpm_and_deterministic(tiny_task):
    x_t, t, eps = tiny_task.next_batch(5)
    b = TINY.batch_size
    assert x_t.shape == eps.shape == (b, 3, 16, 16) and t.shape == (b,) and t.dtype == torch.long
    assert x_t.device.type == t.device.type == eps.device.type == "cpu"
    assert 0 <= t.min() and t.max() < 1000
    # x_t is the forward process applied to this step's training images.
    idx = tiny_task._permutation[5 * b : 6 * b]
    assert torch.allclose(_x0_of(tiny_task, x_t, t, eps), tiny_task.train_x[idx], atol=2e-3)

    other = DiffusionTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=0)
    tiny_task.next_batch(5 + 2 * tiny_task.steps_per_epoch)  # another epoch in between
    for again in (tiny_task.next_batch(5), other.next_batch(5)):
        assert all(torch.equal(a, e) for a, e in zip(again, (x_t, t, eps)))
    assert not torch.equal(tiny_task.next_batch(6)[2], eps)
    reseeded = DiffusionTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=1)
    assert not torch.equal(reseeded.next_batch(5)[2], eps)
    # Over many steps: t uniform on 0..T-1, eps standard normal.
    ts = torch.cat([tiny_task.next_batch(s)[1] for s in range(200)])
    assert abs(ts.float().mean().item() - 499.5) < 25
    assert abs(eps.std().item() - 1.0) < 0.05


def test_eval_problem_is_fixed_and_stratified(tiny_task):
    other = DiffusionTask(TINY, torch.device("cpu"), Path("/nonexistent"), seed=123)
    for split in ("validation", "test"):
        assert all(torch.equal(a, b) for a, b in zip(tiny_task.eval_sets[split], other.eval_sets[split]))
    x_t, t, eps = tiny_task.eval_sets["validation"]
    per_t = data.SHAPES16_SPLITS["validation"] // 1000
    assert per_t >= 1 and torch.bincount(t, minlength=1000).tolist() == [per_t] * 1000  # each t equally often
    assert not torch.equal(t, tiny_task.eval_sets["test"][1])
    x0 = _x0_of(tiny_task, x_t, t, eps)
    expected = torch.from_numpy(data.shapes16_splits()["validation"]).float() / 127.5 - 1
    assert torch.allclose(x0, expected, atol=2e-3)


def test_loss_evaluate_and_param_types(tiny_task, monkeypatch):
    # The first 200 examples of each evaluation problem keep the test fast.
    monkeypatch.setattr(tiny_task, "eval_sets", {k: tuple(a[:200] for a in v) for k, v in tiny_task.eval_sets.items()})
    torch.manual_seed(0)
    model = tiny_task.build_model(GN)
    batch = tiny_task.next_batch(0)
    # eps_hat = 0 at initialization, so the loss is the noise's mean square.
    assert tiny_task.loss(model, batch).item() == pytest.approx(batch[2].square().mean().item())
    model.eval()
    with torch.no_grad():
        metrics = tiny_task.evaluate(model)
        assert metrics == tiny_task.evaluate(model)  # deterministic
    assert set(metrics) == {f"validation/{METRIC}", f"test/{METRIC}"}
    eps = tiny_task.eval_sets["validation"][2]
    assert metrics[f"validation/{METRIC}"] == pytest.approx(eps.double().square().mean().item(), rel=1e-9)

    types = tiny_task.param_types(model)
    assert set(types) == {name for name, _ in model.named_parameters()}
    assert types["conv_out.weight"] == ParamType.HEAD and types["conv_in.weight"] == ParamType.CONV
    assert types["norm_out.weight"] == ParamType.NORM and types["temb.0.weight"] == ParamType.MATRIX
    assert types["down.0.temb_proj.bias"] == ParamType.BIAS


# --------------------------------------------------------------------------- #
# full: CIFAR-10 through the cifar loader                                     #
# --------------------------------------------------------------------------- #


@pytest.fixture()
def fake_cifar(tmp_path, monkeypatch):
    path, batches = write_fake_cifar(tmp_path)
    monkeypatch.setattr(cifar10, "CIFAR10_SHA256", cifar10.sha256_file(path))
    monkeypatch.setattr(cifar10, "CIFAR10_VALIDATION", 10)
    return tmp_path, batches


def _full_task(data_dir: Path, seed: int = 0) -> DiffusionTask:
    size = dataclasses.replace(FULL, batch_size=16, device="cpu")
    return DiffusionTask(size, torch.device("cpu"), data_dir, seed=seed)


def test_full_task_on_fake_cifar(fake_cifar):
    data_dir, batches = fake_cifar
    images = data.load_cifar10_images(data_dir)
    assert {k: v.shape for k, v in images.items()} == {
        "train": (90, 3, 32, 32), "validation": (10, 3, 32, 32), "test": (20, 3, 32, 32),
    }  # fmt: skip
    test_rows = batches[cifar10.CIFAR10_TEST_MEMBER][0]
    assert np.array_equal(images["test"].reshape(20, -1), test_rows)

    task = _full_task(data_dir)
    assert task.num_train == 90 and task.steps_per_epoch == 5
    x_t, t, eps = task.next_batch(2)
    assert x_t.shape == (16, 3, 32, 32) and x_t.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(a, b) for a, b in zip(_full_task(data_dir).next_batch(2), (x_t, t, eps)))
    # Random flips: each x0 is its training image, mirrored or not, and both occur.
    x0 = _x0_of(task, x_t, t, eps)
    source = task.train_x[task._permutation[32:48]]
    flipped = [torch.allclose(x0[i], source[i].flip(-1), atol=2e-3) for i in range(16)]
    assert all(f or torch.allclose(x0[i], source[i], atol=2e-3) for i, f in enumerate(flipped))
    assert 0 < sum(flipped) < 16

    torch.manual_seed(0)
    model = UNet(SMALL_32, GN).to(memory_format=torch.channels_last).eval()
    nn.init.normal_(model.conv_out.weight, std=0.01)
    with torch.no_grad():
        metrics = task.evaluate(model)
    assert set(metrics) == {f"validation/{METRIC}", f"test/{METRIC}"}
    assert all(math.isfinite(v) and v > 0 for v in metrics.values())
    reseeded = _full_task(data_dir, seed=5)  # the evaluation problem ignores the run seed
    assert all(torch.equal(a, b) for k in task.eval_sets for a, b in zip(task.eval_sets[k], reseeded.eval_sets[k]))
    assert task.eval_sets["validation"][0].shape == (10, 3, 32, 32)


def test_full_missing_and_corrupt_archive(tmp_path):
    with pytest.raises(FileNotFoundError, match="bench data prepare") as err:
        _full_task(tmp_path)
    assert "DataError" in [c.__name__ for c in type(err.value).__mro__]
    write_fake_cifar(tmp_path, per_batch=2)  # hash differs from the real archive's
    with pytest.raises(ValueError, match="sha256 mismatch"):
        _full_task(tmp_path)


def test_prepare_delegates_to_cifar(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    archive, _ = write_fake_cifar(source, per_batch=2)
    sha = cifar10.sha256_file(archive)
    path = data.prepare(tmp_path / "data", url=archive.as_uri(), sha256=sha)
    assert path == tmp_path / "data" / cifar10.CIFAR10_ARCHIVE and cifar10.sha256_file(path) == sha
    assert WORKLOAD.prepare == "workloads.diffusion.data:prepare"


# --------------------------------------------------------------------------- #
# runs                                                                        #
# --------------------------------------------------------------------------- #


def _run(tmp_path, seed, *overrides):
    plan = plan_run("diffusion", "adamw", size="tiny", seed=seed, output=tmp_path, overrides=list(overrides))
    return execute(plan)


def test_same_seed_same_metrics(tmp_path):
    from harness.run.records import read_metrics

    short = ("budget.max_steps=4", "eval.every_steps=4", "threads=1")  # one evaluation per run
    runs = [_run(tmp_path / name, 7, *short) for name in ("a", "b")]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("timed_s", "wall_s")} for r in rows]  # noqa: E731
    a, b = (strip(read_metrics(r.run_dir)) for r in runs)
    assert len(a) == 1 and a == b
    assert a[0][f"validation/{METRIC}"] < 0.99  # it learns: 1.0 (eps_hat = 0) at initialization
    other = _run(tmp_path / "c", 8, *short)
    assert strip(read_metrics(other.run_dir)) != a
