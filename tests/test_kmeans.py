"""assign, kmeans, paired_kmeans and IVFIndex on the CPU against float64 NumPy references."""
import numpy as np
import pytest
import torch

import clipadapt
from clipadapt import _native
from clipadapt.bench.data import synthetic_clip
from knn_oracle import score_matrix, to_float64


def blobs(n=3000, d=24, classes=20, seed=0):
    return synthetic_clip(n, d, n_classes=classes, noise=0.8, seed=seed)[0]


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_assign_equals_float64_brute_force(metric):
    x = blobs()
    centroids = np.concatenate([x[:40], x[:5]])  # rows 40-44 duplicate 0-4: ties go to the lower id
    scores, ids = clipadapt.assign(x, centroids, metric=metric)
    full = score_matrix(x.astype(np.float64), centroids.astype(np.float64), metric)
    want = full.argmin(1) if metric == "l2" else full.argmax(1)  # first extremum: the lower index
    best = np.take_along_axis(full, want[:, None], 1)[:, 0]
    chosen = np.take_along_axis(full, ids[:, None], 1)[:, 0]
    assert ids.dtype == np.int64 and scores.shape == (3000,)
    np.testing.assert_allclose(chosen, best, atol=1e-5)  # any other choice is a float32 near-tie
    assert np.mean(ids == want) > 0.999
    assert not np.any(ids >= 40), "a duplicate centroid must lose the tie to its lower index"


def numpy_assign(x, centroids, metric):
    full = score_matrix(x.astype(np.float64), centroids.astype(np.float64), metric)
    return full.argmin(1) if metric == "l2" else full.argmax(1)


def numpy_iteration(assign_x, update_x, centroids, metric):
    ids = numpy_assign(assign_x, centroids, metric)
    means = np.stack([update_x[ids == c].astype(np.float64).mean(0) for c in range(len(centroids))])
    if metric != "l2":
        means /= np.linalg.norm(means, axis=1, keepdims=True)
    return ids, means


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_one_iteration_equals_numpy(metric):
    x = blobs()
    init = x[::150].copy()  # 20 rows, one per few hundred
    result = clipadapt.kmeans(x, 20, max_iter=1, metric=metric, init=init)
    unit = init / (np.linalg.norm(init, axis=1, keepdims=True) if metric != "l2" else 1)
    _, want = numpy_iteration(x, x, unit, metric)
    np.testing.assert_allclose(result.centroids, want, rtol=1e-5, atol=2e-6)
    assert result.splits == [0] and result.inertia.shape == (2,)


def test_paired_kmeans_with_the_same_array_equals_kmeans():
    x = blobs()
    single = clipadapt.kmeans(x, 16, max_iter=5, seed=3)
    paired = clipadapt.paired_kmeans(x, x.copy(), 16, max_iter=5, seed=3)
    np.testing.assert_array_equal(single.centroids, paired.centroids)
    np.testing.assert_array_equal(single.assignments, paired.assignments)
    np.testing.assert_array_equal(single.inertia, paired.inertia)


def test_paired_centroids_are_means_of_the_update_rows():
    images = blobs(seed=1)
    captions = synthetic_clip(3000, 24, n_classes=20, modality="text", noise=0.8, seed=1)[0]
    init = images[:12].copy()
    result = clipadapt.paired_kmeans(images, captions, 12, max_iter=1, init=init)
    ids, want = numpy_iteration(images, captions, init / np.linalg.norm(init, axis=1, keepdims=True), "cosine")
    np.testing.assert_allclose(result.centroids, want, rtol=1e-5, atol=2e-6)
    np.testing.assert_array_equal(result.counts, np.bincount(ids, minlength=12))


def test_empty_cluster_is_split_from_the_largest():
    x = blobs()
    init = np.concatenate([x[:5], -x[:1] * 0 + 100.0])  # centroid 5 is far from everything (l2)
    result = clipadapt.kmeans(x, 6, max_iter=1, metric="l2", init=init)
    assert result.splits == [1]
    counts = result.counts
    assert counts.sum() == 3000 and counts[5] > 0
    largest_before = np.bincount(numpy_assign(x, init, "l2"), minlength=6).argmax()
    ratio = result.centroids[5] / result.centroids[largest_before]
    np.testing.assert_allclose(ratio[::2], (1 + 1 / 1024) / (1 - 1 / 1024), rtol=1e-5)
    np.testing.assert_allclose(ratio[1::2], (1 - 1 / 1024) / (1 + 1 / 1024), rtol=1e-5)


def test_kmeans_is_reproducible_and_improves():
    x = torch.from_numpy(blobs())
    first = clipadapt.kmeans(x, 20, max_iter=8, seed=7)
    again = clipadapt.kmeans(x, 20, max_iter=8, seed=7)
    other = clipadapt.kmeans(x, 20, max_iter=8, seed=8)
    assert isinstance(first.centroids, torch.Tensor) and isinstance(first.assignments, torch.Tensor)
    assert torch.equal(first.centroids, again.centroids)
    assert not torch.equal(first.centroids, other.centroids)
    assert np.all(np.diff(first.inertia) <= 1e-3 * first.inertia[0])  # Lloyd never increases the objective
    np.testing.assert_allclose(torch.linalg.norm(first.centroids, dim=1).numpy(), 1.0, rtol=1e-6)


def test_kmeans_stops_at_a_fixed_point_and_reports_the_iterations_run():
    x = synthetic_clip(2000, 16, n_classes=8, noise=0.05, seed=1)[0]
    converged = clipadapt.kmeans(x, 8, max_iter=100, metric="l2", seed=2)
    assert 1 <= converged.n_iter < 100
    assert converged.inertia.shape == (converged.n_iter + 1,) and len(converged.splits) == converged.n_iter
    # The last iteration moved nothing: running exactly that many gives the same bits.
    fixed = clipadapt.kmeans(x, 8, max_iter=converged.n_iter, metric="l2", seed=2)
    np.testing.assert_array_equal(fixed.centroids, converged.centroids)
    np.testing.assert_array_equal(fixed.assignments, converged.assignments)


def paired_with_itself(x, *args, **kwargs):
    return clipadapt.paired_kmeans(x, x.copy(), *args, **kwargs)


@pytest.mark.parametrize("kmeans", [clipadapt.kmeans, paired_with_itself])
def test_tol_stops_once_the_centroids_move_less_than_it(kmeans):
    """scikit-learn's rule: stop after the first iteration whose update moved the centroids by
    at most tol (sum of squared shifts)."""
    x = blobs()
    runs = [kmeans(x, 20, max_iter=i, metric="l2", seed=4).centroids for i in range(8)]
    shifts = [float(((after.astype(np.float64) - before) ** 2).sum()) for before, after in zip(runs, runs[1:])]
    tol = (shifts[2] + shifts[3]) / 2
    assert shifts[2] > tol >= shifts[3], shifts  # Lloyd's shifts shrink here: iteration 4 is the first below
    stopped = kmeans(x, 20, max_iter=50, tol=tol, metric="l2", seed=4)
    assert stopped.n_iter == 4
    np.testing.assert_array_equal(stopped.centroids, runs[4])
    assert kmeans(x, 20, max_iter=50, tol=np.float32(1e9), metric="l2", seed=4).n_iter == 1


def test_check_finite_false_skips_the_screen():
    x = blobs(n=200).copy()
    x[3, 0] = np.nan
    with pytest.raises(ValueError, match="check_finite=False"):
        clipadapt.kmeans(x, 4, max_iter=1)
    with pytest.raises(ValueError, match="assignments: entry -1 at row 3"):  # unscreened, the NaN row goes unassigned
        clipadapt.kmeans(x, 4, max_iter=1, init=x[10:14], check_finite=False)


def test_kmeans_plus_plus_spreads_its_seeds_over_the_clusters():
    x, labels = synthetic_clip(3000, 24, n_classes=10, noise=0.05, seed=0)

    def classes_covered(init, seed):
        centroids = clipadapt.kmeans(x, 10, max_iter=0, init=init, seed=seed).centroids
        rows = clipadapt.knn(centroids, x, 1)[1][:, 0]  # the seeds are rows of x
        return len(set(labels[rows]))

    seeded = [classes_covered("kmeans++", seed) for seed in range(5)]
    random = [classes_covered("random", seed) for seed in range(5)]
    assert min(seeded) >= 9 and np.mean(seeded) > np.mean(random)
    assert classes_covered("kmeans++", 3) == seeded[3]  # deterministic given the seed


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_kmeans_half_precision_input(dtype):
    x = blobs().astype(dtype)
    result = clipadapt.kmeans(x, 10, max_iter=3)
    assert result.centroids.dtype == np.float32 and result.assignments.shape == (3000,)


def test_subsampling_keeps_pairs_aligned():
    images = blobs(seed=2)
    result = clipadapt.paired_kmeans(images, images.copy(), 10, max_iter=3, max_points_per_centroid=50)
    full = clipadapt.kmeans(images, 10, max_iter=3, max_points_per_centroid=50)
    np.testing.assert_array_equal(result.centroids, full.centroids)
    assert result.assignments.shape == (3000,)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_ivf_with_every_list_probed_equals_exact_search(metric):
    x = blobs()
    centroids = clipadapt.kmeans(x, 30, max_iter=3, metric=metric).centroids
    index = clipadapt.IVFIndex(centroids, metric=metric).add(x)
    assert index.ntotal == 3000 and index.list_sizes().sum() == 3000
    queries = blobs(n=200, seed=9)
    scores, ids = index.search(queries, 10, nprobe=30)
    want_scores, want_ids = clipadapt.knn(queries, x, 10, metric=metric)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_ivf_search_of_given_lists_equals_float64_brute_force_over_them(metric, dtype):
    """Probes with repeats, -1 and out-of-range entries (skipped), a query that probes nothing
    and queries whose probed lists hold fewer than k rows; d odd; ids not row numbers."""
    rng = np.random.default_rng(3)
    lists, d, n, nq, k = 40, 37, 2000, 150, 70
    x = torch.from_numpy(rng.standard_normal((n, d), dtype=np.float32)).to(getattr(torch, dtype))
    queries = torch.from_numpy(rng.standard_normal((nq, d), dtype=np.float32)).to(getattr(torch, dtype))
    index = clipadapt.IVFIndex(torch.from_numpy(rng.standard_normal((lists, d), dtype=np.float32)), metric=metric)
    index.add(x, indices=torch.arange(n) * 3 + 1)
    probes = rng.integers(0, lists, size=(nq, 5))
    probes[:, 4] = probes[:, 0]  # a list probed twice counts once
    probes[rng.random((nq, 5)) < 0.2] = -1
    probes[rng.random((nq, 5)) < 0.1] = lists
    probes[0] = -1
    probes = torch.from_numpy(probes.astype(np.int64))
    scores, ids = index._scan(_native.as_input(queries, "queries"), probes, k)

    full = score_matrix(to_float64(queries), to_float64(x), metric)
    keys = -full if metric == "l2" else full.copy()
    _, stored, offsets = index.inverted_lists()
    row_list = np.repeat(np.arange(lists), np.diff(offsets.numpy()))[np.argsort(stored.numpy())]  # each row's list
    tolerance = 2e-2 if dtype != "float32" else 2e-4
    for q in range(nq):
        probed = np.isin(row_list, probes[q].numpy())
        candidates = np.flatnonzero(probed)
        found = ids[q].numpy()
        filled = min(k, len(candidates))
        assert np.all(found[filled:] == -1), f"query {q}: slots beyond the probed rows hold -1"
        if filled == 0:
            continue
        order = candidates[np.lexsort((candidates, -keys[q, candidates]))][:filled]
        rows = (found[:filled] - 1) // 3
        assert len(set(rows.tolist())) == filled and np.all(probed[rows]), f"query {q}: rows outside its lists"
        np.testing.assert_allclose(scores[q, :filled].numpy(), full[q, order], atol=tolerance * np.sqrt(d))
        # The same rows as the reference, except near ties at the k-th place.
        kth = keys[q, order[-1]]
        differing = np.setdiff1d(rows, order)
        assert np.all(np.abs(keys[q, differing] - kth) <= tolerance * np.sqrt(d)), f"query {q}"


def test_ivf_probing_fewer_lists_is_a_subset_and_save_load_round_trips(tmp_path):
    x = blobs()
    index = clipadapt.IVFIndex(clipadapt.kmeans(x, 30, max_iter=3).centroids)
    index.add(x[:2000], indices=np.arange(2000, dtype=np.int64) * 10).add(x[2000:], indices=np.arange(2000, 3000) * 10)
    scores, ids = index.search(x[:50], 5, nprobe=2)
    assert np.all(ids % 10 == 0) and np.all(ids[:, 0] == np.arange(50) * 10)  # each row finds itself
    index.save(tmp_path / "index.npz")
    loaded = clipadapt.IVFIndex.load(tmp_path / "index.npz")
    again_scores, again_ids = loaded.search(x[:50], 5, nprobe=2)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_array_equal(again_scores, scores)
    np.testing.assert_array_equal(loaded.list_sizes(), index.list_sizes())


def test_ivf_adds_from_a_npy_file(tmp_path):
    x = blobs()
    np.save(tmp_path / "rows.npy", x)
    centroids = clipadapt.kmeans(x, 10, max_iter=2).centroids
    from_file = clipadapt.IVFIndex(centroids).add(str(tmp_path / "rows.npy"))
    in_memory = clipadapt.IVFIndex(centroids).add(x)
    np.testing.assert_array_equal(from_file.search(x[:20], 4, 3)[1], in_memory.search(x[:20], 4, 3)[1])


def test_ivf_adds_in_chunks_store_what_one_add_stores():
    x = blobs()
    centroids = clipadapt.kmeans(x, 30, max_iter=2).centroids
    whole = clipadapt.IVFIndex(centroids).add(x)
    chunked = clipadapt.IVFIndex(centroids)
    queries = blobs(n=40, seed=5)
    for start in range(0, 3000, 700):  # a search between adds packs what is there so far
        chunked.add(x[start:start + 700])
        assert chunked.ntotal == min(start + 700, 3000)
        chunked.search(queries, 3, nprobe=4)
    np.testing.assert_array_equal(chunked.list_sizes(), whole.list_sizes())
    for mine, theirs in zip(chunked.inverted_lists(), whole.inverted_lists()):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(chunked.search(queries, 10, nprobe=5)[1], whole.search(queries, 10, nprobe=5)[1])


def test_ivf_stores_rows_in_the_library_of_its_centroids(tmp_path):
    x = blobs()
    centroids = torch.from_numpy(clipadapt.kmeans(x, 10, max_iter=2).centroids)
    index = clipadapt.IVFIndex(centroids).add(x[:1000]).add(torch.from_numpy(x[1000:]), indices=np.arange(2000) + 1000)
    vectors, indices, offsets = index.inverted_lists()
    assert all(isinstance(array, torch.Tensor) for array in (vectors, indices, offsets))
    np.testing.assert_array_equal(np.sort(indices.numpy()), np.arange(3000))
    index.save(tmp_path / "index.npz")
    loaded = clipadapt.IVFIndex.load(tmp_path / "index.npz", device="cpu")
    assert isinstance(loaded.centroids, np.ndarray)
    np.testing.assert_array_equal(loaded.search(x[:5], 3)[1], index.search(torch.from_numpy(x[:5]), 3)[1].numpy())
    with pytest.raises(ValueError, match="device: unknown device 'gpu'"):
        clipadapt.IVFIndex.load(tmp_path / "index.npz", device="gpu")


def test_ivf_check_finite():
    x = blobs(n=100).copy()
    with pytest.raises(ValueError, match="centroids: contains NaN or Inf.*check_finite=False"):
        clipadapt.IVFIndex(np.where(np.arange(24) == 0, np.nan, x[:4]).astype(np.float32))
    index = clipadapt.IVFIndex(x[:4])
    x[7, 2] = np.inf
    with pytest.raises(ValueError, match="x: contains NaN or Inf"):
        index.add(x)
    with pytest.raises(ValueError, match="x: contains NaN or Inf"):
        clipadapt.IVFIndex.from_lists(x[:4], x, np.zeros(100, dtype=np.int64))
    index.add(x[:5]).add(x[8:])
    with pytest.raises(ValueError, match="queries: contains NaN or Inf"):
        index.search(x[5:10], 2, nprobe=2)


X = blobs(n=100)


@pytest.mark.parametrize("call,error,message", [
    (lambda: clipadapt.kmeans(X, 101), ValueError, "n_clusters: 101 exceeds the 100 rows"),
    (lambda: clipadapt.kmeans(X, 0), ValueError, "n_clusters: must be an integer >= 1"),
    (lambda: clipadapt.paired_kmeans(X, X[:50], 4), ValueError, "rows are pairs"),
    (lambda: clipadapt.kmeans(np.where(np.arange(24) == 3, np.nan, X).astype(np.float32), 4), ValueError,
     "assign_x: contains NaN"),
    (lambda: clipadapt.paired_kmeans(X, np.full_like(X, np.inf), 4), ValueError, "update_x: contains NaN or Inf"),
    (lambda: clipadapt.kmeans(X, 4, init="forgy"), ValueError, "init: unknown"),
    (lambda: clipadapt.kmeans(X, 4, init=X[:3]), ValueError, r"init: expected shape \(4, 24\)"),
    (lambda: clipadapt.kmeans(X, 4, max_iter=-1), ValueError, "max_iter"),
    (lambda: clipadapt.kmeans(X.astype(np.float64), 4), TypeError, "assign_x: dtype float64"),
    (lambda: clipadapt.IVFIndex(X[:4]).add(X).search(X, 101), ValueError, "k: 101 exceeds the 100 rows"),
    (lambda: clipadapt.IVFIndex(X[:4]).add(X).search(X, 5, nprobe=5), ValueError, "nprobe: 5 exceeds"),
    (lambda: clipadapt.IVFIndex(X[:4]).add(X).search(X, 5, nprobe=0), ValueError, "nprobe: must be an integer >= 1"),
    (lambda: clipadapt.IVFIndex(X[:4]).search(X, 5), ValueError, "index: is empty"),
    (lambda: clipadapt.IVFIndex(X[:4]).add(X[:, :10]), ValueError, "x: dimension 10"),
    (lambda: clipadapt.IVFIndex(X[:4]).add(X, indices=np.arange(3)), ValueError, "indices: has 3 entries"),
    (lambda: clipadapt.IVFIndex(X[:4], metric="hamming"), ValueError, "metric: unknown"),
    (lambda: clipadapt.IVFIndex(X[:4], "ip"), TypeError, "positional"),
    (lambda: clipadapt.IVFIndex(X[:4]).add(X).add(X.astype(np.float16)), TypeError, "x: dtype float16 differs"),
])
def test_bad_input_raises(call, error, message):
    with pytest.raises(error, match=message):
        call()
