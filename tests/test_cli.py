"""The bench CLI: fast commands stay torch-free, bad input gets one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout,
    )


def _torch_free(code: str) -> None:
    probe = f"import sys\n{code}\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["run", "--help"]])
def test_fast_commands_do_not_import_torch(args):
    _torch_free(
        "from harness.cli import app\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        "assert r.exit_code == 0, r.output"
    )


@pytest.mark.parametrize("args", [["list"], ["list", "--json"]])
def test_bench_list_skips_pydantic(args):
    """typer coerces option values through pydantic (~0.1 s to import); `bench list`
    has nothing to coerce, and its absent --help must not make it pay (harness/cli.py)."""
    probe = (
        "import sys\nfrom harness.cli import main\n"
        f"sys.argv = ['bench', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_list_json_shows_workloads_and_submissions():
    out = bench("list", "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    sizes = {(w["workload"], w["size"]) for w in listing["workloads"]}
    assert {("cifar", "tiny"), ("cifar", "full")} <= sizes
    subs = {s["name"]: s for s in listing["submissions"]}
    for name in ("sgd", "adamw", "nadamw", "lion"):
        assert subs[name]["kind"] == "optimizer" and subs[name]["origin"] == "builtin"
    assert subs["batchnorm"]["kind"] == "norm" and "cifar" in subs["batchnorm"]["workloads"]
    cifar_tiny = next(w for w in listing["workloads"] if w["workload"] == "cifar" and w["size"] == "tiny")
    assert cifar_tiny["target"]["metric"] == "validation/accuracy" and cifar_tiny["max_runtime_s"] > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--submission", "lino", "--workload", "cifar"], "did you mean 'lion'"),
        (["run", "--submission", "lion", "--workload", "cifra"], "did you mean 'cifar'"),
        (["run", "--submission", "lion", "--workload", "cifar", "--size", "tinny"], "did you mean 'tiny'"),
        (["run", "--submission", "lion", "--workload", "cifar", "budget.max_step=3"], "did you mean 'budget.max_steps'"),
        (["run", "--submission", "lion", "--workload", "cifar", "optimizer.lrr=3"], "did you mean 'lr'"),
        (["run", "--submission", "lion", "--workload", "cifar", "--norm", "adamw"], "not a norm"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, needle):
    out = bench(*args, "--output", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert needle in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.rglob("run.json"))


def test_hw_shows_the_fields_that_define_the_class():
    out = bench("hw")
    assert out.returncode == 0, out.stderr
    for label in ("family / model / stepping", "ISA level", "cores / threads", "memory class",
                  "torch / backend", "GPUs"):
        assert label in out.stdout, label
    fp = json.loads(bench("hw", "--json").stdout)
    assert fp["fingerprint_version"] == 2 and fp["hardware_id"] in out.stdout
