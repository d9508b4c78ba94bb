"""k-means++ over the union of the shards, drawing the rows :func:`clipadapt.kmeans` draws on
the concatenated shards from the same seed.

The native seeding (``csrc/kmeans/seeding_rules.h``) fixes every rounding: a row's weight is its
``seeding_distance`` from double dot products summed column by column, the weights are summed
in blocks of 4096 global rows in row order, and the walk subtracts block sums, then weights,
from ``u * total`` with ``u`` from ``std::mt19937_64`` (drawn natively, ``seeding_random_bits``). The same operations in the same order
here give the same bits whatever the shard boundaries: whole blocks are summed where they live,
the few rows of the blocks that straddle two shards are gathered and summed in order, and the
rank that holds the chosen block walks it and broadcasts the chosen row.
"""
from __future__ import annotations

import numpy as np
import torch

from clipadapt._native import _core
from clipadapt.distributed._comm import Communicator
from clipadapt.distributed._shards import Layout

SUM_BLOCK_ROWS = 4096


def unit_uniform(bits: int) -> float:
    """A double in [0, 1) from 64 random bits (``unit_uniform``)."""
    return (bits >> 11) * 2.0**-53


def uniform_row(u: float, n: int) -> int:
    """Row ``floor(u n)``, clamped to the last (``uniform_row``)."""
    return min(n - 1, int(u * float(n)))


def kmeans_plus_plus(comm: Communicator, layout: Layout, rows: torch.Tensor, n_clusters: int, metric: str,
                     seed: int) -> np.ndarray:
    """The global ids int64 [n_clusters] of the rows k-means++ seeds with, this rank holding
    ``rows`` [layout's rows of this rank, d]; the same on every rank."""
    shard = _ShardWeights(rows, metric)
    blocks = _BlockLayout(layout)
    draws = iter(_core.seeding_random_bits(seed % 2**64, n_clusters).tolist())  # the native std::mt19937_64
    chosen = [uniform_row(unit_uniform(next(draws)), layout.total)]
    center = _center(comm, layout, shard, chosen[0], layout.owners(np.array(chosen[:1]))[0])
    nearest = shard.distances(*center)
    for _ in range(1, n_clusters):
        row, source = _draw(comm, blocks, shard, nearest, unit_uniform(next(draws)))
        chosen.append(row)
        center = _center(comm, layout, shard, row, source)
        nearest = torch.minimum(nearest, shard.distances(*center))
    return np.array(chosen, dtype=np.int64)


class _ShardWeights:
    """This shard's rows widened to double, their squared norms (float32, as the native
    seeding keeps them) and their D^2 weights to a center."""

    def __init__(self, rows: torch.Tensor, metric: str):
        self.rows, self.metric = rows, metric
        self.squared = _column_by_column(rows, rows).float().double()

    def distances(self, center: torch.Tensor, center_squared: float) -> torch.Tensor:
        """``seeding_distance`` of every row to ``center`` (float64 [d]), float64 [n]."""
        dots = _column_by_column(self.rows, center.expand(self.rows.shape[0], -1))
        if self.metric == "l2":
            distance = (self.squared + center_squared) - 2.0 * dots
        else:
            norms = torch.sqrt(self.squared * center_squared)
            distance = 2.0 - 2.0 * torch.where(norms > 0, dots / torch.where(norms > 0, norms, 1.0), 0.0)
        return torch.where(distance < 0, 0.0, distance)


def _column_by_column(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Row-wise double dot products summed column by column in order (the native rounding)."""
    total = torch.zeros(first.shape[0], dtype=torch.float64, device=first.device)
    for column in range(first.shape[1]):
        total += first[:, column].double() * second[:, column].double()
    return total


def _center(comm: Communicator, layout: Layout, shard: _ShardWeights, row: int,
            source: int) -> tuple[torch.Tensor, float]:
    """Global row ``row`` (held by rank ``source``) widened to double, and its squared norm, on every rank."""
    message = torch.zeros(1 + shard.rows.shape[1], dtype=torch.float64, device=shard.rows.device)
    if comm.rank == source:
        local = row - layout.first_row
        message[0] = shard.squared[local]
        message[1:] = shard.rows[local].double()
    message = comm.broadcast(message, source)
    return message[1:], float(message[0])


class _BlockLayout:
    """Which 4096-row blocks of the union lie whole in one shard, and which straddle shards."""

    def __init__(self, layout: Layout):
        self.layout = layout
        total, size = layout.total, SUM_BLOCK_ROWS
        self.n_blocks = -(-total // size)
        starts, stops = layout.offsets[:-1], layout.offsets[1:]
        # Whole blocks of shard r: [first_whole[r], end_whole[r]); the last block of the union may be short.
        self.first_whole = -(-starts // size)
        self.end_whole = np.where(stops == total, -(-stops // size), stops // size)
        has_whole = (self.end_whole > self.first_whole) & (stops > starts)
        self.end_whole = np.where(has_whole, self.end_whole, self.first_whole)
        # Rows of shard r outside its whole blocks: a leading run and a trailing run.
        self.lead_stop = np.where(has_whole, np.minimum(stops, self.first_whole * size), stops)
        self.trail_start = np.where(has_whole, np.minimum(self.end_whole * size, total), stops)
        self.owner = np.full(self.n_blocks, -1)  # the rank holding a block whole, -1: straddling
        for rank, (first, end) in enumerate(zip(self.first_whole, self.end_whole)):
            self.owner[first:end] = rank

    def message(self, weights: np.ndarray) -> np.ndarray:
        """What this rank tells the others: its whole blocks' sums, then its leading and trailing weights."""
        rank, first_row = self.layout.rank, self.layout.first_row
        whole = weights[self.first_whole[rank] * SUM_BLOCK_ROWS - first_row:
                        self.end_whole[rank] * SUM_BLOCK_ROWS - first_row]
        sums = _sequential_sums(whole)
        lead = weights[:self.lead_stop[rank] - first_row]
        trail = weights[self.trail_start[rank] - first_row:]
        return np.concatenate([sums, lead, trail])

    def message_sizes(self) -> np.ndarray:
        starts, stops = self.layout.offsets[:-1], self.layout.offsets[1:]
        return (self.end_whole - self.first_whole) + (self.lead_stop - starts) + (stops - self.trail_start)

    def read(self, messages: list[np.ndarray]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Every block's sum, and the weights of each straddling block, from every rank's message."""
        block_sums = np.zeros(self.n_blocks)
        pieces: dict[int, list[np.ndarray]] = {}
        starts = self.layout.offsets[:-1]
        for rank, message in enumerate(messages):
            whole = self.end_whole[rank] - self.first_whole[rank]
            block_sums[self.first_whole[rank]:self.end_whole[rank]] = message[:whole]
            lead = self.lead_stop[rank] - starts[rank]
            runs = ((starts[rank], message[whole:whole + lead]), (self.trail_start[rank], message[whole + lead:]))
            for first_row, weights in runs:
                for block, part in _split_by_block(first_row, weights):
                    pieces.setdefault(block, []).append(part)
        straddling = {block: np.concatenate(parts) for block, parts in pieces.items()}
        for block, weights in straddling.items():
            block_sums[block] = _sequential_sums(weights)[0]
        return block_sums, straddling


def _draw(comm: Communicator, blocks: _BlockLayout, shard: _ShardWeights, nearest: torch.Tensor,
          u: float) -> tuple[int, int]:
    """The next seed ``(global row, rank holding it)``: ``pick_by_weight`` over the union."""
    layout = blocks.layout
    weights = nearest.cpu().numpy()
    sizes = blocks.message_sizes()
    parts = comm.all_gather_rows(torch.from_numpy(blocks.message(weights)).to(nearest.device), sizes.tolist())
    messages = np.split(parts.cpu().numpy(), np.cumsum(sizes)[:-1])
    block_sums, straddling = blocks.read(messages)
    total = float(np.add.accumulate(block_sums)[-1])
    if not total > 0.0:  # every row is at a center
        row = uniform_row(u, layout.total)
        return row, int(layout.owners(np.array([row]))[0])
    block, target = _walk(block_sums, u * total)
    owner = int(blocks.owner[block])
    first = block * SUM_BLOCK_ROWS
    if owner < 0:  # every rank holds the block's weights: each finds the row
        row = first + _walk(straddling[block], target)[0]
        return row, int(layout.owners(np.array([row]))[0])
    found = torch.zeros(1, dtype=torch.int64, device=nearest.device)
    if comm.rank == owner:
        local = first - layout.first_row
        found[0] = first + _walk(weights[local:local + SUM_BLOCK_ROWS], target)[0]
    return int(comm.broadcast(found, owner).item()), owner


def _walk(weights: np.ndarray, target: float) -> tuple[int, float]:
    """``while i < n - 1 and target >= weights[i]: target -= weights[i++]`` (subtracted in
    order); the index reached and the target left there."""
    left = np.subtract.accumulate(np.concatenate([[target], weights[:-1]]))
    stops = np.flatnonzero(left[:-1] < weights[:-1])
    index = int(stops[0]) if stops.size else len(weights) - 1
    return index, float(left[index])


def _sequential_sums(weights: np.ndarray) -> np.ndarray:
    """Sums of consecutive runs of :data:`SUM_BLOCK_ROWS` weights, each added in order from 0."""
    if not len(weights):
        return np.zeros(0)
    padded = np.zeros(-(-len(weights) // SUM_BLOCK_ROWS) * SUM_BLOCK_ROWS)
    padded[:len(weights)] = weights
    return np.add.accumulate(padded.reshape(-1, SUM_BLOCK_ROWS), axis=1)[:, -1]


def _split_by_block(first_row: int, weights: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """A run of weights starting at global row ``first_row``, cut at block boundaries."""
    cuts = np.arange((first_row // SUM_BLOCK_ROWS + 1) * SUM_BLOCK_ROWS, first_row + len(weights), SUM_BLOCK_ROWS)
    parts = np.split(weights, cuts - first_row)
    return [(first_row // SUM_BLOCK_ROWS + i, part) for i, part in enumerate(parts) if len(part)]
