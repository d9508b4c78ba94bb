"""MUDG's retrieval, rank-vote pseudo-labels, similarity filter and per-class selection.

The index and the corpus are duck-typed, so any search structure fits:

* ``index.search(queries float32 [Q, D], k, nprobe) -> (scores [Q, k], ids int64 [Q, k])``,
  best first, id -1 for an empty slot (``clipadapt.IVFIndex`` has this signature);
* ``corpus.image_embeddings(ids int64 [m]) -> [m, D]`` (float16 or float32, rows in the order
  of ``ids``) and ``corpus.records(ids) -> list[dict]`` with keys ``id``, ``image`` (a path)
  and ``caption``.

Descriptors here are in ranked form (``", which ..."``, see :mod:`clipadapt.mudg.augment`);
a query is ``template(c)[:-1] + d``, i.e. ``augmented_prompt(template, c, d)``.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from clipadapt import _validate
from clipadapt._arrays import to_numpy
from clipadapt._files import read_json
from clipadapt.clustering import kmeans
from clipadapt.mudg.augment import (Encoder, augmented_prompt, check_classnames, check_ranked, check_template,
                                    encode_normalized)

log = logging.getLogger(__name__)

SELECTION_CSV = "selection.csv"
SELECTION_JSON = "selection.json"
CSV_COLUMNS = ("id", "label", "classname", "image", "caption")
SELECTION_MAX_ITER = 100
QUERIES_PER_SEARCH = 1024
ROWS_PER_CHUNK = 1 << 16


class SearchIndex(Protocol):
    def search(self, queries: np.ndarray, k: int, nprobe: int) -> tuple[Any, Any]: ...


class Corpus(Protocol):
    def image_embeddings(self, ids: np.ndarray) -> np.ndarray: ...

    def records(self, ids: np.ndarray) -> list[dict]: ...


# ----------------------------------------------------------------------------------------------------------------------
# Queries and rank votes

def build_queries(classnames: Sequence[str], template: str, descriptors: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """One query per (class, descriptor), class-major: ``template(c)[:-1] + d``.

    Returns ``(texts, query_class)``: C * n strings and int64 [C * n], the class of each query.
    ``descriptors`` are ranked (``", which ..."``); clauses give the same strings.
    """
    classnames = check_classnames(classnames)
    check_template(template)
    if isinstance(descriptors, str) or not isinstance(descriptors, Sequence) or not descriptors:
        raise ValueError("descriptors: give a non-empty sequence of ranked descriptors (', which ...')")
    texts = [augmented_prompt(template, name, descriptor) for name in classnames for descriptor in descriptors]
    query_class = np.repeat(np.arange(len(classnames), dtype=np.int64), len(descriptors))
    return texts, query_class


@dataclass(frozen=True)
class Votes:
    """Rank-vote pseudo-labels of the retrieved ids.

    Attributes:
        ids: int64 [M], the unique retrieved ids, ascending.
        labels: int64 [M], the winning class of each id.
        scores: int64 [M], the winning class's vote, sum of (K - r) over its occurrences.
        n_voting: int64 [M], how many classes retrieved the id (1: uncontested).
        vote_rows, vote_classes, vote_values: int64 [P] each, every non-zero vote as a
            coordinate list: class ``vote_classes[p]`` gave position ``vote_rows[p]`` (into
            ``ids``) the vote ``vote_values[p]``; sorted by (row, class).
    """

    ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    n_voting: np.ndarray
    vote_rows: np.ndarray
    vote_classes: np.ndarray
    vote_values: np.ndarray
    n_classes: int

    def to_csr(self) -> Any:
        """The votes as a ``scipy.sparse.csr_matrix`` int64 [M, C] (needs scipy)."""
        import scipy.sparse

        return scipy.sparse.csr_matrix((self.vote_values, (self.vote_rows, self.vote_classes)),
                                       shape=(self.ids.shape[0], self.n_classes))


def rank_vote(ids: Any, query_class: Any, n_classes: int, *, seed: int = 0) -> Votes:
    """Label every retrieved id by the class whose queries ranked it highest overall.

    Class c's vote for an id is ``sum (K - r)`` over the id's occurrences in class-c queries,
    r the 0-based rank in that query's top-K; the label is the argmax, ties broken uniformly at
    random with a generator seeded by ``seed`` (the official code draws a random permutation of
    the tied classes). An id retrieved by one class only gets that class.

    Args:
        ids: int64 [Q, K] search results, best first; -1 marks an empty slot (skipped).
        query_class: int [Q], class of each query, in [0, n_classes).
    """
    ids = to_numpy(ids, "ids")
    query_class = to_numpy(query_class, "query_class")
    _check_votes_input(ids, query_class, n_classes)
    _validate.integer(seed, "seed", minimum=0)
    k = ids.shape[1]
    valid = ids >= 0
    if not valid.any():
        raise ValueError("ids: every slot is empty (-1); nothing was retrieved")
    rows, ranks = np.nonzero(valid)
    unique_ids, id_slot = np.unique(ids[rows, ranks], return_inverse=True)
    classes = query_class[rows].astype(np.int64)
    # One (id, class) cell per pair that occurs; its vote sums the (K - r) weights.
    cells, cell_of_entry = np.unique(id_slot * n_classes + classes, return_inverse=True)
    cell_votes = np.bincount(cell_of_entry, weights=(k - ranks).astype(np.float64)).astype(np.int64)
    cell_id, cell_class = cells // n_classes, cells % n_classes
    # Best cell per id: sort by id, then vote descending, then a random key (the tie-break).
    tie_break = np.random.default_rng(seed).random(cells.shape[0])
    order = np.lexsort((tie_break, -cell_votes, cell_id))
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = cell_id[order[1:]] != cell_id[order[:-1]]
    winners = order[first]
    return Votes(ids=unique_ids.astype(np.int64), labels=cell_class[winners], scores=cell_votes[winners],
                 n_voting=np.bincount(cell_id, minlength=unique_ids.shape[0]).astype(np.int64),
                 vote_rows=cell_id, vote_classes=cell_class, vote_values=cell_votes, n_classes=int(n_classes))


def _check_votes_input(ids: np.ndarray, query_class: np.ndarray, n_classes: int) -> None:
    _validate.integer(n_classes, "n_classes", minimum=1)
    if ids.ndim != 2 or 0 in ids.shape:
        raise ValueError(f"ids: expected a non-empty [Q, K] array, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"ids: expected integer ids, got dtype {ids.dtype}")
    if query_class.shape != (ids.shape[0],):
        raise ValueError(f"query_class: expected shape ({ids.shape[0]},), one class per query row, "
                         f"got {query_class.shape}")
    if not np.issubdtype(query_class.dtype, np.integer):
        raise TypeError(f"query_class: expected integer classes, got dtype {query_class.dtype}")
    if query_class.min() < 0 or query_class.max() >= n_classes:
        raise ValueError(f"query_class: classes must lie in [0, {n_classes}), got [{query_class.min()}, "
                         f"{query_class.max()}]")
    if ids.min() < -1:
        raise ValueError(f"ids: negative id {ids.min()}; only -1 (empty slot) is allowed")


# ----------------------------------------------------------------------------------------------------------------------
# Filtering and per-class selection

def similarity_filter(image_features: Any, labels: Any, class_text: Any, threshold: float = 0.25) -> np.ndarray:
    """Keep an image if ``cos(image, t_label) > threshold`` (strictly greater, as the released code filters).

    Args:
        image_features: float16/32 [M, D], normalised here (rows of norm 0 score 0).
        labels: int [M], pseudo-label of each image, in [0, C).
        class_text: float [C, D], L2-normalised un-augmented template embeddings (as ``encode``
            returns them; used as given).
    Returns:
        bool [M].
    """
    features = to_numpy(image_features, "image_features")
    labels = to_numpy(labels, "labels")
    text = to_numpy(class_text, "class_text").astype(np.float32)
    _check_features_labels(features, labels)
    if text.ndim != 2 or text.shape[1] != features.shape[1]:
        raise ValueError(f"class_text: expected [C, {features.shape[1]}], got shape {text.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= text.shape[0]):
        raise ValueError(f"labels: must lie in [0, {text.shape[0]}) (rows of class_text)")
    keep = np.empty(features.shape[0], dtype=bool)
    for start in range(0, features.shape[0], ROWS_PER_CHUNK):  # bounded float32 copies of float16 rows
        rows = features[start:start + ROWS_PER_CHUNK].astype(np.float32)
        norms = np.linalg.norm(rows, axis=1)
        dots = np.einsum("ij,ij->i", rows, text[labels[start:start + ROWS_PER_CHUNK]])
        cosine = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        keep[start:start + ROWS_PER_CHUNK] = cosine > threshold
    return keep


def select_per_class(features: Any, labels: Any, k_sel: int, *, seed: int = 0,
                     max_iter: int = SELECTION_MAX_ITER, progress: bool = False) -> np.ndarray:
    """Representative images per class: sorted int64 positions into ``features``' rows.

    A class with more than ``k_sel`` members is clustered into ``k_sel`` clusters
    (``clipadapt.kmeans``, metric "l2", k-means++) and one random member of each non-empty
    cluster is kept; a smaller class keeps all its members. The rows are clustered as given, with
    Euclidean k-means as the released sklearn ``KMeans``. The released code clusters its own
    re-encoding of the downloaded images (unnormalised features); :func:`retrieve_training_set` passes the
    corpus's stored embeddings, which are unit rows (so are LAION's released ones): the norms
    are not kept, so that difference has no option.

    ``max_iter``: sklearn stops at convergence (centre shift below tol 1e-4) within at most 300
    rounds; here k-means stops at a fixed point (where later rounds change nothing) within
    ``max_iter`` rounds. 100 bound the cost at a third of 300's while leaving ample room: k-means
    with 96 clusters on 500-2000 synthetic 768-d points stopped changing within 5 rounds. Each
    class draws from its own generator seeded by ``(seed, class)``, so a class's selection does
    not depend on the others.

    Args:
        features: float16/32 [M, D]; labels: int [M].
    """
    features = to_numpy(features, "features")
    labels = to_numpy(labels, "labels")
    _check_features_labels(features, labels)
    _validate.integer(k_sel, "k_sel", minimum=1)
    _validate.integer(seed, "seed", minimum=0)
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels: must be class indices >= 0, got {labels.min()}")
    by_class = np.argsort(labels, kind="stable")
    classes, starts = np.unique(labels[by_class], return_index=True)
    kept = []
    for label, members in tqdm(zip(classes, np.split(by_class, starts[1:])), total=classes.shape[0],
                               desc="select per class", unit="class", disable=not progress):
        if members.shape[0] <= k_sel:
            kept.append(members)
            continue
        rows = features[members].astype(np.float32)
        rng = np.random.default_rng([seed, int(label)])
        result = kmeans(rows, int(k_sel), max_iter=max_iter, metric="l2", init="kmeans++",
                        seed=int(rng.integers(2**63)))
        kept.append(members[_one_random_member_per_cluster(np.asarray(result.assignments), rng)])
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else np.zeros(0, dtype=np.int64)


def _one_random_member_per_cluster(assignments: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions into ``assignments``: one uniformly random member of each non-empty cluster."""
    shuffled = rng.permutation(assignments.shape[0])
    _, first = np.unique(assignments[shuffled], return_index=True)
    return shuffled[first]


def _check_features_labels(features: np.ndarray, labels: np.ndarray) -> None:
    if features.ndim != 2 or features.shape[1] == 0:
        raise ValueError(f"features: expected [M, D], got shape {features.shape}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels: expected shape ({features.shape[0]},), one label per feature row, "
                         f"got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels: expected integer class labels, got dtype {labels.dtype}")
    if not np.isfinite(features).all():
        raise ValueError("features: contain NaN or Inf; recompute or drop those rows")


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline and its output

@dataclass
class Selection:
    """The fine-tuning set: selected corpus ids with their pseudo-labels, and the stage counts.

    Attributes:
        ids: int64 [S] corpus ids; labels: int64 [S] classes (indices into ``classnames``).
        classnames: all C class names (classes may have no image).
        images, captions: the corpus records of ``ids`` (image paths as the corpus gives them).
        counts: ``queries``, ``retrieved`` (filled slots), ``retrieved_unique``,
            ``kept_by_filter``, ``selected`` and ``per_class`` {classname: {"retrieved",
            "kept", "selected"}}.
        parameters: the retrieval settings.
    """

    ids: np.ndarray
    labels: np.ndarray
    classnames: tuple[str, ...]
    images: list[str]
    captions: list[str]
    counts: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The stage counts (without the per-class table) and the parameters, for printing."""
        totals = {stage: value for stage, value in self.counts.items() if stage != "per_class"}
        return {"classes": len(self.classnames), **totals, "parameters": self.parameters}

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write ``selection.csv`` (id,label,classname,image,caption) and ``selection.json``
        (classnames, counts, parameters) into ``out_dir``; returns the CSV's path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / SELECTION_CSV, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(CSV_COLUMNS)
            for row in zip(self.ids.tolist(), self.labels.tolist(), self.images, self.captions):
                identifier, label, image, caption = row
                writer.writerow((identifier, label, self.classnames[label], image, caption))
        summary = {"classnames": list(self.classnames), "counts": self.counts, "parameters": self.parameters}
        (out / SELECTION_JSON).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        log.info("selection: wrote %d images of %d classes to %s", len(self.ids), len(self.classnames), out)
        return out / SELECTION_CSV


def load_selection(path: str | os.PathLike) -> Selection:
    """A :class:`Selection` from the folder :meth:`Selection.write` wrote (or its ``selection.csv``)."""
    csv_path = Path(path)
    if csv_path.is_dir():
        csv_path = csv_path / SELECTION_CSV
    json_path = csv_path.with_name(SELECTION_JSON)
    for file in (csv_path, json_path):
        if not file.is_file():
            raise FileNotFoundError(f"path: {file} is missing; give the folder Selection.write() wrote")
    summary = read_json(json_path, "write the selection again (clipadapt mudg retrieve)")
    if not (isinstance(summary, dict) and isinstance(summary.get("classnames"), list)):
        raise ValueError(f"path: {json_path} holds no list of classnames; write the selection again (clipadapt mudg "
                         "retrieve)")
    with open(csv_path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise ValueError(f"path: {csv_path} has columns {reader.fieldnames}, expected {list(CSV_COLUMNS)}")
        rows = list(reader)
    classnames = tuple(summary["classnames"])
    labels = np.array([int(row["label"]) for row in rows], dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classnames)):
        raise ValueError(f"path: {csv_path} has labels outside [0, {len(classnames)})")
    return Selection(ids=np.array([int(row["id"]) for row in rows], dtype=np.int64), labels=labels,
                     classnames=classnames, images=[row["image"] for row in rows],
                     captions=[row["caption"] for row in rows], counts=summary.get("counts", {}),
                     parameters=summary.get("parameters", {}))


def retrieve_training_set(index: SearchIndex, corpus: Corpus, encode: Encoder, classnames: Sequence[str],
                          template: str, descriptors: Sequence[str], *, n_descriptors: int = 16, k: int = 64,
                          nprobe: int = 8, threshold: float = 0.25, k_sel: int = 96, seed: int = 0,
                          progress: bool = True) -> Selection:
    """Build the fine-tuning set from class names alone.

    Queries from the first ``n_descriptors`` ranked descriptors (C * n_descriptors queries,
    ``encode``d and searched for their top ``k`` with ``nprobe``) -> :func:`rank_vote` ->
    :func:`similarity_filter` against ``encode(template(c))`` -> :func:`select_per_class` with
    ``k_sel``. The corpus's stored image embeddings stand in for the official re-encoding of the
    downloaded images. Settings of the paper: n_descriptors 16 / k_sel 96 (ImageNet-like) or
    64 / 384 (smaller datasets), k 64, nprobe 8.
    """
    classnames = check_classnames(classnames)
    check_template(template)
    _validate.integer(n_descriptors, "n_descriptors", minimum=1)
    descriptors = list(descriptors)
    if len(descriptors) < n_descriptors:
        raise ValueError(f"descriptors: {len(descriptors)} given, but n_descriptors={n_descriptors}; lower "
                         "n_descriptors or rank more candidates")
    for position, descriptor in enumerate(descriptors[:n_descriptors]):
        check_ranked(descriptor, f"descriptor {position}")
    texts, query_class = build_queries(classnames, template, descriptors[:n_descriptors])
    queries = encode_normalized(encode, texts, "encode").astype(np.float32)
    ids = _search(index, queries, k, nprobe, progress)
    votes = rank_vote(ids, query_class, len(classnames), seed=seed)
    class_text = encode_normalized(encode, [template.format(name) for name in classnames], "encode")
    features = _corpus_embeddings(corpus, votes.ids)
    keep = similarity_filter(features, votes.labels, class_text, threshold)
    kept = np.flatnonzero(keep)
    chosen = kept[select_per_class(features[kept], votes.labels[kept], k_sel, seed=seed, progress=progress)]
    records = _records(corpus, votes.ids[chosen])
    counts = _stage_counts(classnames, texts, ids, votes, kept, chosen)
    log.info("retrieve: %(queries)d queries, %(retrieved_unique)d unique ids, %(kept_by_filter)d kept by the "
             "filter, %(selected)d selected", counts)
    parameters = {"template": template, "descriptors": descriptors[:n_descriptors], "n_descriptors": n_descriptors,
                  "k": k, "nprobe": nprobe, "threshold": threshold, "k_sel": k_sel, "seed": seed}
    return Selection(ids=votes.ids[chosen], labels=votes.labels[chosen], classnames=classnames,
                     images=[str(record["image"]) for record in records],
                     captions=[str(record.get("caption", "")) for record in records], counts=counts,
                     parameters=parameters)


def _search(index: SearchIndex, queries: np.ndarray, k: int, nprobe: int, progress: bool) -> np.ndarray:
    """int64 [Q, k] ids of every query, searched in blocks (a progress bar over the queries)."""
    blocks = []
    with tqdm(total=queries.shape[0], desc="retrieve", unit="query", disable=not progress) as bar:
        for start in range(0, queries.shape[0], QUERIES_PER_SEARCH):
            block = queries[start:start + QUERIES_PER_SEARCH]
            _, ids = index.search(block, k, nprobe)
            ids = to_numpy(ids, "index.search ids")
            if ids.shape != (block.shape[0], k):
                raise ValueError(f"index: search returned ids of shape {ids.shape}, expected ({block.shape[0]}, {k})")
            blocks.append(ids.astype(np.int64))
            bar.update(block.shape[0])
    return np.concatenate(blocks)


def _corpus_embeddings(corpus: Corpus, ids: np.ndarray) -> np.ndarray:
    features = to_numpy(corpus.image_embeddings(ids), "corpus.image_embeddings")
    if features.ndim != 2 or features.shape[0] != ids.shape[0]:
        raise ValueError(f"corpus: image_embeddings returned shape {features.shape} for {ids.shape[0]} ids")
    return features


def _records(corpus: Corpus, ids: np.ndarray) -> list[dict]:
    records = list(corpus.records(ids))
    if len(records) != ids.shape[0]:
        raise ValueError(f"corpus: records returned {len(records)} records for {ids.shape[0]} ids")
    for record, identifier in zip(records, ids.tolist()):
        if int(record["id"]) != identifier:
            raise ValueError(f"corpus: records returned id {record['id']} where {identifier} was asked; keep the "
                             "order of ids")
    return records


def _stage_counts(classnames: tuple[str, ...], texts: list[str], ids: np.ndarray, votes: Votes, kept: np.ndarray,
                  chosen: np.ndarray) -> dict[str, Any]:
    n_classes = len(classnames)
    per_stage = {stage: np.bincount(votes.labels[rows], minlength=n_classes)
                 for stage, rows in (("retrieved", slice(None)), ("kept", kept), ("selected", chosen))}
    return {"queries": len(texts), "retrieved": int((ids >= 0).sum()), "retrieved_unique": int(votes.ids.shape[0]),
            "kept_by_filter": int(kept.shape[0]), "selected": int(chosen.shape[0]),
            "per_class": {name: {stage: int(per_stage[stage][c]) for stage in per_stage}
                          for c, name in enumerate(classnames)}}


# ----------------------------------------------------------------------------------------------------------------------
# The training set

class SelectedImages(torch.utils.data.Dataset):
    """The selected images as a torch Dataset of ``(transform(PIL RGB image), label)``.

    Args:
        selection: the folder :meth:`Selection.write` wrote, or its ``selection.csv``.
        transform: applied to each PIL image (e.g. the training augmentation); None keeps PIL.
        image_root: relative image paths are resolved against it (None: as written, i.e.
            relative to the working directory).
    Attributes:
        classnames: tuple of all C class names; labels: int64 [S]; images: the resolved paths.
    """

    def __init__(self, selection: str | os.PathLike, transform: Callable[[Any], Any] | None = None, *,
                 image_root: str | os.PathLike | None = None):
        loaded = load_selection(selection)
        root = Path(image_root) if image_root is not None else None
        self.classnames = loaded.classnames
        self.labels = loaded.labels
        self.images = [str(root / image) if root is not None else image for image in loaded.images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        with Image.open(self.images[index]) as image:
            picture = image.convert("RGB")
        label = int(self.labels[index])
        return (self.transform(picture) if self.transform is not None else picture), label
