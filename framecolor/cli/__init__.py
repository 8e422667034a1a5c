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
    # Command modules are light (they import the library inside each command),
    # so registering them all keeps `framecolor --help` fast.
    from framecolor.cli import apply, info, train

    for module in (info, train, apply):
        module.register(app)


def main():
    _register_commands()
    common.run(app)
