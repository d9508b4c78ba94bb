"""MUDG adaptive text augmentation against the released code's rules."""
import numpy as np
import pytest
import torch

import clipadapt
from clipadapt.mudg import augment
from clipadapt.mudg.augment import (RankedDescriptors, augmented_prompt, cluster_similarity, load_descriptors,
                                    load_ranking, rank_descriptors, ranked_form, save_ranking)

TEMPLATE = "a photo of a {}."


class LookupTower:
    """A fake text tower: every text must be one of the prepared strings (pins the prompt form)."""

    def __init__(self, vectors, as_torch=False):
        self.vectors = vectors
        self.as_torch = as_torch
        self.call_sizes = []

    def __call__(self, texts):
        self.call_sizes.append(len(texts))
        rows = np.stack([self.vectors[text] for text in texts]).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return torch.from_numpy(rows) if self.as_torch else rows


def unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------------------------------
# Descriptor files and prompt strings

def test_builtin_pool_loads_as_unique_which_clauses():
    clauses = load_descriptors()
    assert 150 <= len(clauses) <= 250
    assert len(set(clauses)) == len(clauses)
    assert all(clause.startswith(" which ") and clause.endswith(".") and "{" not in clause for clause in clauses)


def test_user_file_skips_blanks_and_comments_and_keeps_the_leading_space(tmp_path):
    path = tmp_path / "pool.txt"
    path.write_bytes(b"# my pool\r\n which is red.\r\n\r\n   \n which is blue.\n# end\n")
    assert load_descriptors(path) == [" which is red.", " which is blue."]


@pytest.mark.parametrize("content, message", [
    ("# only a comment\n\n", "no clauses"),
    (" which is {}.\n", "brace"),
    (", which is ranked.\n", "load_ranking"),
    (" which is red.\n which is blue.\n which is red.\n", "line 3 repeats line 1"),
])
def test_bad_descriptor_files_raise(tmp_path, content, message):
    path = tmp_path / "pool.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_descriptors(path)


def test_released_torch_saved_lists_are_read_as_they_are(tmp_path):
    import torch

    # The released pool (cache/descriptions.list) and rankings (better_descriptors_sorted_*.list) are torch.save'd
    # lists of strings; old torch versions wrote a plain pickle instead of a zip archive.
    torch.save([" which is red.", " which is blue."], tmp_path / "descriptions.list")
    assert load_descriptors(tmp_path / "descriptions.list") == [" which is red.", " which is blue."]
    torch.save([", which is red.", ", which is blue."], tmp_path / "ranked.list", _use_new_zipfile_serialization=False)
    assert load_ranking(tmp_path / "ranked.list") == [", which is red.", ", which is blue."]
    torch.save({"not": "a list"}, tmp_path / "other.list")
    with pytest.raises(ValueError, match="not a list of strings"):
        load_descriptors(tmp_path / "other.list")


def test_missing_descriptor_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        load_descriptors(tmp_path / "absent.txt")


def test_prompt_replaces_the_full_stop_with_a_comma_and_the_clause():
    assert augmented_prompt(TEMPLATE, "cow", " which may be large or small.") == \
        "a photo of a cow, which may be large or small."
    # The ranked form (", which ...") gives the same string: it is the retrieval query template(c)[:-1] + d.
    ranked = ", which may be large or small."
    assert augmented_prompt(TEMPLATE, "cow", ranked) == TEMPLATE.format("cow")[:-1] + ranked
    assert augmented_prompt("i love my {}!", "dog", " which is big.") == "i love my dog, which is big."


def test_double_comma_reproduces_the_official_training_string():
    ranked = ", which may be large or small."
    official = TEMPLATE.format("cow")[:-1] + "," + ranked  # trainer: ci[:-1] + ',' + desc, desc already has ','
    assert official == "a photo of a cow,, which may be large or small."
    assert augmented_prompt(TEMPLATE, "cow", ranked, double_comma=True) == official
    assert augmented_prompt(TEMPLATE, "cow", " which may be large or small.", double_comma=True) == official


@pytest.mark.parametrize("template, message", [
    ("a photo of a {}", "ends with the class name"),
    ("a photo of a cow.", "exactly one"),
    ("a {} photo of a {}.", "exactly one"),
])
def test_bad_templates_raise(template, message):
    with pytest.raises(ValueError, match=message):
        augmented_prompt(template, "cow", " which is big.")


def test_bad_descriptors_raise():
    with pytest.raises(ValueError, match="empty"):
        augmented_prompt(TEMPLATE, "cow", ",  ")
    with pytest.raises(ValueError, match="brace"):
        augmented_prompt(TEMPLATE, "cow", " which is {}.")
    with pytest.raises(TypeError, match="string"):
        augmented_prompt(TEMPLATE, "cow", 3)


def test_ranking_file_round_trip_keeps_the_leading_comma(tmp_path):
    ranked = [ranked_form(" which is red."), ", which is blue."]
    assert ranked[0] == ", which is red."
    save_ranking(tmp_path / "ranking.txt", ranked)
    assert (tmp_path / "ranking.txt").read_text() == ", which is red.\n, which is blue.\n"
    assert load_ranking(tmp_path / "ranking.txt") == ranked
    (tmp_path / "clauses.txt").write_text(" which is red.\n")
    with pytest.raises(ValueError, match="leading ','"):
        load_ranking(tmp_path / "clauses.txt")
    with pytest.raises(ValueError, match="leading ','"):
        save_ranking(tmp_path / "bad.txt", [" which is red."])


# ----------------------------------------------------------------------------------------------------------------------
# Per-cluster similarity and scores

def gram_mean(rows):
    """Reference s(g): the mean of all pairwise inner products, diagonal included, in float64."""
    rows = np.asarray(rows, dtype=np.float64)
    return (rows @ rows.T).mean()


def test_cluster_similarity_is_the_mean_pairwise_inner_product():
    rng = np.random.default_rng(0)
    embeddings = unit(rng.normal(size=(3, 10, 8)))  # a block of 3 candidates x 10 classes
    assignments = np.array([0, 0, 1, 1, 1, 2, 0, 3, 3, 3])  # cluster 2 is a singleton, 4 is empty
    got = cluster_similarity(embeddings, assignments, 5)
    assert got.shape == (3, 5)
    for b in range(3):
        for g in range(5):
            members = embeddings[b][assignments == g]
            if len(members) < 2:
                assert np.isnan(got[b, g])
            else:
                assert got[b, g] == pytest.approx(gram_mean(members), rel=1e-12)


def fixed_assignment_kmeans(assignments_per_call):
    """A stand-in for clipadapt.kmeans that returns prescribed assignments, one set per call."""
    calls = iter(assignments_per_call)

    def fake(x, n_clusters, **kwargs):
        return clipadapt.KMeansResult(centroids=None, assignments=np.asarray(next(calls)), inertia=np.zeros(1),
                                      counts=None)

    return fake


def random_problem(n_classes=12, n_candidates=9, d=16, seed=0):
    rng = np.random.default_rng(seed)
    classnames = [f"class{c}" for c in range(n_classes)]
    clauses = [f" which is variant {j}." for j in range(n_candidates)]
    vectors = {TEMPLATE.format(name): rng.normal(size=d) for name in classnames}
    for clause in clauses:
        for name in classnames:
            vectors[augmented_prompt(TEMPLATE, name, clause)] = rng.normal(size=d) + vectors[TEMPLATE.format(name)]
    return classnames, clauses, vectors


def reference_scores(vectors, classnames, clauses, assignments):
    """The ranking score in float64 from the float32 tower outputs: #clusters (>= 2 classes) with s_d < s_base."""
    def tower(texts):
        return unit(unit(np.stack([vectors[t] for t in texts])).astype(np.float32))

    base = tower([TEMPLATE.format(name) for name in classnames])
    scores = []
    for clause in clauses:
        augmented = tower([augmented_prompt(TEMPLATE, name, clause) for name in classnames])
        score = 0
        for g in np.unique(assignments):
            members = assignments == g
            if members.sum() >= 2 and gram_mean(augmented[members]) < gram_mean(base[members]):
                score += 1
        scores.append(score)
    return np.array(scores)


def test_scores_match_the_float64_reference_for_fixed_clusters(monkeypatch):
    classnames, clauses, vectors = random_problem()
    rng = np.random.default_rng(1)
    prescribed = [rng.integers(0, 4, len(classnames)) for _ in range(3)]
    monkeypatch.setattr(augment, "kmeans", fixed_assignment_kmeans(prescribed))
    ranked = rank_descriptors(LookupTower(vectors), classnames, TEMPLATE, clauses, n_clusters=4, progress=False)
    expected = np.stack([reference_scores(vectors, classnames, clauses, a) for a in prescribed])
    np.testing.assert_array_equal(ranked.repeat_scores, expected)
    assert len(set(map(tuple, expected))) > 1  # the repeats disagree, so "last" vs "sum" is tested below
    # combine="last" (faithful): only the last repeat orders; the sort is stable.
    np.testing.assert_array_equal(ranked.order, np.argsort(-expected[-1], kind="stable"))
    np.testing.assert_array_equal(ranked.scores, expected[-1][ranked.order])
    assert ranked.descriptors == tuple("," + clauses[i] for i in ranked.order)
    monkeypatch.setattr(augment, "kmeans", fixed_assignment_kmeans(prescribed))
    summed = rank_descriptors(LookupTower(vectors), classnames, TEMPLATE, clauses, n_clusters=4, combine="sum",
                              progress=False)
    np.testing.assert_array_equal(summed.order, np.argsort(-expected.sum(0), kind="stable"))
    assert list(summed.order) != list(ranked.order)


def test_clusters_come_from_seeded_spherical_kmeans_plus_plus():
    classnames, clauses, vectors = random_problem(n_classes=20, n_candidates=3)
    tower = LookupTower(vectors, as_torch=True)
    ranked = rank_descriptors(tower, classnames, TEMPLATE, clauses, n_clusters=5, repeats=2, seed=7, progress=False)
    base = tower([TEMPLATE.format(name) for name in classnames]).numpy()
    for r in range(2):
        expected = clipadapt.kmeans(base, 5, max_iter=100, metric="cosine", init="kmeans++", seed=7 + r)
        np.testing.assert_array_equal(ranked.assignments[r], expected.assignments)
    again = rank_descriptors(tower, classnames, TEMPLATE, clauses, n_clusters=5, repeats=2, seed=7, progress=False)
    np.testing.assert_array_equal(again.repeat_scores, ranked.repeat_scores)
    assert again.descriptors == ranked.descriptors


def grouped_problem():
    """4 well-separated groups of 3 classes, and four clauses: two leave the embeddings unchanged,
    one collapses every class onto a shared direction, one pushes each class its own way."""
    d, groups = 16, 4
    rng = np.random.default_rng(0)
    classnames = [f"class{c}" for c in range(groups * 3)]
    base = {name: 5 * np.eye(d)[c // 3] + 0.3 * rng.normal(size=d) for c, name in enumerate(classnames)}
    clauses = [" which is neutral.", " which collapses.", " which spreads.", " which is also neutral."]
    effects = {
        clauses[0]: lambda c, v: v,
        clauses[1]: lambda c, v: 5 * np.eye(d)[d - 1] + 0.1 * v,
        clauses[2]: lambda c, v: v + 8 * np.eye(d)[groups + c],  # class c's own direction (dims 4..15)
        clauses[3]: lambda c, v: v,
    }
    vectors = {TEMPLATE.format(name): v for name, v in base.items()}
    for clause, effect in effects.items():
        for c, name in enumerate(classnames):
            vectors[augmented_prompt(TEMPLATE, name, clause)] = effect(c, base[name])
    return classnames, clauses, vectors


def test_collapsing_clause_scores_zero_and_spreading_clause_scores_every_cluster():
    classnames, clauses, vectors = grouped_problem()
    ranked = rank_descriptors(LookupTower(vectors), classnames, TEMPLATE, clauses, n_clusters=4, progress=False)
    np.testing.assert_array_equal(ranked.cluster_sizes, np.full((3, 4), 3))  # k-means found the groups
    np.testing.assert_array_equal(ranked.repeat_scores, np.tile([0, 0, 4, 0], (3, 1)))
    # Ties keep candidate order: spreading first, then the rest as given.
    assert ranked.descriptors == (", which spreads.", ", which is neutral.", ", which collapses.",
                                  ", which is also neutral.")
    np.testing.assert_array_equal(ranked.scores, [4, 0, 0, 0])


def test_more_clusters_than_classes_and_singletons():
    classnames, clauses, vectors = grouped_problem()
    ranked = rank_descriptors(LookupTower(vectors), classnames[:3], TEMPLATE, clauses, n_clusters=16, repeats=1,
                              progress=False)
    assert ranked.assignments.shape == (1, 3) and ranked.base_similarity.shape == (1, 3)  # K = min(16, C)
    assert np.isnan(ranked.base_similarity).all()  # every cluster a singleton: nothing scored
    np.testing.assert_array_equal(ranked.scores, [0, 0, 0, 0])


def test_candidates_are_encoded_in_blocks():
    classnames, clauses, vectors = grouped_problem()
    tower = LookupTower(vectors)
    rank_descriptors(tower, classnames, TEMPLATE, clauses, repeats=1, texts_per_call=30, progress=False)
    assert tower.call_sizes == [12, 24, 24]  # base prompts, then 2 candidates x 12 classes per call


def test_bad_ranking_inputs_raise():
    classnames, clauses, vectors = grouped_problem()
    tower = LookupTower(vectors)
    with pytest.raises(ValueError, match="combine"):
        rank_descriptors(tower, classnames, TEMPLATE, clauses, combine="mean", progress=False)
    with pytest.raises(ValueError, match="candidates"):
        rank_descriptors(tower, classnames, TEMPLATE, [], progress=False)
    with pytest.raises(ValueError, match="n_clusters"):
        rank_descriptors(tower, classnames, TEMPLATE, clauses, n_clusters=0, progress=False)
    with pytest.raises(ValueError, match="classnames"):
        rank_descriptors(tower, [], TEMPLATE, clauses, progress=False)
    with pytest.raises(ValueError, match=r"encode: must return \[12, D\]"):
        rank_descriptors(lambda texts: np.ones((1, 4), np.float32), classnames, TEMPLATE, clauses, progress=False)
    with pytest.raises(ValueError, match="encode: returned zero"):
        rank_descriptors(lambda texts: np.zeros((len(texts), 4), np.float32), classnames, TEMPLATE, clauses,
                         progress=False)


def test_ranked_descriptors_save_directly(tmp_path):
    classnames, clauses, vectors = grouped_problem()
    ranked = rank_descriptors(LookupTower(vectors), classnames, TEMPLATE, clauses, repeats=1, progress=False)
    assert isinstance(ranked, RankedDescriptors)
    save_ranking(tmp_path / "ranking.txt", ranked)
    assert load_ranking(tmp_path / "ranking.txt") == list(ranked.descriptors)
