"""clipadapt.distributed.knn / knn_graph / take_rows on real gloo groups of 2 and 3 CPU ranks:
bitwise the single-process result over the concatenated shards; bad input and broken ranks end
every rank with an error."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

import clipadapt
import clipadapt.distributed as cd
from distributed_ranks import run_ranks, values

D = 12
# (database rows, query rows) per rank: uneven, one shard smaller than k, empty shards and queries.
SHARDS = {2: ([37, 3], [11, 0]), 3: ([20, 0, 41], [5, 9, 7])}
CASES = [dict(k=5, metric="cosine", dtype="float32"), dict(k=7, metric="ip", dtype="float16"),
         dict(k=4, metric="l2", dtype="float32"), dict(k=35, metric="cosine", dtype="float32")]


def shards(seed: int, sizes: list[int], dtype: str) -> list[np.ndarray]:
    """Rows per rank, with exact duplicates across shards (ties go to the smaller global index)."""
    rows = np.random.default_rng(seed).standard_normal((sum(sizes), D)).astype(dtype)
    rows[-5:] = rows[:5]
    return np.split(rows, np.cumsum(sizes)[:-1])


def search_every_case(rank: int, world_size: int) -> list[tuple]:
    database_sizes, query_sizes = SHARDS[world_size]
    results = []
    for case in CASES:
        database = shards(1, database_sizes, case["dtype"])[rank]
        queries = shards(2, query_sizes, case["dtype"])[rank]
        results.append(cd.knn(queries, database, case["k"], metric=case["metric"]))
        if case["k"] < sum(database_sizes):
            graph = cd.knn_graph(torch.from_numpy(database), case["k"], metric=case["metric"])
            results.append((graph.scores.numpy(), graph.indices.numpy(), graph.n, graph.first_row))
    wanted = np.random.default_rng(rank).integers(0, sum(database_sizes), 4 * rank)  # any order, repeats, none
    results.append(cd.take_rows(shards(1, database_sizes, "float16")[rank], wanted))
    return results


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharded_knn_and_graph_equal_single_process_bitwise(world_size):
    outcomes = values(run_ranks(world_size, search_every_case))
    database_sizes, query_sizes = SHARDS[world_size]
    for rank, results in enumerate(outcomes):
        results = iter(results)
        for case in CASES:
            database = np.concatenate(shards(1, database_sizes, case["dtype"]))
            queries = shards(2, query_sizes, case["dtype"])[rank]
            scores, ids = next(results)
            assert scores.shape == ids.shape == (len(queries), case["k"])
            if len(queries):
                expected_scores, expected_ids = clipadapt.knn(queries, database, case["k"], metric=case["metric"])
                np.testing.assert_array_equal(ids, expected_ids)
                np.testing.assert_array_equal(scores, expected_scores)
            if case["k"] < len(database):
                scores, ids, n, first_row = next(results)
                rows = slice(first_row, first_row + database_sizes[rank])
                assert (n, first_row) == (len(database), sum(database_sizes[:rank]))
                graph = clipadapt.knn_graph(database, case["k"], metric=case["metric"])
                np.testing.assert_array_equal(ids, graph.indices[rows])
                np.testing.assert_array_equal(scores, graph.scores[rows])
        wanted = np.random.default_rng(rank).integers(0, sum(database_sizes), 4 * rank)
        np.testing.assert_array_equal(next(results), np.concatenate(shards(1, database_sizes, "float16"))[wanted])


def misuse(rank: int, world_size: int, scenario: str):
    database = shards(1, [10] * world_size, "float32")[rank]
    if scenario == "nan" and rank == 1:
        database[3, 2] = np.nan
    if scenario == "other operation" and rank == 1:
        return cd.knn_graph(database, 3)
    if scenario == "died":
        if rank == 1:
            os._exit(3)
        start = time.perf_counter()
        try:
            cd.knn(database, database, 3, timeout=3)
        finally:
            assert time.perf_counter() - start < 15
    k = 4 + rank if scenario == "k differs" else 100 if scenario == "k too large" else 3
    return cd.knn(database, database, k)


@pytest.mark.parametrize("scenario, errors", [
    ("nan", ["RankFailed", "ValueError"]),
    ("k differs", ["ValueError", "ValueError"]),
    ("k too large", ["ValueError", "ValueError"]),
    ("other operation", ["ValueError", "ValueError"]),
])
def test_bad_input_on_one_rank_ends_every_rank_with_its_error(scenario, errors):
    outcomes = run_ranks(2, misuse, scenario)
    assert [outcome.error and outcome.error[0] for outcome in outcomes] == errors
    messages = [outcome.error[1].splitlines()[0] for outcome in outcomes]
    expected = {"nan": ["rank 1 of 2 failed: ValueError: queries: contains NaN", "queries: contains NaN"],
                "k differs": ["k differs between ranks (rank 0: 4, rank 1: 5)"] * 2,
                "k too large": ["k: 100 exceeds the 20 candidate rows of all shards"] * 2,
                "other operation": ["the ranks called different operations"] * 2}[scenario]
    for message, fragment in zip(messages, expected):
        assert fragment in message


def test_a_rank_that_dies_ends_the_others_within_the_timeout():
    survivor, dead = run_ranks(2, misuse, "died")
    assert dead.error[0] == "Exited"
    assert survivor.error[0] == "CollectiveError", survivor.error
    assert "rank 0 of 2" in survivor.error[1]
