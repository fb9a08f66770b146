"""The ``bench`` application object and what every command module shares:
the consoles and the rule that our errors become one red line, never a traceback.

Imports only typer and rich: ``bench --help`` must not import torch.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import typer
from rich.console import Console, ConsoleDimensions
from typer.core import TyperGroup


def _help_defaults_to_false(cls):
    """``cls`` with a ``--help`` flag that defaults to False rather than None.

    typer (0.29) coerces an option's value through pydantic unless it already
    is a bool; an absent ``--help`` is None, so every command would import
    pydantic (~0.1 s) just to learn that help was not asked for. ``bench list``
    needs no other coercion: with this it skips pydantic entirely.
    """

    class HelpFalse(cls):
        def get_help_option(self, ctx):
            option = super().get_help_option(ctx)
            if option is not None and option.default is None:
                option.default = False
            return option

    HelpFalse.__name__ = HelpFalse.__qualname__ = f"HelpFalse{cls.__name__}"
    return HelpFalse


app = typer.Typer(
    cls=_help_defaults_to_false(TyperGroup),
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="optbench: wall-clock time to a fixed target for training algorithms.",
)
data_app = typer.Typer(no_args_is_help=True, help="Download and verify datasets for the full sizes.")
app.add_typer(data_app, name="data")

# Output that is not a terminal (a pipe, a log file, CliRunner) is read later or
# by programs: nothing may be cut to fit 80 columns. Such a console is as wide as
# COLUMNS says, else WIDE (lines are never wrapped, tables never squeezed).
WIDE = 10_000


class _Console(Console):
    """A rich Console whose width, when its output is not a terminal, is
    COLUMNS if set, else :data:`WIDE`; decided at each print, since the stream
    may be swapped after import (CliRunner)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(WIDE, size.height)  # COLUMNS, when set, is already _width
        return size

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)


console = _Console()
err_console = _Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Our errors become one red line and their exit code; never a traceback."""
    from harness.errors import OptbenchError

    try:
        yield
    except OptbenchError as exc:
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def executor_and_run_overrides(executor: str, overrides: list[str] | None):
    """(the executor spec, the run overrides): trailing ``executor.KEY=VALUE``
    arguments set the executor (tune, study lr, study batch); the rest go to
    every run."""
    from harness.sweeps.executors import load_executor

    given = overrides or []
    spec = load_executor(executor, [o for o in given if o.startswith("executor.")])
    return spec, [o for o in given if not o.startswith("executor.")]
