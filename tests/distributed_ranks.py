"""The process groups of the clipadapt.distributed tests: spawned gloo ranks on this CPU, one
kernel thread each, collectives that give up after a short timeout so a broken test ends fast."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clipadapt.distributed.local import RankOutcome, results, run_local_group


def run_ranks(world_size: int, function: Callable[..., Any], *args: Any) -> list[RankOutcome]:
    """``function(rank, world_size, *args)`` on ``world_size`` ranks (see run_local_group)."""
    return run_local_group(world_size, function, *args, threads=1, timeout=20, wait=120)


values = results
