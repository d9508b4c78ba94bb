"""The collectives of :mod:`clipadapt.distributed`, on a torch.distributed process group.

Every public call opens a :class:`Communicator`, whose :meth:`Communicator.handshake` is the
call's first collective: every rank sends one fixed-size int64 vector (which function, the
arguments that must agree, its shard's sizes, whether its own checks failed), so a rank that
calls another function, passes other arguments or bad input ends *every* rank with an error
that names it, instead of a later collective hanging. Each wait is bounded by the call's
``timeout`` (else the group's), so a rank that died or never calls ends the others with
:class:`CollectiveError`.

Rows travel as raw bytes (any dtype, bit for bit); sums that must be the same on every rank
are added in rank order by :meth:`Communicator.sum_in_rank_order`.
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from clipadapt import _validate

Result = TypeVar("Result")

_HANDSHAKE_SLOTS = 16
_MAGIC = 0x636C6970  # "clip": a vector from another library's collective is not a handshake
_PER_RANK_SLOTS = _HANDSHAKE_SLOTS - 4
# The backends that can run each collective used here on tensors of a device type.
_BACKENDS = {"cpu": ("gloo", "mpi"), "cuda": ("nccl", "mpi")}


class CollectiveError(RuntimeError):
    """A collective failed or timed out: another rank died, raised outside clipadapt, or called
    another collective."""


class RankFailed(RuntimeError):
    """Another rank of the group failed inside the same call; the message names it and its error."""


@dataclass
class Traffic:
    """Bytes this process's clipadapt collectives sent to and received from other ranks (the
    payload of each exchange, as the algorithm moves it; the transport's own headers excluded)."""

    sent: int = 0
    received: int = 0


_traffic = Traffic()


def traffic() -> Traffic:
    """A copy of this process's :class:`Traffic` counters so far (subtract two for a phase)."""
    return Traffic(_traffic.sent, _traffic.received)


class Communicator:
    """The collectives one call of ``clipadapt.distributed.<operation>`` runs on ``group``
    (``None``: the default group) with tensors on ``device``."""

    def __init__(self, operation: str, group: Any, device: torch.device, timeout: float | None):
        self.operation = f"clipadapt.distributed.{operation}"
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(f"{self.operation}: torch.distributed is not initialised; call "
                               "torch.distributed.init_process_group() first (launch with torchrun, README.md)")
        self.group = group
        self.device = device
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        if self.rank < 0:
            raise ValueError(f"group: this process (global rank {dist.get_rank()}) is not a member; call "
                             f"{self.operation} only on the group's ranks")
        self._timeout = None if timeout is None else timedelta(
            seconds=_validate.real(timeout, "timeout", above=0.0))
        self._check_backend()

    def _check_backend(self) -> None:
        # "cpu:gloo,cuda:nccl"; get_backend says "undefined" for a group created without a backend.
        spec = dist.get_backend_config(self.group) if hasattr(dist, "get_backend_config") else \
            dist.get_backend(self.group)
        by_device = dict(part.split(":", 1) for part in spec.split(",")) if ":" in spec else None
        backend = by_device.get(self.device.type) if by_device is not None else spec
        if backend not in _BACKENDS.get(self.device.type, ()):
            wanted = " or ".join(_BACKENDS.get(self.device.type, ("none",)))
            raise ValueError(f"group: its backend {spec!r} cannot exchange {self.device.type} tensors (needs "
                             f"{wanted}); create the group with init_process_group(backend='cpu:gloo,cuda:nccl'), "
                             "or move the arrays to a device it serves")

    # ---- agreement -----------------------------------------------------------------------

    def handshake(self, error: BaseException | None, shared: dict[str, Any],
                  per_rank: Sequence[int] = ()) -> np.ndarray:
        """The call's first collective: checks that every rank runs this operation with the
        same ``shared`` arguments (JSON-serialisable) and that no rank's ``error`` (its own
        checks) is set; returns int64 [world_size, len(per_rank)], every rank's ``per_rank``.

        Raises (on every rank): the rank's own ``error``; :class:`RankFailed` for another's;
        ValueError when the operations or the shared arguments differ.
        """
        if len(per_rank) > _PER_RANK_SLOTS:
            raise AssertionError("handshake: too many per-rank values")
        vector = np.zeros(_HANDSHAKE_SLOTS, dtype=np.int64)
        vector[:4] = (_MAGIC, _crc(self.operation), error is not None, _crc(json.dumps(shared, sort_keys=True)))
        vector[4:4 + len(per_rank)] = per_rank
        everyone = np.stack([part.cpu().numpy() for part in self.all_gather(torch.from_numpy(vector))])
        if (everyone[:, :2] != vector[:2]).any():
            names = self._gather_objects(self.operation)
            raise ValueError(f"{self.operation}: the ranks called different operations ({_by_rank(names)}); "
                             "every rank of the group must make the same clipadapt.distributed calls in order")
        self._raise_failures(error, everyone[:, 2].astype(bool))
        if (everyone[:, 3] != vector[3]).any():
            raise ValueError(f"{self.operation}: {_differences(self._gather_objects(shared))}; pass the same "
                             "values on every rank")
        return everyone[:, 4:4 + len(per_rank)]

    def guarded(self, compute: Callable[[], Result]) -> Result:
        """``compute()`` (local work between collectives), then a check that it succeeded on
        every rank (so also a barrier); a failure anywhere raises on every rank, as in
        :meth:`handshake`."""
        error, result = None, None
        try:
            result = compute()
        except Exception as raised:  # told to the other ranks, then raised here again
            error = raised
        flags = self.all_gather(torch.tensor([error is not None], dtype=torch.int64))
        self._raise_failures(error, np.array([bool(flag.item()) for flag in flags]))
        return result

    def _raise_failures(self, error: BaseException | None, failed: np.ndarray) -> None:
        if not failed.any():
            return
        messages = self._gather_objects(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        first = int(np.flatnonzero(failed)[0])
        raise RankFailed(f"{self.operation}: rank {first} of {self.world_size} failed: {messages[first]}")

    def _gather_objects(self, value: Any) -> list[Any]:
        gathered: list[Any] = [None] * self.world_size
        self._wait(lambda: dist.all_gather_object(gathered, value, group=self.group), "all_gather_object")
        return gathered

    # ---- collectives ---------------------------------------------------------------------

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape and dtype everywhere), in rank order."""
        tensor = tensor.to(self.device).contiguous()
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        self._wait(dist.all_gather(parts, tensor, group=self.group, async_op=True), "all_gather")
        self._count(tensor.nbytes * (self.world_size - 1), tensor.nbytes * (self.world_size - 1))
        return parts

    def all_gather_rows(self, rows: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """The concatenation, in rank order, of every rank's ``rows`` [counts[r], ...]
        (any dtype, copied bit for bit)."""
        longest = max(counts)
        if longest == 0:
            return rows.new_empty((0, *rows.shape[1:]))
        padded = rows.new_zeros((longest, *rows.shape[1:]))
        padded[:rows.shape[0]] = rows
        parts = self.all_gather(_as_bytes(padded))
        return torch.cat([_from_bytes(part, rows)[:count] for part, count in zip(parts, counts)])

    def sum_in_rank_order(self, partial: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``partial`` [m, ...] (same shape everywhere), added in rank
        order so that every rank gets the same bits, run to run: rank s adds up row slice s of
        every rank's partial (an all-to-all), then the slices are gathered. Each rank sends
        and receives about 2 (R - 1) / R of the tensor, as a ring all-reduce does."""
        if self.world_size == 1:
            return partial.clone()
        slices = [len(part) for part in np.array_split(np.arange(partial.shape[0]), self.world_size)]
        mine = slices[self.rank]
        received = partial.new_empty((self.world_size * mine, *partial.shape[1:]))
        self._wait(dist.all_to_all_single(received, partial.contiguous(), [mine] * self.world_size, slices,
                                          group=self.group, async_op=True), "all_to_all")
        row_bytes = partial[:1].nbytes
        self._count(row_bytes * (partial.shape[0] - mine), row_bytes * mine * (self.world_size - 1))
        pieces = received.reshape(self.world_size, mine, *partial.shape[1:])
        total = pieces[0].clone()
        for piece in pieces[1:]:
            total += piece
        return self.all_gather_rows(total, slices)

    def all_reduce_exact(self, integers: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of an integer tensor (exact, so the order does not matter)."""
        if integers.is_floating_point():
            raise AssertionError("all_reduce_exact: integer tensors only")
        total = integers.to(self.device).clone()
        self._wait(dist.all_reduce(total, group=self.group, async_op=True), "all_reduce")
        moved = total.nbytes * 2 * (self.world_size - 1) // self.world_size
        self._count(moved, moved)
        return total

    def broadcast(self, tensor: torch.Tensor, source: int) -> torch.Tensor:
        """``tensor`` of rank ``source`` on every rank (the others pass a buffer of its shape)."""
        tensor = tensor.to(self.device).contiguous()
        self._wait(dist.broadcast(tensor, src=self._global(source), group=self.group, async_op=True), "broadcast")
        self._count(tensor.nbytes * (self.world_size - 1) if self.rank == source else 0,
                    0 if self.rank == source else tensor.nbytes)
        return tensor

    def all_to_all_rows(self, outgoing: Sequence[torch.Tensor], incoming_counts: Sequence[int]) -> list[torch.Tensor]:
        """Sends ``outgoing[r]`` (rows [n_r, ...], one dtype and row shape) to rank r and returns
        the rows each rank sent here, ``incoming_counts[r]`` of them from rank r."""
        like = outgoing[0]
        sent = _as_bytes(torch.cat(list(outgoing)))
        received = sent.new_empty((sum(incoming_counts), *sent.shape[1:]))
        self._wait(dist.all_to_all_single(received, sent, list(incoming_counts), [len(rows) for rows in outgoing],
                                          group=self.group, async_op=True), "all_to_all")
        row_bytes = sent[:1].nbytes if len(sent) else like[:1].nbytes
        self._count(row_bytes * (len(sent) - len(outgoing[self.rank])),
                    row_bytes * (len(received) - incoming_counts[self.rank]))
        return list(_from_bytes(received, like).split(list(incoming_counts)))

    def pass_along_ring(self, outgoing: torch.Tensor, incoming_rows: int) -> Callable[[], torch.Tensor]:
        """Starts sending ``outgoing`` rows to the next rank and receiving ``incoming_rows`` rows
        of the same row shape and dtype from the previous one; returns a function that waits
        for the rows received. Empty transfers are left out (both sides know the sizes)."""
        following, preceding = (self.rank + 1) % self.world_size, (self.rank - 1) % self.world_size
        received = outgoing.new_empty((incoming_rows, *outgoing.shape[1:]))
        operations = []
        if outgoing.shape[0]:
            operations.append(dist.P2POp(dist.isend, _as_bytes(outgoing.contiguous()), self._global(following),
                                         self.group))
        incoming = _as_bytes(received)
        if incoming_rows:
            operations.append(dist.P2POp(dist.irecv, incoming, self._global(preceding), self.group))
        works = dist.batch_isend_irecv(operations) if operations else []
        self._count(outgoing.nbytes, received.nbytes)

        def wait() -> torch.Tensor:
            for work in works:
                self._wait(work, "send/receive along the ring")
            return _from_bytes(incoming, outgoing) if incoming_rows else received

        return wait

    def barrier(self) -> None:
        """Every rank has reached this point (an all-gather, so the timeout applies on every backend)."""
        self.all_gather(torch.zeros(1, dtype=torch.int64))

    # ---- plumbing ------------------------------------------------------------------------

    def _global(self, group_rank: int) -> int:
        return group_rank if self.group is None else dist.get_global_rank(self.group, group_rank)

    def _wait(self, work: Any, collective: str) -> None:
        try:
            if callable(work):  # a blocking call (all_gather_object has no async form)
                work()
            elif self._timeout is None:
                work.wait()
            else:
                work.wait(timeout=self._timeout)
        except RuntimeError as error:
            raise CollectiveError(
                f"{self.operation}: rank {self.rank} of {self.world_size}: {collective} failed ({error}). Another "
                "rank died, raised outside clipadapt, is still busy past the timeout, or called another "
                "collective; see the other ranks' errors") from error

    @staticmethod
    def _count(sent: int, received: int) -> None:
        _traffic.sent += int(sent)
        _traffic.received += int(received)


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _by_rank(values: Sequence[Any]) -> str:
    return ", ".join(f"rank {rank}: {value}" for rank, value in enumerate(values))


def _differences(shared: Sequence[dict[str, Any]]) -> str:
    """The arguments whose values differ between ranks, with each rank's value."""
    names = sorted({name for values in shared for name in values})
    differing = [name for name in names if len({json.dumps(values.get(name)) for values in shared}) > 1]
    return "; ".join(f"{name} differs between ranks ({_by_rank([values.get(name) for values in shared])})"
                     for name in differing)


def _as_bytes(rows: torch.Tensor) -> torch.Tensor:
    """A uint8 view [rows, row bytes] of ``rows`` [n, ...]: every backend moves bytes."""
    row_bytes = rows.element_size() * int(np.prod(rows.shape[1:], dtype=np.int64))
    return rows.contiguous().view(torch.uint8).reshape(rows.shape[0], row_bytes)


def _from_bytes(data: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Rows moved by :func:`_as_bytes` viewed again as ``like``'s dtype and row shape."""
    return data.view(like.dtype).reshape(data.shape[0], *like.shape[1:])
