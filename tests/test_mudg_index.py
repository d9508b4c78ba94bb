"""The MUDG source index: the pairing (caption -> nearest image) against a
float64 oracle, the paired centroid update against a numpy re-implementation, the IVF lists,
exactness at nprobe = K, save / load / resume, and bad inputs."""
import json

import numpy as np
import pytest

import clipadapt
from clipadapt.bench.data import synthetic_pairs
from clipadapt.ivf import IVFIndex
from clipadapt.mudg import index as mudg_index
from clipadapt.mudg.corpus import SourceCorpus, write_corpus
from clipadapt.mudg.index import MudgIndex, build_index, default_n_clusters, nearest_images

MODEL = {"architecture": "synthetic", "weights": "none"}
N, D, K = 600, 32, 6


def _corpus(path, images, captions, shard_rows):
    n = len(images)
    return write_corpus(path, images, captions, [f"{i}.jpg" for i in range(n)], [f"caption {i}" for i in range(n)],
                        model=MODEL, image_root=".", shard_rows=shard_rows)


def _oracle_nearest(queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float64 argmax of the inner products of float16 values (np.argmax: the first, smallest id, of ties)."""
    return np.argmax(queries.astype(np.float64) @ rows.astype(np.float64).T, axis=1)


@pytest.fixture(scope="module")
def pairs_corpus(tmp_path_factory):
    """N clustered pairs with a modality gap, in shards of 250 (the last one 100)."""
    data = synthetic_pairs(N, D, n_classes=K, seed=3)
    return _corpus(tmp_path_factory.mktemp("corpus") / "c", data.images, data.captions, shard_rows=250)


@pytest.fixture(scope="module")
def built(pairs_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("index")
    return build_index(pairs_corpus, out, n_clusters=K, progress=False), out


def _queries(count=50):
    return synthetic_pairs(count, D, n_classes=K, seed=3, split=1).captions


# ---- pairing ----

def test_pairing_is_each_captions_nearest_image(tmp_path):
    rng = np.random.default_rng(0)
    images, captions = (rng.standard_normal((40, 16)).astype(np.float16) for _ in range(2))
    corpus = _corpus(tmp_path / "c", images, captions, shard_rows=7)
    stored_images, stored_captions = corpus.image_embeddings(), corpus.caption_embeddings()
    expected = _oracle_nearest(stored_captions, stored_images)
    # The data tell the directions apart: image -> nearest caption, and each caption's own image, differ.
    assert (expected != _oracle_nearest(stored_images, stored_captions)).any()
    assert (expected != np.arange(40)).any()
    np.testing.assert_array_equal(nearest_images(corpus, caption_chunk_rows=3, progress=False), expected)
    np.testing.assert_array_equal(nearest_images((stored_images, stored_captions), progress=False), expected)
    arrays = nearest_images((stored_images[:25], stored_captions), caption_chunk_rows=11, progress=False)
    np.testing.assert_array_equal(arrays, _oracle_nearest(stored_captions, stored_images[:25]))


def test_pairing_ties_go_to_the_smaller_image_id_across_shards(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((12, 16)).astype(np.float32)
    images[9] = images[2]    # equal rows in different shards (shard_rows 4: 2 in shard 0, 9 in shard 2)
    images[6] = images[5]    # equal rows in one shard
    images[11] = images[10]  # equal rows in the last shard
    captions = rng.standard_normal((12, 16)).astype(np.float32)
    captions[[0, 1, 2]] = images[[9, 6, 11]]  # each caption is exactly one of the tied images
    corpus = _corpus(tmp_path / "c", images, captions, shard_rows=4)
    pairing = nearest_images(corpus, caption_chunk_rows=2, progress=False)
    assert pairing[:3].tolist() == [2, 5, 10]
    np.testing.assert_array_equal(pairing, _oracle_nearest(corpus.caption_embeddings(), corpus.image_embeddings()))


def test_build_records_the_pairing(built, pairs_corpus):
    index, out = built
    expected = _oracle_nearest(pairs_corpus.caption_embeddings(), pairs_corpus.image_embeddings())
    np.testing.assert_array_equal(np.load(out / "pairing.npy"), expected)
    assert index.info["stages"]["pairing"]["distinct_images"] == np.unique(expected).size


# ---- paired k-means ----

def _spherical_update(assign_rows, update_rows, centroids):
    """One paired k-means step in float64: assign rows to the float16-rounded centroids (as the
    float16 corpus is compared with them), then the normalised mean of the update rows per cell."""
    cells = _oracle_nearest(assign_rows, centroids.astype(np.float16))
    sums = np.zeros(centroids.shape)
    np.add.at(sums, cells, update_rows.astype(np.float64))
    assert (np.bincount(cells, minlength=len(centroids)) > 0).all(), "an empty cell would be split"
    return sums / np.linalg.norm(sums, axis=1, keepdims=True)


@pytest.mark.parametrize("clustering", ["paired", "standard"])
def test_one_iteration_matches_a_numpy_reimplementation(pairs_corpus, tmp_path, clustering):
    initial = build_index(pairs_corpus, tmp_path / "0", n_clusters=K, max_iter=0, clustering=clustering, progress=False)
    after_one = build_index(pairs_corpus, tmp_path / "1", n_clusters=K, max_iter=1, clustering=clustering,
                            progress=False)
    images, captions = pairs_corpus.image_embeddings(), pairs_corpus.caption_embeddings()
    if clustering == "paired":  # assigned by the caption's nearest image, averaged over the captions
        assign_rows, update_rows = images[_oracle_nearest(captions, images)], captions
    else:
        assign_rows = update_rows = images
    expected = _spherical_update(assign_rows, update_rows, initial.ivf.centroids)
    np.testing.assert_allclose(after_one.ivf.centroids, expected, atol=1e-5)
    assert after_one.info["stages"]["kmeans"]["splits"] == [0]
    if clustering == "paired":  # the data tell the faithful rule from its likely mistakes
        for wrong_assign, wrong_update in ((captions, captions), (images, captions), (assign_rows, images)):
            wrong = _spherical_update(wrong_assign, wrong_update, initial.ivf.centroids)
            assert np.abs(expected - wrong).max() > 1e-3


def test_paired_centroids_live_in_caption_space(built, pairs_corpus):
    """With a modality gap, the paired centroids sit nearer the captions than the images' centroids do."""
    index = built[0]
    captions = pairs_corpus.caption_embeddings().astype(np.float32)
    paired = (captions @ index.ivf.centroids.T).max(axis=1).mean()
    standard = build_index(pairs_corpus, built[1] / "standard", n_clusters=K, clustering="standard", progress=False)
    assert paired > (captions @ standard.ivf.centroids.T).max(axis=1).mean() + 0.02  # measured: 0.687 vs 0.645


# ---- the inverted lists ----

def test_index_holds_every_image_under_its_global_id(built, pairs_corpus):
    index = built[0]
    images = pairs_corpus.image_embeddings()
    lists = _oracle_nearest(images, index.ivf.centroids)
    np.testing.assert_array_equal(index.ivf.list_sizes(), np.bincount(lists, minlength=K))
    assert index.ntotal == N and index.info["list_sizes"]["max"] == np.bincount(lists).max()
    _, ids = index.search(images[:3].astype(np.float32), k=N, nprobe=K)
    assert all(sorted(row) == list(range(N)) for row in ids.tolist())


@pytest.mark.parametrize("clustering", ["paired", "standard"])
def test_probing_every_list_is_exact_search(pairs_corpus, tmp_path, clustering):
    index = build_index(pairs_corpus, tmp_path, n_clusters=K, clustering=clustering, progress=False)
    queries = _queries()
    scores, ids = index.search(queries, k=10, nprobe=K)
    exact_scores, exact_ids = clipadapt.knn(queries.astype(np.float16), pairs_corpus.image_embeddings(), 10,
                                            metric="ip")
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-6)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert (tmp_path / "pairing.npy").is_file() == (clustering == "paired")


def test_from_lists_equals_adding_the_rows(pairs_corpus):
    images = pairs_corpus.image_embeddings()
    centroids = images[:K].astype(np.float32)
    added = IVFIndex(centroids, metric="ip").add(images)
    _, lists = clipadapt.assign(images, centroids.astype(np.float16), metric="ip")
    grouped = IVFIndex.from_lists(centroids, images, lists, metric="ip")
    queries = _queries().astype(np.float16)
    for nprobe in (1, 3):
        for result, expected in zip(grouped.search(queries, 5, nprobe), added.search(queries, 5, nprobe)):
            np.testing.assert_array_equal(result, expected)
    ids = np.arange(N, dtype=np.int64)[::-1].copy()
    _, found = IVFIndex.from_lists(centroids, images, lists, ids, metric="ip").search(queries, 5, K)
    np.testing.assert_array_equal(found, ids[added.search(queries, 5, K)[1]])
    with pytest.raises(ValueError, match="lists: entries must lie in"):
        IVFIndex.from_lists(centroids, images, np.full(N, K, dtype=np.int64))
    with pytest.raises(ValueError, match="lists: has 3 entries"):
        IVFIndex.from_lists(centroids, images, lists[:3])


# ---- save, load, resume ----

def test_load_gives_the_same_index(built):
    index, out = built
    loaded = MudgIndex.load(out)
    queries = _queries()
    for result, expected in zip(loaded.search(queries, 8, 2), index.search(queries, 8, 2)):
        np.testing.assert_array_equal(result, expected)
    assert loaded.info == json.loads((out / "index.json").read_text()) and loaded.info["complete"]
    assert loaded.open_corpus().count == N


def test_resume_skips_finished_stages(pairs_corpus, tmp_path, monkeypatch):
    first = build_index(pairs_corpus, tmp_path, n_clusters=K, progress=False)
    info = json.loads((tmp_path / "index.json").read_text())
    del info["stages"]["add"]  # as if killed while adding
    info["complete"] = False
    (tmp_path / "index.json").write_text(json.dumps(info))
    (tmp_path / "ivf.npz").unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished stage was recomputed")

    monkeypatch.setattr(mudg_index, "nearest_images", refuse)
    monkeypatch.setattr(mudg_index, "paired_kmeans", refuse)
    resumed = build_index(pairs_corpus, tmp_path, n_clusters=K, progress=False)
    assert resumed.info["stages"]["kmeans"] == first.info["stages"]["kmeans"]
    queries = _queries()
    for result, expected in zip(resumed.search(queries, 8, 2), first.search(queries, 8, 2)):
        np.testing.assert_array_equal(result, expected)
    monkeypatch.setattr(mudg_index, "_add_stage", refuse)
    build_index(pairs_corpus, tmp_path, n_clusters=K, progress=False)  # complete: nothing recomputed


def test_resume_refuses_other_parameters(built, pairs_corpus):
    out = built[1]
    with pytest.raises(ValueError, match="other parameters"):
        build_index(pairs_corpus, out, n_clusters=K + 1, progress=False)
    other = out / "fresh"
    build_index(pairs_corpus, other, n_clusters=K, max_iter=1, progress=False)
    rebuilt = build_index(pairs_corpus, other, n_clusters=K + 1, resume=False, progress=False)
    assert rebuilt.n_lists == K + 1 and rebuilt.info["parameters"]["max_iter"] == 10


def test_default_clusters_follow_the_official_ratio(pairs_corpus, tmp_path):
    assert default_n_clusters(20_000_000) == 133_333  # the official 131072 lists for 20M pairs: ~150 rows each
    assert default_n_clusters(10) == 1
    assert build_index(pairs_corpus, tmp_path, max_iter=1, progress=False).n_lists == 4
    assert build_index(SourceCorpus(pairs_corpus.path), tmp_path / "p", max_iter=1, progress=False).n_lists == 4


# ---- bad inputs ----

@pytest.mark.parametrize(("arguments", "message"), [
    ({"n_clusters": 0}, "n_clusters: must be an integer >= 1"),
    ({"n_clusters": N + 1}, "n_clusters: 601 exceeds"),
    ({"max_iter": -1}, "max_iter: must be an integer >= 0"),
    ({"clustering": "text"}, "clustering: unknown clustering 'text'"),
    ({"device": "tpu"}, "device: unknown device 'tpu'"),
])
def test_build_refuses_bad_arguments(pairs_corpus, tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        build_index(pairs_corpus, tmp_path, progress=False, **arguments)


def test_bad_pairing_inputs_and_queries(built, tmp_path):
    x = np.ones((4, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="images and captions: need one dtype and dimension"):
        nearest_images((x, x[:, :4]), progress=False)
    with pytest.raises(ValueError, match="images and captions"):
        nearest_images((x, x.astype(np.float16)), progress=False)
    with pytest.raises(ValueError, match="captions: expected a non-empty float array"):
        nearest_images((x, x[:0]), progress=False)
    with pytest.raises(TypeError, match="corpus_or_arrays"):
        nearest_images(42, progress=False)
    with pytest.raises(ValueError, match="caption_chunk_rows"):
        nearest_images((x, x), caption_chunk_rows=0, progress=False)
    index = built[0]
    with pytest.raises(ValueError, match=f"queries: expected a float array \\[Q, {D}\\]"):
        index.search(np.ones((2, D + 1), np.float32))
    with pytest.raises(ValueError, match="nprobe"):
        index.search(_queries(), nprobe=K + 1)
    with pytest.raises(FileNotFoundError, match="no finished MUDG index"):
        MudgIndex.load(tmp_path)


def test_pairing_reads_each_image_shard_once(tmp_path, monkeypatch):
    """Images are the large side (the official pairing is 20M x 20M): each shard goes to the
    device once and every caption chunk is compared with it, not once per caption chunk."""
    rng = np.random.default_rng(2)
    images, captions = (rng.standard_normal((30, 16)).astype(np.float16) for _ in range(2))
    corpus = _corpus(tmp_path / "c", images, captions, shard_rows=10)
    moved = []
    on_device = mudg_index.on_device
    monkeypatch.setattr(mudg_index, "on_device", lambda rows, device: moved.append(rows.shape) or
                        on_device(rows, device))
    pairing = nearest_images(corpus, caption_chunk_rows=4, progress=False)
    np.testing.assert_array_equal(pairing, _oracle_nearest(corpus.caption_embeddings(), corpus.image_embeddings()))
    image_blocks = [rows for rows in moved if rows == (10, 16)]
    assert len(image_blocks) == 3, moved  # 3 image shards, once each (not once per each of the 9 caption chunks)
