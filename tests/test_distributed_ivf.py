"""clipadapt.distributed.ShardedIVFIndex on real gloo groups of 2 and 3 CPU ranks: adds, searches,
list sizes and saved files equal to one clipadapt.IVFIndex holding the union."""
from __future__ import annotations

import numpy as np
import pytest

import clipadapt
import clipadapt.distributed as cd
from distributed_ranks import run_ranks, values

D, N_LISTS = 6, 7
# Rows added per rank in two calls, and queries per rank: uneven, some empty.
FIRST, SECOND = {2: [90, 0], 3: [40, 0, 75]}, {2: [3, 50], 3: [0, 20, 1]}
QUERIES = {2: [9, 0], 3: [4, 6, 0]}
# (k, nprobe): nprobe 1 with k 60 leaves empty slots (-1); nprobe = K is exact search.
SEARCHES = [(5, 1), (8, 3), (60, 1), (12, N_LISTS)]


def rows(seed: int, count: int) -> np.ndarray:
    """Small integer coordinates: many exact ties in inner product, across shards too."""
    return np.random.default_rng(seed).integers(-2, 3, (count, D)).astype(np.float32)


def centroids() -> np.ndarray:
    return clipadapt.kmeans(rows(0, 200), N_LISTS, max_iter=3, metric="ip", init="random").centroids


def own(sizes: list[int], rank: int, seed: int) -> np.ndarray:
    return np.split(rows(seed, sum(sizes)), np.cumsum(sizes)[:-1])[rank]


def build_search_save_load(rank: int, world_size: int, directory: str) -> dict:
    index = cd.ShardedIVFIndex(centroids(), metric="ip")
    index.add(own(FIRST[world_size], rank, 1)).add(own(SECOND[world_size], rank, 2))
    queries = own(QUERIES[world_size], rank, 3)
    results = {"searches": [index.search(queries, k, nprobe) for k, nprobe in SEARCHES],
               "list sizes": index.list_sizes(), "ntotal": index.ntotal}
    given = cd.ShardedIVFIndex(centroids(), metric="ip")
    first = sum(FIRST[world_size][:rank])
    given.add(own(FIRST[world_size], rank, 1), indices=1000 + np.arange(first, first + FIRST[world_size][rank]))
    results["given ids"] = given.search(queries, 8, 3)
    index.save(directory)
    loaded = cd.ShardedIVFIndex.load(directory)
    results["loaded searches"] = [loaded.search(queries, k, nprobe) for k, nprobe in SEARCHES]
    return results


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharded_index_equals_one_index_of_the_union(world_size, tmp_path):
    outcomes = values(run_ranks(world_size, build_search_save_load, str(tmp_path)))
    expected = clipadapt.IVFIndex(centroids(), metric="ip")
    expected.add(rows(1, sum(FIRST[world_size]))).add(rows(2, sum(SECOND[world_size])))
    for rank, results in enumerate(outcomes):
        queries = own(QUERIES[world_size], rank, 3)
        for searches in (results["searches"], results["loaded searches"]):
            for (k, nprobe), (scores, ids) in zip(SEARCHES, searches):
                assert scores.shape == ids.shape == (len(queries), k)
                if len(queries):
                    expected_scores, expected_ids = expected.search(queries, k, nprobe)
                    np.testing.assert_array_equal(ids, expected_ids, err_msg=f"k={k} nprobe={nprobe}")
                    np.testing.assert_array_equal(scores, expected_scores)
        np.testing.assert_array_equal(results["list sizes"], expected.list_sizes())
        if len(queries):
            given = clipadapt.IVFIndex(centroids(), metric="ip")
            given.add(rows(1, sum(FIRST[world_size])), indices=1000 + np.arange(sum(FIRST[world_size])))
            for mine, theirs in zip(results["given ids"], given.search(queries, 8, 3)):
                np.testing.assert_array_equal(mine, theirs)
        assert results["ntotal"] == expected.ntotal
    assert (expected.search(rows(3, 20), 60, 1)[1] == -1).any()  # the empty slots were exercised
    loaded = cd.load_as_one(tmp_path)
    for mine, theirs in zip(loaded.inverted_lists(), expected.inverted_lists()):
        np.testing.assert_array_equal(mine, theirs)


def misuse(rank: int, world_size: int):
    index = cd.ShardedIVFIndex(centroids(), metric="ip")
    index.add(own([5, 5], rank, 1))
    return index.search(own([2, 2], rank, 3), 11)


def test_search_refuses_k_beyond_the_union_on_every_rank():
    outcomes = run_ranks(2, misuse)
    assert [outcome.error[0] for outcome in outcomes] == ["ValueError", "ValueError"]
    assert all("k: 11 exceeds the 10 rows in the index" in outcome.error[1] for outcome in outcomes)
