"""CUDA k-means primitives (grouping, centroid update, k-means++, IVF search) against their CPU
twins, through the public API and the private helpers that call them (skipped without a GPU).

Every test draws fresh inputs; the seed is in the assertion messages to replay a failure.
"""
import re

import numpy as np
import pytest
import torch

import clipadapt
from clipadapt import _native
from clipadapt.clustering import _kmeans_plus_plus, _update, group_by_cluster

pytestmark = pytest.mark.gpu

DEVICE = "cuda"
METRICS = ["cosine", "ip", "l2"]
DTYPES = ["float32", "float16", "bfloat16"]


def fresh_seed():
    return int(np.random.SeedSequence().generate_state(1)[0] % 2**31)


def gaussian(rows, d, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, d, generator=generator).to(getattr(torch, dtype)).to(DEVICE)


def blobs(n, d, centers, dtype, seed, noise=0.05):
    """Rows close to one of `centers` random unit directions ([centers, d] float32, on the CPU):
    every row is far nearer its own direction than any other, so no assignment is a near tie."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(centers, d, generator=generator), dim=1)
    labels = torch.randint(0, centers, (n,), generator=generator)
    x = directions[labels] + noise * torch.randn(n, d, generator=generator) / d**0.5
    return x.to(getattr(torch, dtype)).to(DEVICE), directions


def array(value, name="x"):
    return _native.as_input(value, name)


def group(ids, clusters):
    """(order, offsets) of group_by_cluster for int64 ids, on the ids' device."""
    return group_by_cluster(array(torch.zeros(ids.shape[0], 1, device=ids.device)), ids, clusters)


def numpy_of(value):
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def assert_same_result(gpu, cpu, seed):
    """A GPU KMeansResult equals the CPU twin's on data without near ties."""
    assert gpu.centroids.device.type == DEVICE and gpu.assignments.device.type == DEVICE
    # Assignment scores are exact on both devices, so the assignments agree everywhere.
    np.testing.assert_array_equal(numpy_of(gpu.assignments), numpy_of(cpu.assignments), err_msg=f"seed {seed}")
    np.testing.assert_allclose(numpy_of(gpu.centroids), numpy_of(cpu.centroids), rtol=0, atol=1e-5,
                               err_msg=f"seed {seed}")
    np.testing.assert_array_equal(numpy_of(gpu.counts), numpy_of(cpu.counts), err_msg=f"seed {seed}")
    assert gpu.splits == cpu.splits, f"seed {seed}"
    np.testing.assert_allclose(gpu.inertia, cpu.inertia, rtol=1e-3, atol=1e-3, err_msg=f"seed {seed}")


def assert_same_top_k(scores, ids, want_scores, want_ids, seed):
    """GPU (scores, ids) equal the reference's bit for bit: every score is the exact score of
    its two rows, on either device, and ties go to the smaller id."""
    scores, ids = numpy_of(scores), numpy_of(ids)
    assert ids.dtype == np.int64 and scores.shape == ids.shape == numpy_of(want_ids).shape
    np.testing.assert_array_equal(ids, numpy_of(want_ids), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(scores, numpy_of(want_scores), err_msg=f"seed {seed}")


# ---- squared norms the IVF lists keep ------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_norms_equal_cpu_bitwise(dtype):
    from clipadapt._native import _core

    x = gaussian(1001, 161, dtype, fresh_seed())
    norms = torch.empty(len(x), dtype=torch.float64, device=DEVICE)
    _core.squared_norms_into(_native.capsule(x), _native.capsule(norms))
    want = torch.empty(len(x), dtype=torch.float64)
    _core.squared_norms_into(_native.capsule(x.cpu()), _native.capsule(want))
    np.testing.assert_array_equal(numpy_of(norms), numpy_of(want))


# ---- group_by_cluster ----------------------------------------------------------------------


@pytest.mark.parametrize("clusters", [1, 7, 1000, 65539])
def test_group_by_cluster_equals_cpu_and_is_stable(clusters):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    used = rng.choice(clusters, size=clusters // 2 + 1, replace=False)  # about half the clusters stay empty
    ids = torch.from_numpy(rng.choice(used, size=20000).astype(np.int64))
    order, offsets = group(ids.to(DEVICE), clusters)
    want_order, want_offsets = group(ids, clusters)
    assert order.device.type == DEVICE and offsets.device.type == DEVICE
    np.testing.assert_array_equal(order.cpu().numpy(), want_order.numpy(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(offsets.cpu().numpy(), want_offsets.numpy(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(order.cpu().numpy(), np.argsort(ids.numpy(), kind="stable"),
                                  err_msg=f"seed {seed}")


def test_group_by_cluster_rejects_out_of_range_entries_like_cpu():
    ids = torch.zeros(100, dtype=torch.int64)
    ids[40], ids[12], ids[77] = -1, 7, 9  # the first bad row is reported
    message = re.escape("assignments: entry 7 at row 12 is outside [0, n_clusters)")
    with pytest.raises(ValueError, match=message):
        group(ids, 7)
    with pytest.raises(ValueError, match=message):
        group(ids.to(DEVICE), 7)
    torch.cuda.synchronize()


# ---- update_centroids ----------------------------------------------------------------------


@pytest.mark.parametrize("spherical", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_update_equals_cpu_bitwise_with_splits(dtype, spherical):
    # The GPU sums each cluster in the CPU's row order, so the centroids are the CPU's bit for bit.
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    clusters, n, d = 64, 5000, 37  # d spans two 32-column chunks
    u = gaussian(n, d, dtype, seed)
    used = rng.choice(clusters, size=40, replace=False)  # 24 empty clusters to split
    ids = torch.from_numpy(rng.choice(used, size=n, p=rng.dirichlet(np.ones(40))).astype(np.int64))
    centroids, counts, split = _update(array(u), ids.to(DEVICE), clusters, spherical)
    want_centroids, want_counts, want_split = _update(array(u.cpu()), ids, clusters, spherical)
    assert centroids.device.type == DEVICE and counts.device.type == DEVICE
    assert split == want_split and split > 0, f"seed {seed}"
    np.testing.assert_array_equal(counts.cpu().numpy(), want_counts.numpy(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(centroids.cpu().numpy(), want_centroids.numpy(), err_msg=f"seed {seed}")


# ---- k-means++ -----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kmeans_plus_plus_chooses_the_cpu_rows(metric, dtype):
    seed = fresh_seed()
    x = gaussian(9000, 24, dtype, seed)  # three 4096-row sampling blocks, the last one partial
    rows = _kmeans_plus_plus(array(x), 50, metric, seed)
    want = _kmeans_plus_plus(array(x.cpu()), 50, metric, seed)
    np.testing.assert_array_equal(rows, want, err_msg=f"seed {seed}")
    gpu = clipadapt.kmeans(x, 50, max_iter=0, metric=metric, init="kmeans++", seed=seed)
    cpu = clipadapt.kmeans(x.cpu(), 50, max_iter=0, metric=metric, init="kmeans++", seed=seed)
    np.testing.assert_allclose(numpy_of(gpu.centroids), numpy_of(cpu.centroids), rtol=0, atol=1e-5,
                               err_msg=f"seed {seed}")


@pytest.mark.parametrize("metric", METRICS)
def test_kmeans_plus_plus_on_coincident_rows_equals_cpu(metric):
    # Every distance is 0: each pick falls back to a uniform row, from the same generator.
    seed = fresh_seed()
    x = torch.ones(5000, 8, device=DEVICE)
    rows = _kmeans_plus_plus(array(x), 6, metric, seed)
    np.testing.assert_array_equal(rows, _kmeans_plus_plus(array(x.cpu()), 6, metric, seed), err_msg=f"seed {seed}")


# ---- kmeans / paired_kmeans ----------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kmeans_matches_cpu(metric, dtype):
    seed = fresh_seed()
    x, centers = blobs(4000, 32, 20, dtype, seed)
    gpu = clipadapt.kmeans(x, 20, max_iter=3, metric=metric, init=centers.to(DEVICE))
    cpu = clipadapt.kmeans(x.cpu(), 20, max_iter=3, metric=metric, init=centers)
    assert_same_result(gpu, cpu, seed)


@pytest.mark.parametrize("dtype", DTYPES)
def test_paired_kmeans_matches_cpu(dtype):
    seed = fresh_seed()
    images, centers = blobs(3000, 32, 16, dtype, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    captions = (images.cpu().float() + 0.1 * torch.randn(images.shape, generator=generator)).to(images.dtype)
    gpu = clipadapt.paired_kmeans(images, captions.to(DEVICE), 16, max_iter=2, init=centers.to(DEVICE))
    cpu = clipadapt.paired_kmeans(images.cpu(), captions, 16, max_iter=2, init=centers)
    assert_same_result(gpu, cpu, seed)


@pytest.mark.parametrize("metric", METRICS)
def test_empty_clusters_split_like_cpu(metric):
    # Centroid 20 duplicates centroid 0 (ties go to the lower id) and, for l2, centroid 21 is far
    # from every row: both start empty and are re-seeded by splitting the largest clusters.
    seed = fresh_seed()
    x, centers = blobs(4000, 32, 20, "float32", seed)
    init = torch.cat([centers, centers[:1], torch.full((1, 32), 100.0)])
    gpu = clipadapt.kmeans(x, 22, max_iter=1, metric=metric, init=init.to(DEVICE))
    cpu = clipadapt.kmeans(x.cpu(), 22, max_iter=1, metric=metric, init=init)
    assert cpu.splits[0] >= 1
    assert gpu.splits == cpu.splits, f"seed {seed}"
    np.testing.assert_array_equal(gpu.counts.cpu().numpy(), cpu.counts.numpy(), err_msg=f"seed {seed}")
    np.testing.assert_allclose(gpu.centroids.cpu().numpy(), cpu.centroids.numpy(), rtol=0, atol=1e-5,
                               err_msg=f"seed {seed}")
    # The two halves of a split cluster are 1e-3 apart, so a few rows may sit on a near tie.
    agree = (gpu.assignments.cpu() == cpu.assignments).double().mean().item()
    assert agree >= 0.999, f"seed {seed}: only {agree:.5f} of the assignments agree"


def test_kmeans_is_bitwise_reproducible_on_the_gpu():
    seed = fresh_seed()
    x = gaussian(6000, 48, "float16", seed)
    runs = [clipadapt.kmeans(x, 40, max_iter=4, seed=seed) for _ in range(2)]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # on a side stream too
        runs.append(clipadapt.kmeans(x, 40, max_iter=4, seed=seed))
    stream.synchronize()
    first = runs[0]
    for other in runs[1:]:
        assert torch.equal(first.centroids, other.centroids), f"seed {seed}"
        assert torch.equal(first.assignments, other.assignments), f"seed {seed}"
        assert torch.equal(first.counts, other.counts), f"seed {seed}"
        np.testing.assert_array_equal(first.inertia, other.inertia, err_msg=f"seed {seed}")
        assert first.splits == other.splits


def test_65536_clusters_smoke():
    seed = fresh_seed()
    clusters, n, d = 65536, 98304, 8
    x = gaussian(n, d, "float32", seed)
    result = clipadapt.kmeans(x, clusters, max_iter=1, metric="l2", init="random", seed=seed)
    assert result.centroids.shape == (clusters, d) and torch.isfinite(result.centroids).all()
    assert int(result.counts.sum()) == n and int(result.counts.min()) >= 0
    assignments = result.assignments
    assert int(assignments.min()) >= 0 and int(assignments.max()) < clusters
    # The grouping and the update of these assignments equal the CPU's.
    order, offsets = group(assignments, clusters)
    want_order, want_offsets = group(assignments.cpu(), clusters)
    np.testing.assert_array_equal(order.cpu().numpy(), want_order.numpy(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(offsets.cpu().numpy(), want_offsets.numpy(), err_msg=f"seed {seed}")
    centroids, counts, split = _update(array(x), assignments, clusters, False)
    want_centroids, want_counts, want_split = _update(array(x.cpu()), assignments.cpu(), clusters, False)
    assert split == want_split, f"seed {seed}"
    np.testing.assert_array_equal(counts.cpu().numpy(), want_counts.numpy(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(centroids.cpu().numpy(), want_centroids.numpy(), err_msg=f"seed {seed}")


# ---- IVF search ----------------------------------------------------------------------------


def cpu_copy(index):
    """The same index (same lists, same order) with host copies of every array."""
    vectors, indices, offsets = (part.cpu() for part in index.inverted_lists())
    lists = torch.repeat_interleave(torch.arange(index.n_lists), offsets.diff())
    return clipadapt.IVFIndex.from_lists(index.centroids.cpu(), vectors, lists, indices, metric=index.metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 10, 128])
def test_ivf_search_equals_cpu_on_the_same_lists(metric, dtype, k):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    lists, d = 50, 40
    x = gaussian(3000, d, dtype, seed)
    queries = gaussian(200, d, dtype, seed + 1)
    index = clipadapt.IVFIndex(gaussian(lists, d, "float32", seed + 2), metric=metric).add(x, indices=torch.arange(
        3000, device=DEVICE) * 3 + 1)
    reference = cpu_copy(index)
    # Three lists per query, with skipped entries (-1 and out of range) among them.
    probes = np.stack([rng.choice(lists, size=3, replace=False) for _ in range(200)]).astype(np.int64)
    # ... and a list probed twice, which must be scanned once.
    probes = np.concatenate([probes, probes[:, :1], np.full((200, 1), -1), np.full((200, 1), lists)], axis=1)
    probes = rng.permuted(probes, axis=1)
    probes[0] = np.resize([-1, lists], probes.shape[1])  # query 0 probes nothing: every slot empty
    probes = torch.from_numpy(np.ascontiguousarray(probes))
    scores, ids = index._scan(array(queries, "queries"), probes.to(DEVICE), k)
    want_scores, want_ids = reference._scan(array(queries.cpu(), "queries"), probes, k)
    assert scores.device.type == DEVICE and ids.device.type == DEVICE
    assert_same_top_k(scores, ids, want_scores, want_ids, seed)
    assert (ids[0] == -1).all() and (want_ids[0] == -1).all()
    for row in numpy_of(ids):
        kept = row[row >= 0]
        assert len(set(kept.tolist())) == len(kept)  # no row offered twice


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ivf_index_matches_cpu_and_exact_knn(metric, dtype):
    seed = fresh_seed()
    # Looser blobs than for k-means: the rows of a list must not crowd into near ties, and
    # every row is still far nearer its own list's centroid than any other.
    x, centers = blobs(4000, 32, 30, dtype, seed, noise=0.3)
    queries, _ = blobs(300, 32, 30, dtype, seed, noise=0.3)  # same directions, other rows
    index = clipadapt.IVFIndex(centers.to(DEVICE), metric=metric).add(x)
    reference = clipadapt.IVFIndex(centers, metric=metric).add(x.cpu())
    np.testing.assert_array_equal(index.list_sizes(), reference.list_sizes(), err_msg=f"seed {seed}")
    for k, nprobe in [(10, 1), (128, 2), (20, 30)]:
        scores, ids = index.search(queries, k, nprobe=nprobe)
        want_scores, want_ids = reference.search(queries.cpu(), k, nprobe=nprobe)
        assert_same_top_k(scores, ids, want_scores, want_ids, seed)
    # Every list probed: exact search, the k-NN's results.
    scores, ids = index.search(queries, 20, nprobe=30)
    knn_scores, knn_ids = clipadapt.knn(queries, x, 20, metric=metric)
    assert_same_top_k(scores, ids, knn_scores, knn_ids, seed)


def test_ivf_search_is_bitwise_reproducible():
    seed = fresh_seed()
    x = gaussian(5000, 64, "bfloat16", seed)
    index = clipadapt.IVFIndex(gaussian(20, 64, "float32", seed + 1)).add(x)
    queries = gaussian(500, 64, "bfloat16", seed + 2)
    first = index.search(queries, 50, nprobe=4)
    again = index.search(queries, 50, nprobe=4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1]), f"seed {seed}"


def test_ivf_loads_onto_the_device_and_adds_in_chunks_as_at_once(tmp_path):
    seed = fresh_seed()
    x = gaussian(3000, 32, "float16", seed)
    whole = clipadapt.IVFIndex(gaussian(25, 32, "float32", seed + 1)).add(x)
    chunked = clipadapt.IVFIndex(whole.centroids)
    for start in range(0, 3000, 400):
        chunked.add(x[start:start + 400])
    for mine, theirs in zip(chunked.inverted_lists(), whole.inverted_lists()):
        assert mine.device.type == DEVICE and torch.equal(mine, theirs), f"seed {seed}"
    whole.save(tmp_path / "index.npz")
    loaded = clipadapt.IVFIndex.load(tmp_path / "index.npz", device=DEVICE)
    assert loaded.centroids.device.type == DEVICE
    queries = gaussian(100, 32, "float16", seed + 2)
    for mine, theirs in zip(loaded.search(queries, 10, nprobe=3), whole.search(queries, 10, nprobe=3)):
        assert torch.equal(mine, theirs), f"seed {seed}"


def test_ivf_search_rejects_k_above_128():
    x = gaussian(500, 16, "float32", 0)
    index = clipadapt.IVFIndex(x[:4].float()).add(x)
    with pytest.raises(ValueError, match="k: the GPU IVF search supports k <= 128"):
        index.search(x[:3], 129, nprobe=4)
