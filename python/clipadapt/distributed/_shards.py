"""Where the rows of the union live: shard r holds the global rows ``offsets[r] .. offsets[r + 1]``,
and the collectives that move rows by global id."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clipadapt.distributed._comm import Communicator


@dataclass(frozen=True)
class Layout:
    """The shard boundaries (int64 [R + 1], the shard sizes summed in rank order) seen from ``rank``."""

    offsets: np.ndarray
    rank: int

    @classmethod
    def of_sizes(cls, sizes: np.ndarray, rank: int) -> "Layout":
        return cls(np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]), rank)

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    @property
    def first_row(self) -> int:
        return int(self.offsets[self.rank])

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def owners(self, ids: np.ndarray) -> np.ndarray:
        """The rank holding each global row id (empty shards hold none)."""
        return np.searchsorted(self.offsets, ids, side="right") - 1

    def counts(self, ids: np.ndarray) -> np.ndarray:
        """How many of the global ``ids`` each rank holds, int64 [R]."""
        return np.bincount(self.owners(ids), minlength=len(self.offsets) - 1).astype(np.int64)

    def local(self, ids: np.ndarray) -> np.ndarray:
        """This shard's rows (local numbers) among the global ``ids``, in their order."""
        mine = ids[(ids >= self.offsets[self.rank]) & (ids < self.offsets[self.rank + 1])]
        return mine - self.offsets[self.rank]

    def subset(self, ids: np.ndarray) -> "Layout":
        """The layout of the rows ``ids`` (sorted global ids) of this one, in their order."""
        return Layout.of_sizes(self.counts(ids), self.rank)


def gather_sorted_rows(comm: Communicator, layout: Layout, rows: torch.Tensor, ids: np.ndarray) -> torch.Tensor:
    """The rows of the union at the sorted global ``ids`` [m], on every rank: each rank gives
    its own, gathered in rank order (which is id order)."""
    local = torch.as_tensor(layout.local(ids), device=rows.device)
    return comm.all_gather_rows(rows[local], layout.counts(ids).tolist())


def take_rows(comm: Communicator, layout: Layout, rows: torch.Tensor, ids: np.ndarray) -> torch.Tensor:
    """The rows of the union at this rank's global ``ids`` [m] (any order, repeats allowed):
    requests go to the ranks that hold them and the rows come back (three all-to-alls:
    counts, ids, rows)."""
    device = rows.device
    by_owner = np.argsort(layout.owners(ids), kind="stable")
    asked = layout.counts(ids)
    asked_here = comm.all_to_all_rows([torch.tensor([count], device=device) for count in asked],
                                      [1] * comm.world_size)
    requests = comm.all_to_all_rows(
        [torch.as_tensor(part, device=device) for part in np.split(ids[by_owner], np.cumsum(asked)[:-1])],
        [int(count.item()) for count in asked_here])
    answers = comm.all_to_all_rows([rows[request - layout.first_row] for request in requests], asked.tolist())
    found = torch.cat(answers)
    result = torch.empty_like(found)
    result[torch.as_tensor(by_owner, device=device)] = found
    return result
