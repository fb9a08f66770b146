"""Overrides are checked against the submission's DEFAULTS and SEARCH_SPACE
before anything runs (harness/common/config.py, harness/run/plan.py): a value
of the wrong type is one line, exit 2, nothing written; a bare hyperparameter
name points to its section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserInputError
from harness.run import plan_run

ROOT = Path(__file__).resolve().parent.parent


def _plan(overrides=(), submission="sgd", norm=None, hyperparameters=None):
    return plan_run("cifar", submission, size="tiny", norm=norm, overrides=list(overrides),
                    hyperparameters=hyperparameters)


def test_a_string_for_a_float_default_is_refused_naming_key_value_and_type():
    with pytest.raises(UserInputError) as exc:
        _plan(["optimizer.lr=abc"])
    message = str(exc.value)
    assert "optimizer.lr='abc'" in message and "expected a number" in message and "string" in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize("value, expected", [("1", 1), ("1e-3", 1e-3), ("0.05", 0.05)])
def test_a_float_default_accepts_ints_and_floats(value, expected):
    plan = _plan([f"optimizer.lr={value}"])
    assert plan.hp_optimizer["lr"] == expected


def test_a_bool_hyperparameter_takes_only_true_or_false():
    assert _plan(["optimizer.nesterov=false"]).hp_optimizer["nesterov"] is False
    with pytest.raises(UserInputError, match=r"optimizer\.nesterov=2: expected true or false.*integer 2"):
        _plan(["optimizer.nesterov=2"])
    with pytest.raises(UserInputError, match="optimizer.nesterov='yes'"):
        _plan(["optimizer.nesterov=yes"])


def test_an_int_default_refuses_a_float_and_a_null_is_refused_for_a_typed_default():
    with pytest.raises(UserInputError, match=r"norm\.groups=2\.5: expected an integer"):
        _plan(["norm.groups=2.5"], norm="groupnorm")
    assert _plan(["norm.groups=4"], norm="groupnorm").hp_norm["groups"] == 4
    with pytest.raises(UserInputError, match=r"optimizer\.lr=null"):
        _plan(["optimizer.lr=null"])


def test_a_categorical_search_space_entry_is_enforced():
    assert _plan(["norm.ecm=ac"], norm="online_norm").hp_norm["ecm"] == "ac"
    with pytest.raises(UserInputError, match=r"norm\.ecm='lss': expected one of 'ls', 'ac'"):
        _plan(["norm.ecm=lss"], norm="online_norm")


def test_typed_hyperparameters_get_the_same_check():
    """What bench tune and bench calibrate pass to plan_run (no strings) is checked alike."""
    with pytest.raises(UserInputError, match=r"optimizer\.lr='abc'"):
        _plan(hyperparameters={"optimizer": {"lr": "abc"}})
    with pytest.raises(UserInputError, match=r"optimizer\.nesterov=1"):
        _plan(hyperparameters={"optimizer": {"nesterov": 1}})
    assert _plan(hyperparameters={"optimizer": {"lr": 2}}).hp_optimizer["lr"] == 2


def test_a_none_default_accepts_anything():
    from harness.common.config import check_hyperparameter

    for value in ("x", 1, 2.5, True, None, [1, 2]):
        check_hyperparameter("optimizer", "anything", value, {"anything": None})
    with pytest.raises(UserInputError, match="expected a number in its SEARCH_SPACE range"):
        check_hyperparameter("optimizer", "lr", "x", {"lr": None}, {"lr": {"min": 1e-4, "max": 1e-2}})


def test_a_bare_optimizer_hyperparameter_suggests_its_section():
    with pytest.raises(UserInputError, match=r"unknown config key 'lr' in 'lr=1e-3'; did you mean 'optimizer\.lr'\?"):
        _plan(["lr=1e-3"])


def test_a_bare_norm_hyperparameter_suggests_its_section():
    with pytest.raises(UserInputError, match=r"did you mean 'norm\.groups'\?"):
        _plan(["groups=4"], norm="groupnorm")
    # a name both halves take: both are suggested
    with pytest.raises(UserInputError, match=r"did you mean 'optimizer\.eps' or 'norm\.eps'\?"):
        _plan(["eps=1e-6"], submission="adamw", norm="groupnorm")


def test_the_cli_refuses_a_mistyped_override_with_exit_2_and_writes_nothing(tmp_path):
    output = tmp_path / "results"
    out = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "run", "-s", "sgd", "-w", "cifar",
         "--size", "tiny", "--output", str(output), "optimizer.lr=abc"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "optimizer.lr='abc'" in out.stderr and "expected a number" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not output.exists() and not any(tmp_path.rglob("run.json"))


def test_an_output_override_is_where_bench_run_writes(tmp_path):
    """`output=DIR` is obeyed, not silently beaten by the --output option's default."""
    from typer.testing import CliRunner

    from harness.cli import app

    result = CliRunner().invoke(app, ["run", "-s", "adamw", "-w", "grokking", "--size", "tiny",
                                      f"output={tmp_path / 'here'}", "budget.max_steps=1", "eval.every_steps=1"])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "here" / "runs" / "grokking-tiny" / "adamw").glob("*/run.json"))
