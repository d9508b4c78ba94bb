"""pytest-benchmark: the MUDG source index (pairing, paired or standard k-means, adding every
image) on a small synthetic corpus.

Run with ``pytest benchmarks/ --benchmark-only``. Each test times one phase or one build and
asserts what must hold whatever the speed: the pairing is each caption's exact nearest image,
every image is in one list, recall never drops as more lists are probed, and probing all K
lists is exact search.
"""
from __future__ import annotations

import numpy as np
import pytest

from clipadapt import cuda_available
from clipadapt.bench.common import recall_at_k
from clipadapt.bench.ivf import synthetic_corpus
from clipadapt.bench.mudg_index import K, exact_top_k, run_mudg_index_benchmark, write_synthetic_corpus
from clipadapt.device import set_num_threads
from clipadapt.mudg.index import CLUSTERINGS, build_index, nearest_images

N, D, CLUSTERS, QUERIES, THREADS, SEED = 3000, 64, 20, 100, 2, 0
NPROBES = (1, 2, 4, 8, CLUSTERS)

_ON_GPU = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device")]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The synthetic corpus on disk, its held-out queries and their exact top-K images."""
    set_num_threads(THREADS)
    data = synthetic_corpus(N, D, QUERIES, seed=SEED)
    corpus = write_synthetic_corpus(data, tmp_path_factory.mktemp("mudg") / "corpus")
    truth, _ = exact_top_k(corpus, data.queries)
    return corpus, data.queries, truth


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=_ON_GPU)])
def test_mudg_pairing(benchmark, source, device: str) -> None:
    corpus = source[0]
    pairing = benchmark.pedantic(nearest_images, args=(corpus,), kwargs={"device": device, "progress": False},
                                 rounds=1, iterations=1)
    products = corpus.caption_embeddings().astype(np.float64) @ corpus.image_embeddings().astype(np.float64).T
    benchmark.extra_info.update(device=device, n=N, d=D, gflops=2.0 * N * N * D / benchmark.stats["mean"] / 1e9)
    np.testing.assert_array_equal(pairing, products.argmax(axis=1))


@pytest.mark.parametrize("clustering", CLUSTERINGS)
def test_mudg_index_build(benchmark, source, tmp_path, clustering: str) -> None:
    corpus, queries, truth = source
    index = benchmark.pedantic(build_index, args=(corpus, tmp_path), rounds=1, iterations=1,
                               kwargs={"n_clusters": CLUSTERS, "clustering": clustering, "seed": SEED,
                                       "resume": False, "progress": False})
    recalls = [recall_at_k(index.search(queries, K, nprobe)[1], truth) for nprobe in NPROBES]
    benchmark.extra_info.update(clustering=clustering, n=N, d=D, clusters=CLUSTERS, queries=QUERIES,
                                stages={name: stage["seconds"] for name, stage in index.info["stages"].items()},
                                recall_at_64=dict(zip(map(str, NPROBES), recalls)))
    assert index.ivf.list_sizes().sum() == N
    assert recalls == sorted(recalls)
    assert recalls[-1] == 1.0


def test_mudg_index_benchmark_run(benchmark, capsys) -> None:
    """The whole ``clipadapt bench mudg-index`` run: both indexes built, exact at nprobe = K."""
    result = benchmark.pedantic(run_mudg_index_benchmark, args=(N, D, CLUSTERS), rounds=1, iterations=1,
                                kwargs={"nprobes": NPROBES, "n_queries": QUERIES, "threads": THREADS, "seed": SEED})
    assert "MUDG source index, text queries -> images" in capsys.readouterr().out
    assert [(row["method"], row["status"]) for row in result["rows"]] == [("paired", "ok"), ("standard", "ok")]
    paired, standard = result["rows"]
    assert paired["pairing_seconds"] > 0 and standard["pairing_seconds"] is None
    for row in result["rows"]:
        exhaustive = row["by_nprobe"][-1]
        assert exhaustive["nprobe"] == CLUSTERS and exhaustive["rows_scanned"] == N
        assert exhaustive["recall_at_1"] == exhaustive["recall_at_10"] == exhaustive["recall_at_64"] == 1.0
