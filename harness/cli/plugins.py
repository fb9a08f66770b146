"""``bench new``: scaffold plugins. Registered on :data:`harness.cli.app.app`.

Module-level imports are typer, rich and the standard library only, so
``bench --help`` stays torch-free.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.app import user_errors, app, console

new_app = typer.Typer(no_args_is_help=True, help="Write a new plugin that runs as written, ready to edit.")
app.add_typer(new_app, name="new")


@new_app.command("submission")
def new_submission(
    name: str = typer.Argument(..., help="Plugin name, a Python identifier, e.g. my_adam."),
    kind: str = typer.Option("optimizer", "--kind", "-k", help="optimizer or norm."),
    package: bool = typer.Option(False, "--package", help="Write an installable package (pyproject.toml with an optbench.submissions entry point) instead of one file."),
    directory: Path = typer.Option(Path("."), "--dir", "-d", help="Where to write it (default: the current directory)."),
) -> None:
    """Write NAME.py (or, with --package, optbench-NAME/) and print what to run next.

    Never overwrites a file.
    """
    with user_errors():
        from harness.plugins.scaffold import new_submission as scaffold

        result = scaffold(name, kind=kind, package=package, directory=directory)
    what = f"{'an' if result.kind == 'optimizer' else 'a'} {result.kind} plugin"
    if result.root is not None:
        console.print(f"wrote {what} package [bold]{result.root}[/]:", highlight=False)
    else:
        console.print(f"wrote {what} [bold]{result.files[0]}[/] (it runs as written):", highlight=False)
    for path in result.files:
        console.print(f"  {path}", highlight=False)
    console.print("next:", highlight=False)
    width = max(len(cmd) for cmd, _ in result.next_steps)
    for cmd, comment in result.next_steps:
        console.print(f"  {cmd.ljust(width)}   # {comment}", highlight=False, markup=False, soft_wrap=True)
