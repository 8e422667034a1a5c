"""The `framecolor` command: a thin typer layer over the library.

Each command lives in its own module and imports the library lazily inside
the command, so `framecolor --help` starts without loading JAX.
"""

from __future__ import annotations

import typer

from framecolor.cli import common


def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
):
    common.set_debug(debug)


def make_app() -> typer.Typer:
    """The whole command-line app; built on demand so tests get a fresh one."""
    from framecolor.cli import apply, eval, info, train

    app = typer.Typer(
        help="Colorize black-and-white video with a Flax encoder-decoder.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    for module in (info, train, apply, eval):
        module.register(app)
    return app


def main():
    common.keep_compiled_programs()
    common.run(make_app())
