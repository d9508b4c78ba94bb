"""MUDG retrieval, rank pseudo-labels, filtering and per-class selection against the released code's rules."""
from collections import defaultdict

import numpy as np
import pytest
import torch

import clipadapt
from clipadapt.mudg import retrieve as retrieve_module
from clipadapt.mudg.retrieve import (SelectedImages, build_queries, load_selection, rank_vote,
                                     retrieve_training_set, select_per_class, similarity_filter)

TEMPLATE = "a photo of a {}."


def unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------------------------------
# Queries and rank votes

def test_queries_are_class_major_template_without_full_stop_plus_ranked_descriptor():
    texts, query_class = build_queries(["cow", "hen"], TEMPLATE, [", which is big.", ", which is small."])
    assert texts == ["a photo of a cow, which is big.", "a photo of a cow, which is small.",
                     "a photo of a hen, which is big.", "a photo of a hen, which is small."]
    assert query_class.dtype == np.int64
    np.testing.assert_array_equal(query_class, [0, 0, 1, 1])


def reference_votes(ids, query_class):
    """class -> sum of (K - r) per id, by a loop over every slot."""
    k = ids.shape[1]
    votes = defaultdict(lambda: defaultdict(int))
    for q in range(ids.shape[0]):
        for r in range(k):
            if ids[q, r] >= 0:
                votes[int(ids[q, r])][int(query_class[q])] += k - r
    return votes


def test_votes_weight_each_occurrence_by_k_minus_rank():
    rng = np.random.default_rng(0)
    n_queries, k, n_classes = 40, 8, 5
    ids = np.stack([rng.choice(60, k, replace=False) for _ in range(n_queries)]).astype(np.int64)
    ids[rng.random(ids.shape) < 0.1] = -1  # empty slots
    query_class = rng.integers(0, n_classes, n_queries)
    votes = rank_vote(ids, query_class, n_classes, seed=3)
    reference = reference_votes(ids, query_class)
    np.testing.assert_array_equal(votes.ids, sorted(reference))
    dense = votes.to_csr().toarray()
    for row, identifier in enumerate(votes.ids):
        expected = np.zeros(n_classes, dtype=np.int64)
        for c, value in reference[identifier].items():
            expected[c] = value
        np.testing.assert_array_equal(dense[row], expected)
        assert expected[votes.labels[row]] == expected.max() == votes.scores[row]
        assert votes.n_voting[row] == (expected > 0).sum()
    assert -1 not in votes.ids


def test_ties_are_broken_at_random_but_seeded():
    # Id 7: rank 0 for class 0 (K - 0 = 4) and ranks 1 and 3 for class 1 (3 + 1 = 4): a tie.
    ids = np.array([[7, 1, 2, 3], [4, 7, 5, 6], [8, 9, 10, 7]])
    query_class = np.array([0, 1, 1])

    def label_of_7(ids, query_class, seed):
        votes = rank_vote(ids, query_class, 2, seed=seed)
        return int(votes.labels[votes.ids == 7][0]), int(votes.scores[votes.ids == 7][0])

    labels = {seed: label_of_7(ids, query_class, seed) for seed in range(40)}
    assert {label for label, _ in labels.values()} == {0, 1}  # both tied classes win for some seed
    assert {score for _, score in labels.values()} == {4}
    assert all(label_of_7(ids, query_class, seed) == labels[seed] for seed in range(5))  # same seed, same label
    # One more class-1 occurrence (rank 3, +1) breaks the tie: the label no longer depends on the seed.
    untied_ids, untied_class = np.concatenate([ids, [[11, 12, 13, 7]]]), np.array([0, 1, 1, 1])
    assert {label_of_7(untied_ids, untied_class, seed) for seed in range(10)} == {(1, 5)}


def test_an_id_retrieved_by_one_class_only_gets_that_class():
    ids = np.array([[1, 2, 3], [2, 1, -1], [-1, -1, 9]])
    votes = rank_vote(ids, np.array([0, 1, 2]), 3)
    np.testing.assert_array_equal(votes.ids, [1, 2, 3, 9])
    assert votes.labels[2] == 0 and votes.labels[3] == 2  # id 3 only under class 0, id 9 (rank 2) only under 2
    assert votes.scores[3] == 1 and votes.n_voting[3] == 1
    np.testing.assert_array_equal(votes.labels[:2], [0, 1])  # id 1: 3 vs 2; id 2: 2 vs 3


@pytest.mark.parametrize("ids, query_class, message", [
    (np.array([[1, 2]]), np.array([0, 1]), "query_class: expected shape"),
    (np.array([[1, 2]]), np.array([3]), r"query_class: classes must lie in \[0, 2\)"),
    (np.array([[-1, -1]]), np.array([0]), "every slot is empty"),
    (np.array([[1, -2]]), np.array([0]), "only -1"),
    (np.array([[1.0, 2.0]]), np.array([0]), "integer ids"),
])
def test_bad_votes_input_raises(ids, query_class, message):
    with pytest.raises((ValueError, TypeError), match=message):
        rank_vote(ids, query_class, 2)


# ----------------------------------------------------------------------------------------------------------------------
# Filtering

def test_filter_keeps_only_similarity_strictly_above_the_threshold():
    text = np.array([[0.25, np.sqrt(1 - 0.25**2), 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    images = np.array([[2.0, 0.0, 0.0],   # cos with class 0 exactly 0.25 -> dropped
                       [0.0, 3.0, 0.0],   # 0.968 -> kept
                       [0.0, 0.0, -1.0],  # class 1: -1 -> dropped
                       [0.0, 0.0, 0.0]],  # zero row scores 0 -> dropped
                      dtype=np.float16)
    keep = similarity_filter(images, np.array([0, 0, 1, 1]), text, threshold=0.25)
    np.testing.assert_array_equal(keep, [False, True, False, False])
    np.testing.assert_array_equal(similarity_filter(images, np.array([0, 0, 1, 1]), text, threshold=0.2499),
                                  [True, True, False, False])


def test_filter_matches_a_float64_reference_on_unnormalised_float16_rows():
    rng = np.random.default_rng(0)
    text = unit(rng.normal(size=(5, 24)))
    images = (rng.normal(size=(300, 24)) * rng.uniform(0.5, 4, (300, 1))).astype(np.float16)
    labels = rng.integers(0, 5, 300)
    cosine = np.einsum("ij,ij->i", unit(images.astype(np.float64)), text[labels])
    decided = np.abs(cosine - 0.1) > 1e-4  # away from float32 rounding at the threshold
    keep = similarity_filter(torch.from_numpy(images), labels, text.astype(np.float32), threshold=0.1)
    np.testing.assert_array_equal(keep[decided], (cosine > 0.1)[decided])
    assert 0 < keep.sum() < 300


def test_filter_bad_inputs_raise():
    with pytest.raises(ValueError, match="labels: expected shape"):
        similarity_filter(np.ones((3, 4)), np.zeros(2, np.int64), np.ones((2, 4)))
    with pytest.raises(ValueError, match="class_text"):
        similarity_filter(np.ones((3, 4)), np.zeros(3, np.int64), np.ones((2, 5)))
    with pytest.raises(ValueError, match="labels: must lie"):
        similarity_filter(np.ones((3, 4)), np.array([0, 1, 2]), np.ones((2, 4)))


# ----------------------------------------------------------------------------------------------------------------------
# Per-class selection

class RecordingKMeans:
    """Wraps clipadapt.kmeans, recording each call's input rows and assignments."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, n_clusters, **kwargs):
        result = clipadapt.kmeans(x, n_clusters, **kwargs)
        self.calls.append({"x": np.array(x), "k": n_clusters, "kwargs": kwargs,
                           "assignments": np.asarray(result.assignments)})
        return result


def selection_problem(seed=0):
    rng = np.random.default_rng(seed)
    sizes = {0: 40, 1: 5, 2: 8, 3: 30}
    labels = rng.permutation(np.concatenate([np.full(n, c) for c, n in sizes.items()]))
    features = (rng.normal(size=(labels.size, 12)) * 3 + 1).astype(np.float16)  # raw, not unit rows
    return features, labels


def test_selection_keeps_one_member_of_each_cluster_and_small_classes_whole(monkeypatch):
    features, labels = selection_problem()
    recorder = RecordingKMeans()
    monkeypatch.setattr(retrieve_module, "kmeans", recorder)
    kept = select_per_class(features, labels, 8, seed=1)
    assert kept.dtype == np.int64 and np.all(np.diff(kept) > 0)
    for small in (1, 2):  # 5 and exactly k_sel = 8 members: kept whole
        np.testing.assert_array_equal(kept[labels[kept] == small], np.flatnonzero(labels == small))
    assert [call["k"] for call in recorder.calls] == [8, 8]  # classes 0 and 3, in label order
    for call, big in zip(recorder.calls, (0, 3)):
        members = np.flatnonzero(labels == big)
        assert call["kwargs"]["metric"] == "l2" and call["kwargs"]["init"] == "kmeans++"
        assert call["kwargs"]["max_iter"] == retrieve_module.SELECTION_MAX_ITER
        np.testing.assert_array_equal(call["x"], features[members].astype(np.float32))  # raw features
        chosen = np.searchsorted(members, kept[labels[kept] == big])
        clusters = call["assignments"][chosen]
        assert len(set(clusters)) == len(clusters)  # distinct clusters ...
        assert set(clusters) == set(call["assignments"])  # ... covering every non-empty one


def test_selection_is_seeded_and_draws_random_members():
    features, labels = selection_problem()
    first = select_per_class(features, labels, 8, seed=5)
    np.testing.assert_array_equal(select_per_class(features, labels, 8, seed=5), first)
    assert any(not np.array_equal(select_per_class(features, labels, 8, seed=s), first) for s in range(6, 10))


def test_the_kept_member_of_a_cluster_is_random(monkeypatch):
    # Fixed clusters (members i -> cluster i % 4): only the choice within each cluster depends on the seed.
    def fixed(x, n_clusters, **kwargs):
        return clipadapt.KMeansResult(centroids=None, assignments=np.arange(x.shape[0]) % n_clusters,
                                      inertia=np.zeros(1), counts=None)

    monkeypatch.setattr(retrieve_module, "kmeans", fixed)
    features, labels = np.zeros((20, 3), np.float32), np.zeros(20, np.int64)
    picks = [select_per_class(features, labels, 4, seed=seed) for seed in range(30)]
    assert all(sorted(pick % 4) == [0, 1, 2, 3] for pick in picks)
    assert len({int(pick[pick % 4 == 0][0]) for pick in picks}) == 5  # every member of cluster 0 gets picked


def test_rows_are_clustered_as_given(monkeypatch):
    features, labels = selection_problem()  # raw rows: not renormalised before clustering
    recorder = RecordingKMeans()
    monkeypatch.setattr(retrieve_module, "kmeans", recorder)
    select_per_class(features, labels, 8)
    clustered = [label for label in np.unique(labels) if (labels == label).sum() > 8]
    assert len(recorder.calls) == len(clustered) == 2
    for call, label in zip(recorder.calls, clustered):
        np.testing.assert_array_equal(call["x"], features[labels == label].astype(np.float32))


def test_selection_bad_inputs_raise():
    features, labels = selection_problem()
    with pytest.raises(ValueError, match="k_sel"):
        select_per_class(features, labels, 0)
    with pytest.raises(ValueError, match="labels: expected shape"):
        select_per_class(features, labels[:-1], 4)
    with pytest.raises(ValueError, match="NaN"):
        select_per_class(np.full((3, 2), np.nan), np.zeros(3, np.int64), 1)


# ----------------------------------------------------------------------------------------------------------------------
# End to end with an exact in-memory index and a fake corpus

class ExactIndex:
    """Exact cosine search over the corpus embeddings (clipadapt.knn); ids are the corpus ids."""

    def __init__(self, embeddings, ids):
        self.embeddings = embeddings.astype(np.float32)
        self.ids = ids
        self.calls = []

    def search(self, queries, k, nprobe):
        assert queries.dtype == np.float32
        self.calls.append((queries.shape[0], k, nprobe))
        scores, positions = clipadapt.knn(queries, self.embeddings, k, metric="cosine")
        return scores, self.ids[positions]


class FakeCorpus:
    def __init__(self, embeddings, ids, folder):
        self.embeddings = embeddings.astype(np.float16)
        self.ids = ids
        self.folder = folder

    def rows(self, ids):
        return np.searchsorted(self.ids, ids)

    def image_embeddings(self, ids):
        return self.embeddings[self.rows(ids)]

    def records(self, ids):
        return [{"id": int(i), "image": str(self.folder / f"{int(i)}.png"), "caption": f"caption, of \"{int(i)}\""}
                for i in ids]


def end_to_end_problem(tmp_path):
    """3 classes along e0..e2; 30 images per class near their axis, 10 distractors that share a
    little of class 0's direction (retrieved, but below the 0.25 filter), and a tower that maps
    every prompt of class c near e_c."""
    rng = np.random.default_rng(0)
    d, classnames = 32, ["cow", "hen", "pig"]
    descriptors = [", which is big.", ", which is small.", ", which is red.", ", which is old."]
    axes = np.eye(d)
    images = [unit(axes[c] + 0.35 * rng.normal(size=(30, d)) * (np.arange(d) >= 3)) for c in range(3)]
    distractors = unit(0.15 * axes[0] + unit(rng.normal(size=(10, d)) * (np.arange(d) >= 3)))
    embeddings = np.concatenate(images + [distractors])
    truth = np.concatenate([np.full(30, c) for c in range(3)] + [np.full(10, -1)])
    ids = 1000 + 3 * np.arange(embeddings.shape[0])  # corpus ids are not row positions
    vectors = {}
    for c, name in enumerate(classnames):
        vectors[TEMPLATE.format(name)] = axes[c]
        for descriptor in descriptors:
            vectors[TEMPLATE.format(name)[:-1] + descriptor] = axes[c] + 0.2 * rng.normal(size=d)

    def tower(texts):
        return torch.from_numpy(unit(np.stack([vectors[t] for t in texts])).astype(np.float32))

    return classnames, descriptors, tower, ExactIndex(embeddings, ids), FakeCorpus(embeddings, ids, tmp_path), truth


def test_retrieve_composes_the_stages(tmp_path):
    classnames, descriptors, tower, index, corpus, truth = end_to_end_problem(tmp_path)
    selection = retrieve_training_set(index, corpus, tower, classnames, TEMPLATE, descriptors, n_descriptors=3, k=35,
                                      nprobe=4, k_sel=12, seed=2, progress=False)
    assert index.calls == [(9, 35, 4)]
    # The same stages by hand.
    texts, query_class = build_queries(classnames, TEMPLATE, descriptors[:3])
    _, found = index.search(tower(texts).numpy(), 35, 4)
    votes = rank_vote(found, query_class, 3, seed=2)
    features = corpus.image_embeddings(votes.ids)
    keep = similarity_filter(features, votes.labels, tower([TEMPLATE.format(c) for c in classnames]).numpy())
    chosen = np.flatnonzero(keep)[select_per_class(features[keep], votes.labels[keep], 12, seed=2)]
    np.testing.assert_array_equal(selection.ids, votes.ids[chosen])
    np.testing.assert_array_equal(selection.labels, votes.labels[chosen])
    # What the stages did on this problem: the distractors were retrieved and filtered out, labels are right.
    truth_of = dict(zip(index.ids.tolist(), truth.tolist()))
    retrieved_truth = np.array([truth_of[i] for i in votes.ids.tolist()])
    assert (retrieved_truth == -1).any() and not (retrieved_truth[keep] == -1).any()
    np.testing.assert_array_equal([truth_of[i] for i in selection.ids.tolist()], selection.labels)
    counts = selection.counts
    assert counts["queries"] == 9 and counts["retrieved"] == 9 * 35
    assert counts["retrieved_unique"] == votes.ids.size and counts["kept_by_filter"] == keep.sum()
    assert counts["selected"] == selection.ids.size == 3 * 12  # every class had more than k_sel = 12 images
    assert counts["per_class"]["cow"] == {"retrieved": int((votes.labels == 0).sum()),
                                          "kept": int((votes.labels[keep] == 0).sum()), "selected": 12}
    assert selection.images[0] == str(tmp_path / f"{selection.ids[0]}.png")
    summary = selection.summary()
    assert summary["classes"] == 3 and summary["selected"] == 36 and "per_class" not in summary
    assert summary["parameters"]["template"] == TEMPLATE and summary["parameters"]["k_sel"] == 12


def test_selection_round_trip_and_training_dataset(tmp_path):
    from PIL import Image

    classnames, descriptors, tower, index, corpus, _ = end_to_end_problem(tmp_path)
    selection = retrieve_training_set(index, corpus, tower, classnames, TEMPLATE, descriptors, n_descriptors=2, k=20,
                                      k_sel=5, progress=False)
    csv_path = selection.write(tmp_path / "out")
    loaded = load_selection(tmp_path / "out")
    np.testing.assert_array_equal(loaded.ids, selection.ids)
    np.testing.assert_array_equal(loaded.labels, selection.labels)
    assert loaded.classnames == tuple(classnames) and loaded.captions == selection.captions  # commas and quotes
    assert loaded.counts == selection.counts and loaded.parameters["descriptors"] == descriptors[:2]
    header = csv_path.read_text().splitlines()[0]
    assert header == "id,label,classname,image,caption"
    for position, identifier in enumerate(selection.ids.tolist()):
        Image.new("L" if position % 2 else "RGB", (6 + position, 5), color=position).save(
            tmp_path / f"{identifier}.png")
    dataset = SelectedImages(csv_path, transform=lambda image: torch.tensor(np.asarray(image)))
    assert isinstance(dataset, torch.utils.data.Dataset) and len(dataset) == selection.ids.size
    assert dataset.classnames == tuple(classnames)
    np.testing.assert_array_equal(dataset.labels, selection.labels)
    image, label = dataset[1]
    assert image.shape == (5, 7, 3) and int(image[0, 0, 0]) == 1  # greyscale PNG converted to RGB
    assert label == selection.labels[1]
    batch = next(iter(torch.utils.data.DataLoader(SelectedImages(tmp_path / "out", transform=lambda im: 0),
                                                  batch_size=4)))
    np.testing.assert_array_equal(batch[1].numpy(), selection.labels[:4])


def test_selected_images_resolve_relative_paths_against_image_root(tmp_path):
    from clipadapt.mudg.retrieve import Selection

    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "a.png")
    Selection(ids=np.array([5]), labels=np.array([1]), classnames=("cow", "hen"), images=["a.png"],
              captions=[""]).write(tmp_path / "out")
    dataset = SelectedImages(tmp_path / "out", image_root=tmp_path / "images")
    image, label = dataset[0]
    assert image.size == (4, 4) and label == 1


def test_retrieve_bad_inputs_raise(tmp_path):
    classnames, descriptors, tower, index, corpus, _ = end_to_end_problem(tmp_path)
    with pytest.raises(ValueError, match="n_descriptors=16"):
        retrieve_training_set(index, corpus, tower, classnames, TEMPLATE, descriptors, progress=False)
    with pytest.raises(ValueError, match="rank_descriptors"):
        retrieve_training_set(index, corpus, tower, classnames, TEMPLATE, [" which is big."], n_descriptors=1,
                              progress=False)
    with pytest.raises(FileNotFoundError, match="selection.csv is missing"):
        load_selection(tmp_path)


def test_every_package_export_is_the_object_its_module_defines():
    """``clipadapt.mudg`` loads its exports on first use; no export is named like a submodule
    (which would resolve to the submodule once that is imported)."""
    import importlib

    import clipadapt.mudg as package

    for name in package.__all__:
        module = importlib.import_module(f"clipadapt.mudg.{package._EXPORTS[name]}")
        assert getattr(package, name) is getattr(module, name), name
        assert name not in package._EXPORTS.values(), name
    assert package.retrieve_training_set is retrieve_training_set
