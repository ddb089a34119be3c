"""The ``selflearn`` command line, built on the public API.

Run ``selflearn --help`` or ``selflearn COMMAND --help``.
"""

from __future__ import annotations

import sys

import duckdb
from rich.markup import escape

from selflearn.cli.apps import app
from selflearn.cli.common import console
from selflearn.core.errors import SelflearnError
from selflearn.core.extras import is_learn_module, learn_dependency

# Importing a command module registers its commands; in the order `selflearn --help` lists them.
# isort: off
# fmt: off
from selflearn.cli import data, learn, concepts, review, report, run, starter, chat, train, label, label_export, fpi, asr, evaluate, wyoming, importers, community  # noqa: F401, E501
# fmt: on
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the app, turning selflearn errors into one clear line and exit code 2."""
    try:
        try:
            app()
        except ModuleNotFoundError as exc:  # a serving install running a training command
            if not is_learn_module(exc.name):
                raise
            raise learn_dependency("this command", exc) from exc
    except SelflearnError as exc:
        # One line however long (no wrapping at the console width), and the message is text, not markup.
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except duckdb.Error as exc:  # a store that opened but cannot be read: damaged or truncated
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"a store could not be read (damaged or truncated?): {first}"
        console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        sys.exit(2)
