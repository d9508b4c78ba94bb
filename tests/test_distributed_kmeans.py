"""clipadapt.distributed.kmeans / paired_kmeans on real gloo groups of 2 and 3 CPU ranks: the
centroids, counts, splits and inertia of the single-process run on the concatenated shards,
the same on every rank; k-means++ and random initial rows bitwise those of one process."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import clipadapt
import clipadapt.distributed as cd
from distributed_ranks import run_ranks, values

D = 8
# Over 4096 rows, so that k-means++'s 4096-row weight blocks straddle shards; one shard empty,
# one smaller than n_clusters.
SHARDS = {2: [3000, 6100], 3: [5000, 0, 4100]}
CASES = {
    "kmeans++ cosine": dict(n_clusters=20, max_iter=4, metric="cosine", init="kmeans++", seed=5),
    "kmeans++ l2, initial rows": dict(n_clusters=12, max_iter=0, metric="l2", init="kmeans++", seed=2),
    "random ip float16, paired": dict(n_clusters=9, max_iter=3, metric="ip", init="random", seed=1, paired=True,
                                      dtype="float16"),
    "sub-sample l2": dict(n_clusters=5, max_iter=3, metric="l2", init="random", max_points_per_centroid=100),
    "init array": dict(n_clusters=6, max_iter=2, metric="cosine", init="array"),
    "empty clusters split": dict(n_clusters=30, max_iter=3, metric="cosine", init="random", seed=4, data="repeated"),
}


def data(sizes: list[int], case: dict) -> tuple[np.ndarray, np.ndarray]:
    """(assign rows, update rows) of the union, [sum(sizes), D]; ``repeated``: 8 distinct rows,
    so that random initial rows repeat and clusters go empty."""
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((sum(sizes), D)).astype(case.get("dtype", "float32"))
    if case.get("data") == "repeated":
        rows = rows[rng.integers(0, 8, len(rows))]
    partners = (rows + 0.3 * rng.standard_normal(rows.shape)).astype(rows.dtype) if case.get("paired") else rows
    return rows, partners


def arguments(case: dict) -> dict:
    settings = {name: value for name, value in case.items() if name not in ("paired", "dtype", "data")}
    if case["init"] == "array":
        settings["init"] = np.random.default_rng(3).standard_normal((case["n_clusters"], D)).astype(np.float32)
    return settings


def cluster_every_case(rank: int, world_size: int) -> dict:
    results = {}
    for name, case in CASES.items():
        rows, partners = (np.split(array, np.cumsum(SHARDS[world_size])[:-1])[rank]
                          for array in data(SHARDS[world_size], case))
        if case.get("paired"):
            results[name] = cd.paired_kmeans(torch.from_numpy(rows), torch.from_numpy(partners), **arguments(case))
        else:
            results[name] = cd.kmeans(rows, **arguments(case))
    return results


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharded_kmeans_equals_single_process(world_size):
    outcomes = values(run_ranks(world_size, cluster_every_case))
    for name, case in CASES.items():
        rows, partners = data(SHARDS[world_size], case)
        expected = (clipadapt.paired_kmeans(rows, partners, **arguments(case)) if case.get("paired") else
                    clipadapt.kmeans(rows, **arguments(case)))
        results = [outcome[name] for outcome in outcomes]
        for result in results:  # every rank holds the same bits
            np.testing.assert_array_equal(np.asarray(result.centroids), np.asarray(results[0].centroids))
        result = results[0]
        centroids = np.asarray(result.centroids)
        if case["max_iter"] == 0:  # the initial rows, drawn as one process draws them
            np.testing.assert_array_equal(centroids, expected.centroids, err_msg=name)
        np.testing.assert_allclose(centroids, expected.centroids, rtol=0, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(np.asarray(result.counts), expected.counts, err_msg=name)
        np.testing.assert_array_equal(np.concatenate([np.asarray(r.assignments) for r in results]),
                                      expected.assignments, err_msg=name)
        assert result.splits == expected.splits, name
        np.testing.assert_allclose(result.inertia, expected.inertia, rtol=1e-6, err_msg=name)
        assert sum(expected.splits) > 0 or name != "empty clusters split"


def misuse(rank: int, world_size: int, scenario: str):
    rows = np.random.default_rng(rank).standard_normal((50, D)).astype(np.float32)
    if scenario == "nan" and rank == 0:
        rows[0, 0] = np.inf
    init = (np.random.default_rng(10 + rank).standard_normal((4, D)).astype(np.float32) if scenario == "init differs"
            else "random")
    return cd.kmeans(rows, 4, max_iter=1, init=init)


@pytest.mark.parametrize("scenario, errors, fragment", [
    ("nan", ["ValueError", "RankFailed"], "assign_x: contains NaN or Inf"),
    ("init differs", ["ValueError", "ValueError"], "init differs between ranks"),
])
def test_bad_input_ends_every_rank_with_an_error(scenario, errors, fragment):
    outcomes = run_ranks(2, misuse, scenario)
    assert [outcome.error and outcome.error[0] for outcome in outcomes] == errors
    assert all(fragment in outcome.error[1].splitlines()[0] for outcome in outcomes)
