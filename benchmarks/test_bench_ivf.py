"""pytest-benchmark: IVF on paired data with a modality gap, lists from clipadapt.paired_kmeans,
clipadapt.kmeans and faiss, at a small size.

Run with ``pytest benchmarks/ --benchmark-only``. Each test times one build (k-means + adding
every image) and asserts what must hold whatever the speed: every image is in one list, recall
never drops as more lists are probed, and probing all K lists is exact search.
"""
from __future__ import annotations

import numpy as np
import pytest

from clipadapt import cuda_available
from clipadapt.bench.common import Skipped, recall_at_k
from clipadapt.bench.ivf import (Corpus, IndexMethod, corpus_from_files, exact_top_k, plan_indexes, run_ivf_benchmark,
                                 synthetic_corpus)
from clipadapt._arrays import to_numpy

N, D, CLUSTERS, QUERIES, ITERS, THREADS, SEED = 5000, 64, 32, 200, 10, 2, 0
NPROBES = (1, 2, 4, 8, 16, CLUSTERS)

_ON_GPU = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device")]
CASES = ([(name, "cpu") for name in ("paired", "kmeans", "faiss")]
         + [pytest.param(name, "cuda", marks=_ON_GPU) for name in ("paired", "kmeans", "faiss")])


@pytest.fixture(scope="module")
def ivf_case() -> tuple[Corpus, np.ndarray]:
    """The synthetic paired corpus and the exact top-k images of its queries."""
    corpus = synthetic_corpus(N, D, QUERIES, seed=SEED)
    truth, _ = exact_top_k(corpus)
    return corpus, truth


@pytest.mark.parametrize(("name", "device"), CASES)
def test_ivf_build_and_search(benchmark, ivf_case, name: str, device: str) -> None:
    corpus, truth = ivf_case
    index = _index(name, device)
    built = benchmark.pedantic(index.build, args=(corpus,), rounds=1, iterations=1)
    recalls = [recall_at_k(to_numpy(built.search(nprobe)), truth) for nprobe in NPROBES]
    benchmark.extra_info.update(index=name, device=device, n=N, d=D, clusters=CLUSTERS, queries=QUERIES,
                                recall_at_10=dict(zip(map(str, NPROBES), recalls)))
    assert built.list_sizes.shape == (CLUSTERS,)
    assert built.list_sizes.sum() == N
    assert recalls == sorted(recalls)
    assert recalls[-1] == 1.0


def test_ivf_benchmark_from_files(benchmark, ivf_case, tmp_path, capsys) -> None:
    """The whole ``clipadapt bench ivf --images --captions --queries`` run on .npy files (the
    database read by ``IVFIndex.add(path)``): every CPU index is exact at nprobe = K."""
    corpus, _ = ivf_case
    paths = [tmp_path / f"{name}.npy" for name in ("images", "captions", "queries")]
    for path, array in zip(paths, (corpus.images, corpus.captions, corpus.queries)):
        np.save(path, array)
    result = benchmark.pedantic(run_ivf_benchmark, args=(corpus_from_files(*paths), CLUSTERS), rounds=1,
                                iterations=1, kwargs={"iters": ITERS, "nprobes": NPROBES, "threads": THREADS,
                                                      "seed": SEED, "device": "cpu"})
    assert "IVF, text queries -> images" in capsys.readouterr().out
    assert [row["status"] for row in result["rows"]] == ["ok"] * 3
    for row in result["rows"]:
        exhaustive = row["by_nprobe"][-1]
        assert exhaustive["nprobe"] == CLUSTERS
        assert exhaustive["recall_at_1"] == exhaustive["recall_at_10"] == 1.0
        assert exhaustive["rows_scanned"] == N


def _index(name: str, device: str) -> IndexMethod:
    """The index called ``name`` on ``device``; skips the test when it cannot be built here."""
    for entry in plan_indexes(clusters=CLUSTERS, iters=ITERS, device=device, threads=THREADS, seed=SEED):
        if entry.name == name:
            if isinstance(entry, Skipped):
                pytest.skip(f"{name} on {device}: {entry.reason}")
            return entry
    raise LookupError(f"no index {name}")
