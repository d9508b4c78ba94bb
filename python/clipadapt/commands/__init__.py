"""Method commands of the ``clipadapt`` CLI; each module imports its heavy dependencies only when run."""
from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` in plain text: descriptions wrapped to the terminal, indented lines (the
    examples) kept as written, and after an option's help its default, where it has one. No
    default is shown for a required option, a flag, a default of None (the help says what
    happens then) or a help text that already speaks of its default."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(line if not line or line.startswith(" ") else
                         textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                         for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or action.required or action.nargs == 0 or default is None
                or default is argparse.SUPPRESS or "default" in text):
            return text
        shown = ",".join(str(value) for value in default) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"


def example_epilog(examples: list[str]) -> str:
    """The examples section of a command's help."""
    return "example" + ("s" if len(examples) > 1 else "") + ":\n" + "\n".join(f"  {line}" for line in examples)
