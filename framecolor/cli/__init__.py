"""The `framecolor` command: a thin typer layer over the library.

Each command lives in its own module and imports the library lazily inside
the command, so `framecolor --help` starts without loading JAX.
"""

from __future__ import annotations

import typer

from framecolor.cli import common

app = typer.Typer(
    help="Colorize black-and-white video with a Flax encoder-decoder.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
):
    common.set_debug(debug)


def _register_commands():
    # Imported here, not at module top, so that each command module can
    # `from framecolor.cli import app`-free register itself by function.
    from framecolor.cli import info

    for module in (info,):
        module.register(app)


def main():
    _register_commands()
    common.run(app)
