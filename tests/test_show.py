"""``bench show NAME`` (harness/cli/show.py), and output that is never cut when
it is not a terminal (harness/cli/app.py's consoles)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _show(*args: str):
    return CliRunner().invoke(app, ["show", *args])


def test_show_a_submission():
    r = _show("lion")
    assert r.exit_code == 0, r.output
    text = r.output
    assert "lion · optimizer submission" in text
    assert "Symbolic Discovery of Optimization Algorithms" in text  # PAPER
    assert "built-in" in text
    source = ROOT / "submissions" / "optimizers" / "lion.py"
    assert str(source) in text
    assert hashlib.sha256(source.read_bytes()).hexdigest() in text
    assert "DEFAULTS" in text and "warmup_fraction  0.05" in text
    assert "SEARCH_SPACE" in text and "log [1e-05, 0.001]" in text and "one of 0.9, 0.95" in text


def test_show_a_norm_names_its_sites():
    r = _show("groupnorm")
    assert r.exit_code == 0, r.output
    assert "norm submission" in r.output and "sites        conv" in r.output


def test_show_a_workload():
    r = _show("cifar")
    assert r.exit_code == 0, r.output
    text = r.output
    assert "cifar · workload" in text
    assert "default optimizer" in text and "norm sites" in text
    for needle in ("size tiny:", "size full:", "validation/accuracy > 0.9509", "tuned-baseline steps (reference steps",
                   "3600 timed s", "eval every", "step hint", "device", "calibration     bench calibrate", "batch size"):
        assert needle in text, needle


def test_show_an_unknown_name_says_did_you_mean():
    r = _show("lino")
    assert r.exit_code == 2
    assert "unknown submission or workload 'lino'" in r.output and "did you mean 'lion'" in r.output


@pytest.mark.parametrize("name, kind", [("lion", "submission"), ("cifar", "workload")])
def test_show_json_parses(name, kind):
    r = _show(name, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["type"] == kind and data["name"] == name
    if kind == "submission":
        assert data["kind"] == "optimizer" and data["defaults"]["lr"] > 0 and "lr" in data["search_space"]
        assert data["origin"] == "builtin" and len(data["sha256"]) == 64 and data["paper"]
    else:
        tiny = next(s for s in data["sizes"] if s["size"] == "tiny")
        assert tiny["budget"]["basis"] == "reference_work" and tiny["budget"]["budget_steps"] > 0
        assert tiny["target"]["metric"] == "validation/accuracy" and tiny["calibration"]


@pytest.mark.parametrize("args", [["show", "lion"], ["show", "cifar", "--json"]])
def test_show_does_not_import_torch(args):
    probe = (
        "import sys\n"
        "from harness.cli import app\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- #
# Piped output is never cut                                                    #
# --------------------------------------------------------------------------- #


def _piped(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_TERMINAL", "TTY_COMPATIBLE")}
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          text=True, cwd=cwd, env=env, timeout=300)


def test_bench_list_piped_is_not_cut(tmp_path):
    out = _piped("list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout
    from harness.cli.run import _listing

    listing = _listing()
    for w in listing["workloads"]:  # every long cell is there whole
        assert w["dataset"] in out.stdout and w["model"] in out.stdout
    for s in listing["submissions"]:
        assert s["description"] in out.stdout


def test_bench_tune_dry_run_piped_shows_whole_numbers_and_paths(tmp_path):
    output = tmp_path / "a-results-folder-with-a-long-name" / ("deep" * 10)
    out = _piped("tune", "--dry-run", "-s", "adamw", "-w", "cifar", "--size", "tiny", "--studies", "1",
                 "--trials", "2", "--output", str(output), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout and "…" not in out.stderr
    assert str(output) in out.stdout  # the records path, whole
    lines = out.stdout.splitlines()
    header = next(line for line in lines if "┃" in line and " lr " in line)
    column = [c.strip() for c in header.split("┃")].index("lr")
    lrs = [line.split("│")[column].strip() for line in lines if line.count("│") > column]
    assert len(lrs) == 2, out.stdout
    for value in lrs:  # sampled on a log scale, printed whole: "0.003521", never "0.00…"
        assert float(value) > 0 and len(value) > 4, out.stdout
