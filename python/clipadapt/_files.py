"""Atomic file writes: a file is written under a ``.partial`` sibling name and renamed into
place only when complete, so a killed run never leaves a truncated file where a finished one
is expected (resumable builds and checkpoints rely on that)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """The sibling path to write ``path``'s content to; renamed to ``path`` when the block ends
    without an error, removed when it raises."""
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


@contextmanager
def atomic_open(path: Path, mode: str, **kwargs: Any) -> Iterator[Any]:
    """``open`` for writing ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as partial, open(partial, mode, **kwargs) as handle:
        yield handle


def write_text_atomically(path: Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
