"""Every command's --help is plain text (no reStructuredText markup), shows defaults only where
they exist, and ends with an example."""
import contextlib
import io
import re

import pytest

from clipadapt.cli import EXAMPLES, main

COMMANDS = sorted(EXAMPLES)


def help_text(words: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit) as exit_info:
        main([*words.split(), "--help"])
    assert exit_info.value.code == 0
    return output.getvalue()


@pytest.mark.parametrize("words", COMMANDS, ids=[words or "clipadapt" for words in COMMANDS])
def test_help_is_plain_text_with_an_example(words):
    text = help_text(words)
    assert not re.search(r"``|:(class|func|mod|meth):", text), text
    assert "default: None" not in text and "default: False" not in text and "default: True" not in text, text
    assert re.search(r"^examples?:\n  (torchrun .* -m )?clipadapt", text, re.MULTILINE), text


def test_every_command_has_examples():
    """A command added to the CLI without examples fails here (and its --help would not build)."""
    listed = help_text("")
    for command in ("info", "bench", "reclip", "mudg"):
        assert command in listed and command in EXAMPLES
    for step in ("corpus", "index", "retrieve", "train"):
        assert f"mudg {step}" in EXAMPLES
    for benchmark in ("knn", "lp", "kmeans", "ivf", "reclip-lp", "mudg-index", "distributed"):
        assert f"bench {benchmark}" in EXAMPLES
