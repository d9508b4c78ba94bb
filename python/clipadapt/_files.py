"""Files of the resumable builds and runs.

Atomic writes: a file is written under a ``.partial`` sibling name and renamed into place only
when complete, so a killed run never leaves a truncated file where a finished one is expected
(resumable builds and checkpoints rely on that). An output directory is held by one run at a
time (:func:`exclusive_directory`), and the JSON records are read with errors that name the file.
"""
from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"
LOCK_FILE = ".clipadapt.lock"


class DirectoryInUseError(OSError):
    """Another process holds the output directory (see :func:`exclusive_directory`)."""


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


def read_json(path: Path, fix: str) -> Any:
    """The JSON value in ``path``; a ValueError naming the file and ``fix`` (what to do about it)
    when the file is not valid JSON (e.g. truncated or edited by hand)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: is not valid JSON ({error}); {fix}") from error


@contextmanager
def exclusive_directory(path: Path, *, name: str | None = None) -> Iterator[Path]:
    """Create the directory ``path`` if needed and hold it for the block: a second process (or
    a second call in this one) asking for it meanwhile gets :class:`DirectoryInUseError` at once.
    Errors name ``path``, after ``name`` (e.g. the option that gave it) when given.

    Two runs writing one directory would replace each other's ``.partial`` files and records.
    The lock is an ``flock`` on ``path/.clipadapt.lock``: the system releases it when the
    holder exits, even when it is killed, so a stale lock never blocks a later run. The file
    itself stays (removing it could let a third run lock a fresh file while the second holds
    the old one).
    """
    label = f"{name} {path}" if name else str(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{label}: is a file, not a directory; give the path of a directory (it is created "
                                 "if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"{label}: cannot be created ({error.strerror}); give a directory path whose parents are "
                      "directories you can write to") from error
    descriptor = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryInUseError(f"{label}: is in use by another clipadapt run (it holds {path / LOCK_FILE}); "
                                      "wait for that run to finish or choose another directory") from None
        yield path
    finally:
        os.close(descriptor)  # releases the lock
