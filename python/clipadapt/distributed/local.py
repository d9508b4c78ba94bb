"""A process group on this machine, for trying the sharded functions, tests and benchmarks:
:func:`run_local_group` spawns ranks that talk through gloo over loopback (a FileStore in a
temporary directory), each running a function, and returns what each returned or raised."""
from __future__ import annotations

import os
import pickle
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.multiprocessing as multiprocessing

from clipadapt import _validate


@dataclass(frozen=True)
class RankOutcome:
    """What one rank's function returned (``value``) or raised (``error``: the exception's type
    name and its message followed by the traceback)."""

    rank: int
    value: Any = None
    error: tuple[str, str] | None = None


def run_local_group(world_size: int, function: Callable[..., Any], *args: Any, threads: int = 1,
                    timeout: float = 60.0, wait: float | None = None) -> list[RankOutcome]:
    """``function(rank, world_size, *args)`` on ``world_size`` spawned processes forming the
    default torch.distributed group (gloo, CPU); every rank's :class:`RankOutcome`, in rank order.

    Args:
        function: a module-level function of an importable module (spawned ranks import it);
            its return value must pickle.
        threads: CPU threads of each rank (clipadapt's kernels and torch).
        timeout: seconds a collective waits for the other ranks before it fails.
        wait: seconds to wait for the ranks before killing them (default: no limit).
    """
    world_size = _validate.integer(world_size, "world_size", minimum=1)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="clipadapt-group-") as directory:
        processes = [context.Process(target=_rank_main,
                                     args=(rank, world_size, directory, threads, timeout, function, args))
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


def results(outcomes: Sequence[RankOutcome]) -> list[Any]:
    """Every rank's return value; RuntimeError listing every rank's error if any raised."""
    errors = [f"rank {outcome.rank} raised {outcome.error[0]}: {outcome.error[1]}" for outcome in outcomes
              if outcome.error is not None]
    if errors:
        raise RuntimeError("\n".join(errors))
    return [outcome.value for outcome in outcomes]


def _rank_main(rank: int, world_size: int, directory: str, threads: int, timeout: float,
               function: Callable[..., Any], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    from clipadapt.device import set_num_threads

    torch.set_num_threads(threads)
    set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{directory}/store", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout))
    try:
        outcome = RankOutcome(rank, value=function(rank, world_size, *args))
    except BaseException as error:  # reported to the caller, which decides what was expected
        outcome = RankOutcome(rank, error=(type(error).__name__, f"{error}\n{traceback.format_exc()}"))
    with open(os.path.join(directory, f"outcome-{rank}.pkl"), "wb") as handle:
        pickle.dump(outcome, handle)
    # No destroy_process_group: it would wait for ranks that may have died on purpose.
    os._exit(0)


def _read_outcome(directory: Path, rank: int, exitcode: int | None) -> RankOutcome:
    file = directory / f"outcome-{rank}.pkl"
    if not file.is_file():
        return RankOutcome(rank, error=("Exited", f"no outcome (exit code {exitcode})"))
    with open(file, "rb") as handle:
        return pickle.load(handle)
