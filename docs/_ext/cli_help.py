"""The ``clipadapt-help`` directive: the ``--help`` text of a ``clipadapt`` command, produced by
the installed command line at build time, so the page never drifts from the parser.

In MyST::

    ```{clipadapt-help} mudg index
    ```
"""
from __future__ import annotations

import contextlib
import io
import os

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

# Wide enough that option help wraps as in an ordinary terminal, narrow enough for the page.
HELP_COLUMNS = "96"


def command_help(words: list[str]) -> str:
    """What ``clipadapt WORDS --help`` prints."""
    from clipadapt.cli import main

    output = io.StringIO()
    previous_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        with contextlib.redirect_stdout(output), contextlib.suppress(SystemExit):
            main([*words, "--help"])
    finally:
        if previous_columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous_columns
    return output.getvalue().rstrip()


class ClipadaptHelp(SphinxDirective):
    """``clipadapt-help WORDS``: a literal block with ``clipadapt WORDS --help``."""

    required_arguments = 0
    optional_arguments = 3
    has_content = False

    def run(self) -> list[nodes.Node]:
        text = command_help(list(self.arguments))
        if not text:
            raise self.error(f"clipadapt {' '.join(self.arguments)} --help printed nothing")
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("clipadapt-help", ClipadaptHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
