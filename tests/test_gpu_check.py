"""benchmarks/gpu_check.py without a GPU: its CPU exit, its arguments, its rows
and their formatting, and one dry run of a full size on the CPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_without_cuda_it_says_so_in_one_line_and_exits_2():
    out = _run()
    assert out.returncode == 2
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0] and not out.stderr.strip()


def test_rows_run_baselines_first_then_the_others_then_compiled_gnn_never(gpu_check):
    args = gpu_check.parse_args(["--sizes", "cifar,gnn", "--submissions", "baseline,muon"])
    keys = [r.key for r in gpu_check.planned_rows(args)]
    assert keys == ["gpu_check.cifar.baseline", "gpu_check.gnn.baseline", "gpu_check.cifar.muon",
                    "gpu_check.gnn.muon", "gpu_check.cifar.baseline.compile"]
    assert [r.key for r in gpu_check.planned_rows(gpu_check.parse_args(["--no-compile"]))][-1] == \
        "gpu_check.grokking.shampoo"
    overrides = gpu_check.overrides(args, gpu_check.Row("cifar", "baseline", compiled=True))
    assert {"data.synthetic=true", "budget.max_steps=200", "eval.every_steps=100", "compile=true"} <= set(overrides)


@pytest.mark.parametrize("argv, message", [(["--sizes", "cifra"], "unknown workload 'cifra'"),
                                           (["--steps", "1"], "at least 2")])
def test_bad_arguments_are_refused(gpu_check, capsys, argv, message):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(argv)
    assert message in capsys.readouterr().err


def test_a_row_reads_its_figures_from_the_record_and_prints_them(gpu_check):
    row = gpu_check.Row("gpt", "baseline", optimizer="nadamw")
    gpu_check.fill(row, {
        "status": "budget_exhausted", "reason": "step limit", "steps": 200, "evals": 2, "eval_s": 20.0, "setup_s": 12.5,
        "timing": {"per_segment": [{"steps": 100, "seconds": 30.0}, {"steps": 100, "seconds": 10.0}]},
        "compute": {"mfu": 0.4123, "achieved_flops_per_s": 4.0e14, "dtype": "bfloat16"},
    })
    row.peak_mem_gib = 30.5
    assert (row.s_per_step, row.first_s_per_step, row.eval_s) == (0.1, 0.3, 10.0)
    text = gpu_check.table([row, gpu_check.Row("gnn", "shampoo", status="skipped", reason="would end past")])
    header, first, second = text.splitlines()
    assert header.split()[:4] == ["workload", "submission", "compile", "s/step"]
    assert "baseline (nadamw)" in first and "0.1000" in first and "41.2%" in first and "400.0" in first
    assert "bfloat16" in first and "30.50" in first
    assert second.endswith("skipped: would end past") and "—" in second
    lines = gpu_check.name_values([row])
    assert "gpu_check.gpt.baseline.s_per_step=0.1" in lines and "gpu_check.gpt.baseline.mfu=0.4123" in lines
    assert all("=" in line and " " not in line for line in lines)


def test_rows_past_the_time_budget_are_skipped_and_say_so(tmp_path):
    out = _run("--device", "cpu", "--sizes", "cifar", "--submissions", "baseline,muon", "--budget-s", "0",
               "--output", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "gpu_check.cifar.muon.status=skipped" in out.stdout.splitlines()
    assert "skipped: would end past --budget-s 0" in out.stdout
    assert not list(tmp_path.rglob("run.json"))


@pytest.mark.slow  # ~35 s here: a full-size model's set-up, two steps and two evaluations
def test_a_dry_run_on_the_cpu_measures_a_full_size_on_synthetic_data(tmp_path):
    out = _run("--device", "cpu", "--steps", "2", "--sizes", "gnn", "--submissions", "baseline", "--batch-size", "2",
               "--no-compile", "--output", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if line.startswith("gpu_check."))
    assert values["gpu_check.device"] == "cpu"
    assert values["gpu_check.gnn.baseline.status"] == "budget_exhausted"
    assert float(values["gpu_check.gnn.baseline.s_per_step"]) > 0 and float(values["gpu_check.gnn.baseline.eval_s"]) > 0
    assert values["gpu_check.gnn.baseline.mfu"] == "nan"  # no peak for a CPU
    assert list(tmp_path.glob("gpu_check/gnn-full/nadamw/*/run.json"))
