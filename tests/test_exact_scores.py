"""Scores are a function of the two rows alone (knn, knn_graph, assign, IVF, k-means).

Every reported score is the float32 rounding of one fixed-order float64 evaluation, so copies of
a row tie bitwise and come smaller index first, and nothing depends on batching, position, thread
count or the BLAS kernel. Random float data throughout: integer data would tie in any order.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import clipadapt

METRICS = ["cosine", "ip", "l2"]
DTYPES = ["float32", "float16", "bfloat16"]


def _as_dtype(x, dtype):
    if dtype == "bfloat16":
        import torch

        return torch.from_numpy(x).bfloat16()
    return x.astype(dtype)


def _to_numpy(a):
    if type(a).__module__.startswith("torch"):
        return a.float().numpy() if a.is_floating_point() else a.numpy()
    return np.asarray(a)


def _with_copies(rng, n=301, d=67, copies=120):
    """A database with `copies` rows duplicated at random positions; returns it and, per row,
    the id of its first occurrence (the row it duplicates)."""
    base = rng.standard_normal((n, d)).astype(np.float32)
    source = np.r_[np.arange(n), rng.choice(n, copies, replace=False)]
    order = rng.permutation(len(source))
    return base[source[order]], source[order]


def _reference(q, x, k, metric):
    """Float64 top-k by (score rounded to float32, smaller index), with numpy's own summation."""
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    dots = q64 @ x64.T
    if metric == "cosine":
        norms = np.linalg.norm(q64, axis=1)[:, None] * np.linalg.norm(x64, axis=1)[None, :]
        keys = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), 0.0)
    elif metric == "l2":
        keys = -np.maximum((q64 ** 2).sum(1)[:, None] + (x64 ** 2).sum(1)[None, :] - 2 * dots, 0.0)
    else:
        keys = dots
    keys32 = keys.astype(np.float32)
    ids = np.lexsort((np.broadcast_to(np.arange(x.shape[0]), keys32.shape), -keys32), axis=1)[:, :k]
    return np.take_along_axis(keys, ids, 1), ids


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_copies_tie_bitwise_smaller_index_first(metric, dtype):
    rng = np.random.default_rng(11)
    x, source = _with_copies(rng)
    q = rng.standard_normal((200, x.shape[1])).astype(np.float32)
    if dtype != "float32":  # the reference sees the values the library sees
        x = _to_numpy(_as_dtype(x, dtype)).astype(np.float32)
        q = _to_numpy(_as_dtype(q, dtype)).astype(np.float32)
    scores, ids = clipadapt.knn(_as_dtype(q, dtype), _as_dtype(x, dtype), 6, metric=metric)
    scores, ids = _to_numpy(scores), _to_numpy(ids)
    _, expected = _reference(q, x, 6, metric)
    np.testing.assert_array_equal(ids, expected)
    for row_scores, row_ids in zip(scores, ids):
        for a in range(6):
            for b in range(a + 1, 6):
                if source[row_ids[a]] == source[row_ids[b]]:
                    assert row_scores[a] == row_scores[b]  # bitwise: a copy is the same row
                    assert row_ids[a] < row_ids[b]


@pytest.mark.parametrize("metric", METRICS)
def test_scores_match_float64(metric):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((777, 129)).astype(np.float32) * rng.uniform(0.5, 2.0, (777, 1)).astype(np.float32)
    q = rng.standard_normal((50, 129)).astype(np.float32)
    scores, ids = clipadapt.knn(q, x, 9, metric=metric)
    ref_keys, ref_ids = _reference(q, x, 9, metric)
    np.testing.assert_array_equal(ids, ref_ids)
    expected = -ref_keys if metric == "l2" else ref_keys
    np.testing.assert_allclose(scores, expected.astype(np.float32), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
def test_query_alone_equals_query_in_batch_and_shuffles_follow(metric):
    rng = np.random.default_rng(5)
    x, _ = _with_copies(rng, n=900, d=96, copies=300)
    q = np.concatenate([x[:40] + 1e-3 * rng.standard_normal((40, 96)).astype(np.float32),
                        rng.standard_normal((560, 96)).astype(np.float32)])
    scores, ids = clipadapt.knn(q, x, 7, metric=metric)
    for row in rng.choice(len(q), 25, replace=False):
        alone_scores, alone_ids = clipadapt.knn(q[row:row + 1], x, 7, metric=metric)
        np.testing.assert_array_equal(alone_ids[0], ids[row])
        np.testing.assert_array_equal(alone_scores[0], scores[row])
    order = rng.permutation(len(q))
    shuffled_scores, shuffled_ids = clipadapt.knn(q[order], x, 7, metric=metric)
    np.testing.assert_array_equal(shuffled_ids, ids[order])
    np.testing.assert_array_equal(shuffled_scores, scores[order])


def test_database_position_does_not_change_scores():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1500, 200)).astype(np.float32)
    q = rng.standard_normal((30, 200)).astype(np.float32)
    order = rng.permutation(len(x))
    scores, ids = clipadapt.knn(q, x, 12)
    moved_scores, moved_ids = clipadapt.knn(q, x[order], 12)
    np.testing.assert_array_equal(order[moved_ids], ids)
    np.testing.assert_array_equal(moved_scores, scores)


@pytest.mark.parametrize("metric", METRICS)
def test_graph_of_copies_scores_them_exactly(metric):
    rng = np.random.default_rng(2)
    x, source = _with_copies(rng, n=400, d=33, copies=400)
    graph = clipadapt.knn_graph(x, 1, metric=metric)
    expected = {"cosine": 1.0, "l2": 0.0}
    for i, (j, score) in enumerate(zip(graph.indices[:, 0], graph.scores[:, 0])):
        if (source == source[i]).sum() > 1 and metric in expected:
            assert source[j] == source[i] and score == expected[metric]
            assert not np.signbit(score)


def test_huge_k_band_of_many_copies_is_exact():
    """More copies of the best row than the fast pass's first list holds: the list widens."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal((200, 40)).astype(np.float32)
    x = np.concatenate([base, np.repeat(base[:1], 150, axis=0)])
    x = x[rng.permutation(len(x))]
    q = base[:1] + 1e-4 * rng.standard_normal((1, 40)).astype(np.float32)
    scores, ids = clipadapt.knn(q, x, 5)
    copies = np.flatnonzero((x == base[0]).all(1))
    np.testing.assert_array_equal(ids[0], copies[:5])
    assert len(set(scores[0].tolist())) == 1


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_nonfinite_rows_never_enter_unchecked(metric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    x[3, 5] = np.nan
    x[7, 0] = np.inf
    x[9] = np.float32(1e30)  # finite, but beyond the supported norm (2^50): treated the same
    scores, ids = clipadapt.knn(x[:20], x, 5, metric=metric, check_finite=False)
    for bad in (3, 7, 9):
        assert bad not in ids[np.arange(20) != bad]
        assert (ids[bad] == -1).all()
    assert np.isfinite(scores[ids >= 0]).all()


def _threads_script(body: str) -> str:
    return textwrap.dedent("""
        import hashlib, sys, numpy as np, clipadapt
        rng = np.random.default_rng(0)
        base = rng.standard_normal((700, 96)).astype(np.float32)
        x = np.concatenate([base, base[rng.choice(700, 300)]])[rng.permutation(1000)]
        q = rng.standard_normal((400, 96)).astype(np.float32)
        digest = hashlib.sha256()
        def out(*arrays):
            for a in arrays:
                digest.update(np.ascontiguousarray(np.asarray(a)).tobytes())
        threads = int(sys.argv[1])
        clipadapt.set_num_threads(threads)
    """) + textwrap.dedent(body) + "\nprint(digest.hexdigest())\n"


_EVERY_PRIMITIVE = """
for metric in ("cosine", "ip", "l2"):
    out(*clipadapt.knn(q, x, 10, metric=metric))
    out(*clipadapt.assign(q, x[:64], metric=metric))
    km = clipadapt.kmeans(x, 16, max_iter=5, metric=metric, seed=1)
    out(km.centroids, km.assignments, km.inertia)
    index = clipadapt.IVFIndex(km.centroids, metric=metric).add(x)
    out(*index.search(q, 8, nprobe=3))
"""


def _digest(threads: int, env: dict[str, str]) -> str:
    script = _threads_script(_EVERY_PRIMITIVE)
    run = subprocess.run([sys.executable, "-c", script, str(threads)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_results_identical_at_one_and_two_threads_and_any_blas_core():
    """knn, assign, k-means and IVF results are bitwise the same at 1 and 2 threads, with the
    fast pass on the AVX-512 float32 tiles or on OpenBLAS's sgemm (CLIPADAPT_CPU_FP32_TILES=0),
    and with OpenBLAS forced to another kernel (its rounding differs): set only in these
    subprocesses."""
    plain = {key: value for key, value in os.environ.items()
             if key not in ("OPENBLAS_CORETYPE", "CLIPADAPT_CPU_FP32_TILES")}
    reference = _digest(2, plain)
    assert _digest(1, plain) == reference
    sgemm = {**plain, "CLIPADAPT_CPU_FP32_TILES": "0"}
    assert _digest(2, sgemm) == reference
    assert _digest(2, {**sgemm, "OPENBLAS_CORETYPE": "Haswell"}) == reference
    assert _digest(2, {**sgemm, "OPENBLAS_CORETYPE": "Sandybridge"}) == reference


def test_set_num_threads_is_process_wide_and_not_torch():
    torch = pytest.importorskip("torch")
    import threading

    before = clipadapt.get_num_threads()
    try:
        clipadapt.set_num_threads(1)
        torch.set_num_threads(2)
        assert clipadapt.get_num_threads() == 1
        seen = []
        worker = threading.Thread(target=lambda: seen.append(clipadapt.get_num_threads()))
        worker.start()
        worker.join()
        assert seen == [1]
    finally:
        clipadapt.set_num_threads(before)


def test_ctrl_c_interrupts_a_long_knn_and_leaves_the_library_usable():
    script = textwrap.dedent("""
        import signal, sys, threading, time, os, numpy as np, clipadapt
        x = np.random.default_rng(0).standard_normal((60000, 512)).astype(np.float32)
        clipadapt.knn(x[:10], x[:100], 3)
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        start = time.perf_counter()
        try:
            clipadapt.knn(x, x, 10)
            print("finished")
        except KeyboardInterrupt:
            waited = time.perf_counter() - start - 1.0
            scores, ids = clipadapt.knn(x[:5], x[:50], 2)
            print(f"interrupted {waited:.2f}", int(ids[0, 0]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    words = run.stdout.split()
    assert words[0] == "interrupted", run.stdout
    assert float(words[1]) < 3.0  # about 1 s on an idle machine; slack for a loaded one
    assert words[2] == "0"
