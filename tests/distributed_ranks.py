"""Runs a function on a real torch.distributed group of spawned CPU processes (gloo, a
FileStore in a temporary directory, loopback only) for the clipadapt.distributed tests."""
from __future__ import annotations

import os
import pickle
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.multiprocessing as mp

# Seconds a collective waits for the others before it fails: short, so a broken test ends fast.
COLLECTIVE_TIMEOUT = 20


@dataclass(frozen=True)
class Outcome:
    """What one rank's function returned (``value``) or raised (``error``: type name and message)."""

    rank: int
    value: Any = None
    error: tuple[str, str] | None = None


def values(outcomes: list[Outcome]) -> list[Any]:
    """Every rank's return value; AssertionError with every rank's error if any raised."""
    errors = [f"rank {outcome.rank} raised {outcome.error[0]}: {outcome.error[1]}" for outcome in outcomes
              if outcome.error is not None]
    if errors:
        raise AssertionError("\n".join(errors))
    return [outcome.value for outcome in outcomes]


def run_ranks(world_size: int, function: Callable[..., Any], *args: Any, wait: float = 60) -> list[Outcome]:
    """``function(rank, world_size, *args)`` on ``world_size`` spawned ranks of one gloo group
    (1 kernel thread each); every rank's :class:`Outcome`, in rank order. ``function`` must be
    a module-level function of an importable module (the ranks import it)."""
    context = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory:
        processes = [context.Process(target=_rank_main, args=(rank, world_size, directory, function, args))
                     for rank in range(world_size)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(wait)
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        return [_read_outcome(Path(directory), rank, process.exitcode) for rank, process in enumerate(processes)]


def _rank_main(rank: int, world_size: int, directory: str, function: Callable[..., Any], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    import clipadapt

    torch.set_num_threads(1)
    clipadapt.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{directory}/store", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT))
    try:
        outcome = Outcome(rank, value=function(rank, world_size, *args))
    except BaseException as error:  # reported to the test, which decides what was expected
        outcome = Outcome(rank, error=(type(error).__name__, f"{error}\n{traceback.format_exc()}"))
    with open(os.path.join(directory, f"outcome-{rank}.pkl"), "wb") as handle:
        pickle.dump(outcome, handle)
    # No destroy_process_group: it would wait for ranks that may have died on purpose.
    os._exit(0)


def _read_outcome(directory: Path, rank: int, exitcode: int | None) -> Outcome:
    file = directory / f"outcome-{rank}.pkl"
    if not file.is_file():
        return Outcome(rank, error=("Exited", f"no outcome (exit code {exitcode})"))
    with open(file, "rb") as handle:
        return pickle.load(handle)
