"""wandb tracking, offline: no API key -> the run is logged into its run
directory, and that directory holds the config, every eval's metrics and the
final result. Also: one group per sweep, a failing wandb never fails a run, and
the fast commands import neither torch, wandb nor submitit."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plugins.registry import Registry
from harness.run import execute, plan_run
from tests import fakes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_key(monkeypatch, tmp_path):
    # no key anywhere: not in the environment, not in ~/.netrc
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")


def _registry():
    registry = Registry(entry_points=False)
    registry.add_workload(fakes.fake_info(target=25.0))
    return registry


def _run(tmp_path, *extra):
    plan = plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path, registry=_registry(),
                    overrides=["logging.wandb=true", "logging.wandb_init_timeout_s=60", *extra])
    return execute(plan)


def read_wandb_file(path: Path) -> list:
    """The records of a ``.wandb`` file (wandb's LevelDB-style log of protobuf
    ``Record`` messages): 7-byte header, then 32 KiB blocks of chunks, each
    with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, block, buf = [], 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too small for a header: skip to the next block
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            records.append(rec)
    return records


def _logged(run_dir: Path, wait_s: float = 60) -> dict:
    """What the offline run logged. wandb's writer process flushes the file
    shortly after ``finish()`` returns: wait for its closing ``exit`` record."""
    import json
    import time

    (path,) = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    deadline = time.time() + wait_s
    while True:
        records = read_wandb_file(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.time() > deadline:
            break
        time.sleep(0.2)
    out = {"history": [], "summary": {}, "config": {}, "run": None}
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            out["summary"].update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.summary.update})
        elif kind == "run":
            out["run"] = rec.run
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
    return out


def test_offline_run_dir_holds_config_metrics_and_result(tmp_path, capfd):
    result = _run(tmp_path)
    rec = result.record
    assert rec["status"] == "reached"
    info = rec["tracking"]["wandb"]
    assert info["mode"] == "offline" and Path(info["dir"]).parent.parent == result.run_dir
    err = capfd.readouterr().err
    assert "offline (no WANDB_API_KEY)" in err and f"wandb sync {info['dir']}" in err

    logged = _logged(result.run_dir)
    steps = [h["step"] for h in logged["history"]]
    assert steps == [10, 20, 30]  # every eval, nothing per step
    assert [h["validation/score"] for h in logged["history"]] == [10.0, 20.0, 30.0]
    assert all("train/loss" in h and "timed_s" in h for h in logged["history"])
    assert logged["summary"]["status"] == "reached" and logged["summary"]["steps_to_target"] == 30
    assert logged["summary"]["time_to_target_s"] == pytest.approx(rec["time_to_target_s"])
    config = logged["config"]
    assert config["fingerprint"]["hardware_id"] == rec["fingerprint"]["hardware_id"]
    assert config["optimizer"]["name"] == "PLAIN_SGD" and config["optimizer"]["target"] == "tests.fakes:PLAIN_SGD"
    assert config["hyperparameters"]["optimizer"]["lr"] == 0.01


def test_one_wandb_group_per_sweep(tmp_path):
    from harness.sweeps.tuning import plan_sweep, run_sweep

    sweep = plan_sweep("fake", "tests.fakes:PLAIN_SGD", size="tiny", studies=1, trials=2, output=tmp_path,
                       registry=_registry(), overrides=["logging.wandb=true", "budget.max_steps=10"])
    plain = plan_sweep("fake", "tests.fakes:PLAIN_SGD", size="tiny", studies=1, trials=2, output=tmp_path / "p",
                       registry=_registry(), overrides=["budget.max_steps=10"])
    assert sweep.sweep_id == plain.sweep_id  # tracking does not change what the sweep measures
    result = run_sweep(sweep)
    groups = {t.record["tracking"]["wandb"]["group"] for t in result.ran}
    assert groups == {sweep.sweep_id}
    runs = [_logged(t.run_dir)["run"] for t in result.ran]
    assert {r.run_group for r in runs} == {sweep.sweep_id} and {r.job_type for r in runs} == {"tune"}
    assert sorted(r.display_name for r in runs) == [f"{sweep.label} study0 trial0", f"{sweep.label} study0 trial1"]


def test_a_failing_wandb_never_fails_the_run(tmp_path, monkeypatch, capfd):
    import wandb

    def broken(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(wandb, "init", broken)
    rec = _run(tmp_path).record
    assert rec["status"] == "reached"
    assert "ConnectionError" in rec["tracking"]["wandb"]["error"]
    assert "tracking off for this run" in capfd.readouterr().err


def test_wandb_off_by_default_and_disabled_mode(tmp_path, monkeypatch):
    plan = plan_run("fake", "tests.fakes:PLAIN_SGD", size="tiny", output=tmp_path, registry=_registry())
    rec = execute(plan).record
    assert "tracking" not in rec and not list(tmp_path.rglob("wandb"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    rec = _run(tmp_path / "d").record
    assert rec["tracking"]["wandb"]["mode"] == "disabled" and not list((tmp_path / "d").rglob("wandb"))


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["tune", "--help"]])
def test_help_imports_no_torch_wandb_or_submitit(args):
    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom harness.cli import app\n"
        f"r = CliRunner().invoke(app, {args!r})\nassert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'wandb', 'submitit') if m in sys.modules]\nassert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
