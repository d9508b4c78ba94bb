"""Rows of the union by global index: :func:`take_rows`."""
from __future__ import annotations

from typing import Any

import numpy as np

from clipadapt._arrays import to_numpy
from clipadapt.distributed._arrays import device_of, read_rows, to_library
from clipadapt.distributed._comm import Communicator
from clipadapt.distributed._shards import Layout, take_rows as take_from_shards


def take_rows(x: Any, indices: Any, *, group: Any = None, timeout: float | None = None) -> Any:
    """The rows of the union of every rank's ``x`` [n_r, d] at this rank's global ``indices``.

    Collective: every rank passes its shard and its own indices (int [m]: any order, repeats
    allowed, any count, 0 included); each row travels only from the rank that holds it to the
    ranks that ask (all-to-all). Global indices number the shards' rows in rank order.

    Returns:
        [len(indices), d] rows of ``x``'s dtype, in the library and on the device of ``x``.
    """
    comm = Communicator("take_rows", group, device_of(x), timeout)
    rows, wanted, error = None, None, None
    try:
        rows = read_rows(x, "x")
        wanted = np.asarray(to_numpy(indices, "indices"))
        if wanted.ndim != 1 or not (np.issubdtype(wanted.dtype, np.integer) or wanted.size == 0):
            raise ValueError(f"indices: expected a 1-D array of integer row indices, got {wanted.dtype} "
                             f"{list(wanted.shape)}")
        wanted = wanted.astype(np.int64)
    except (TypeError, ValueError) as raised:
        error = raised
    shared = {"dim": rows.array.shape[1], "dtype": rows.array.dtype, "device": rows.tensor.device.type} if rows else {}
    sizes = comm.handshake(error, shared, [rows.array.shape[0]] if rows else [0])[:, 0]
    layout = Layout.of_sizes(sizes, comm.rank)

    def check_range() -> None:
        if wanted.size and not 0 <= wanted.min() <= wanted.max() < layout.total:
            raise ValueError(f"indices: must lie in [0, {layout.total}), the rows of all shards; got "
                             f"{wanted.min()}..{wanted.max()}")

    comm.guarded(check_range)
    return to_library(take_from_shards(comm, layout, rows.tensor, wanted), rows.library)
