"""Every ```python block of README.md runs as written, on the CPU, in a fresh interpreter in an
empty directory: a reader who copies one block gets what it shows.

A block that cannot run here (it needs model weights, a GPU or a launcher such as torchrun)
starts with a comment ``# needs: ...`` that tells the reader what it needs; it is skipped, and
the skip says why.
"""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
if not README.is_file():  # the tests copied out of the checkout, to test an installed wheel
    pytest.skip("README.md is checked in a checkout", allow_module_level=True)
NEEDS = "# needs:"
# A fenced block, possibly indented inside a list item: the fence's indent, then the body.
PYTHON_BLOCK = re.compile(r"^(?P<indent>[ \t]*)```python\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                          re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, dedented code) of every ```python block."""
    return [(text.count("\n", 0, match.start()) + 1, textwrap.dedent(match.group("body")))
            for match in PYTHON_BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text())


def test_readme_has_runnable_examples():
    runnable = [code for _, code in BLOCKS if not code.lstrip().startswith(NEEDS)]
    assert len(runnable) >= 2, "README.md should show runnable Python examples"


def test_block_parser_finds_indented_blocks():
    text = "text\n\n- item:\n\n  ```python\n  x = 1\n  ```\n\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(5, "x = 1\n"), (9, "y = 2\n")]


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line: int, code: str, tmp_path: Path):
    first_line = code.lstrip().splitlines()[0]
    if first_line.startswith(NEEDS):
        pytest.skip(f"README.md:{line} {first_line.removeprefix('#').strip()}")
    finished = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 0, f"README.md:{line} failed:\n{finished.stderr[-4000:]}"
