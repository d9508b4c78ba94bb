"""MUDG's adaptive text augmentation: rank class-agnostic clauses by how well they keep
similar classes apart in CLIP's text space.

Two forms of a descriptor, and which function takes which:

* a **clause**, the candidate form: ``" which can be large or small."`` (leading space, no
  comma). :func:`load_descriptors` returns clauses; :func:`rank_descriptors` takes them.
* a **ranked descriptor**: the clause with a leading comma, ``", which can be large or small."``,
  as the official ranking file stores it. :class:`RankedDescriptors`, :func:`save_ranking` and
  :func:`load_ranking` hold this form; retrieval queries are ``template(c)[:-1] + d`` with it.

:func:`augmented_prompt` takes either form (one leading comma is dropped first), so the
ranking prompts (``template(c)[:-1] + "," + clause``) and the retrieval queries come out as the
same string, ``"a photo of a cow, which can be large or small."``. The official training code
appends ``"," + ranked descriptor`` when it builds its training prompts, i.e.
``"a photo of a cow,, which ..."`` with two commas: ``double_comma=True`` reproduces it.
"""
from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from clipadapt import _validate
from clipadapt._arrays import to_numpy
from clipadapt.clustering import kmeans

log = logging.getLogger(__name__)

Encoder = Callable[[list[str]], Any]
"""The text tower: ``encode(texts) -> L2-normalised float32 [len(texts), D]`` (torch or numpy)."""

DEFAULT_DESCRIPTORS = "descriptors.txt"
COMMENT = "#"


# ----------------------------------------------------------------------------------------------------------------------
# Descriptor files and prompt strings

def load_descriptors(path: str | os.PathLike | None = None) -> list[str]:
    """Candidate clauses, one per line, in file order (clause form: ``" which ..."``, no comma).

    ``path=None`` loads the built-in pool shipped with the package (``mudg/descriptors.txt``, 210
    clauses written for this project). ``path`` is a text file, or a torch-saved list of strings
    such as the released MUDG's pool of 4,227 GPT clauses (``cache/descriptions.list`` of
    github.com/Chris210634/mudg), read as it is (an entry is a line).
    Line endings are stripped, but not the leading space (the prompt is ``"...cow," + clause``);
    blank lines and lines starting with ``#`` are skipped. Raises ``ValueError`` for a clause
    that starts with ``","`` (a ranking file: use :func:`load_ranking`), contains ``"{}"`` or
    repeats an earlier one, and for a file without clauses.
    """
    if path is None:
        lines = resources.files("clipadapt.mudg").joinpath(DEFAULT_DESCRIPTORS).read_text(encoding="utf-8").splitlines()
        source = f"built-in {DEFAULT_DESCRIPTORS}"
    else:
        lines = _read_lines(path, "path")
        source = str(path)
    clauses, first_line = [], {}
    for number, line in enumerate(lines, start=1):
        clause = line.rstrip("\r\n")
        if not clause.strip() or clause.lstrip().startswith(COMMENT):
            continue
        where = f"{source} line {number}"
        if clause.lstrip().startswith(","):
            raise ValueError(f"path: {where} starts with ',' as a ranked descriptor does; candidate clauses have "
                             "no comma (' which ...'); load a ranking with load_ranking")
        _check_descriptor_text(clause, where)
        if clause in first_line:
            raise ValueError(f"path: {where} repeats line {first_line[clause]} ({clause!r}); remove the duplicate")
        first_line[clause] = number
        clauses.append(clause)
    if not clauses:
        raise ValueError(f"path: {source} holds no clauses (only blank or '#' lines); give one clause per line")
    return clauses


def _read_lines(path: str | os.PathLike, name: str) -> list[str]:
    """The lines of a text file, or the strings of a torch-saved list (the released ``.list`` files)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{name}: {file} is not a file")
    if not _is_torch_file(file):
        return file.read_text(encoding="utf-8").splitlines()
    import torch

    entries = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(entries, (list, tuple)) or not all(isinstance(entry, str) for entry in entries):
        raise ValueError(f"{name}: {file} is a torch file but not a list of strings; give a descriptor list")
    return list(entries)


def _is_torch_file(file: Path) -> bool:
    """torch.save's zip archive, or its older pickle (protocol 2+ starts with byte 0x80)."""
    with open(file, "rb") as handle:
        first_byte = handle.read(1)
    return first_byte == b"\x80" or zipfile.is_zipfile(file)


def _check_descriptor_text(descriptor: Any, where: str) -> None:
    if not isinstance(descriptor, str):
        raise TypeError(f"descriptor: {where} must be a string, got {type(descriptor).__name__}")
    if not descriptor.strip(", \t"):
        raise ValueError(f"descriptor: {where} is empty; give a clause such as ' which may be large or small.'")
    if "{" in descriptor or "}" in descriptor:
        raise ValueError(f"descriptor: {where} ({descriptor!r}) contains a brace; descriptors are appended after the "
                         "class name and take no '{}' placeholder")
    if "\n" in descriptor or "\r" in descriptor:
        raise ValueError(f"descriptor: {where} ({descriptor!r}) spans several lines; give one line")


def check_template(template: Any) -> str:
    """``template`` with exactly one ``"{}"`` and a final character (the full stop) after it."""
    if not isinstance(template, str):
        raise TypeError(f"template: must be a string such as 'a photo of a {{}}.', got {type(template).__name__}")
    if template.count("{}") != 1 or template.replace("{}", "").count("{") or template.replace("{}", "").count("}"):
        raise ValueError(f"template: {template!r} must contain exactly one '{{}}' and no other braces")
    if template.endswith("{}"):
        raise ValueError(f"template: {template!r} ends with the class name; its last character (normally '.') is "
                         "replaced by the descriptor, so end it with punctuation, e.g. 'a photo of a {{}}.'")
    return template


def clause_of(descriptor: str) -> str:
    """The clause of a descriptor in either form: one leading ``","`` removed (``", which x"`` -> ``" which x"``)."""
    return descriptor.removeprefix(",")


def ranked_form(clause: str) -> str:
    """A clause in ranked form, with its leading comma (``" which x"`` -> ``", which x"``)."""
    return "," + clause_of(clause)


def augmented_prompt(template: str, classname: str, descriptor: str, *, double_comma: bool = False,
                     separate_commas: bool = False) -> str:
    """``template.format(classname)[:-1] + "," + clause``: the template's last character (its full
    stop) replaced by a comma and the clause, e.g. ``"a photo of a cow, which may be large."``.

    ``descriptor`` is a clause or a ranked descriptor (one leading comma is dropped, so both give
    the same string); retrieval queries and the ranking use this form. ``double_comma=True`` gives
    the official training string ``template.format(classname)[:-1] + "," + ranked descriptor``:
    ``"a photo of a cow,, which ..."``, which CLIP's BPE encodes as ONE
    token. The official evaluation instead inserts the descriptor's tokens after a comma token,
    i.e. two comma tokens: ``separate_commas=True`` (with ``double_comma``) writes ``", ,"``,
    which tokenises that way.
    """
    check_template(template)
    _check_descriptor_text(descriptor, "descriptor")
    commas = (", ," if separate_commas else ",,") if double_comma else ","
    return template.format(classname)[:-1] + commas + clause_of(descriptor)


def save_ranking(path: str | os.PathLike, ranked: RankedDescriptors | Sequence[str]) -> None:
    """Write ranked descriptors to a text file, one per line in rank order, each with its leading ``","``."""
    descriptors = ranked.descriptors if isinstance(ranked, RankedDescriptors) else tuple(ranked)
    for position, descriptor in enumerate(descriptors):
        check_ranked(descriptor, f"ranked descriptor {position}")
    Path(path).write_text("".join(descriptor + "\n" for descriptor in descriptors), encoding="utf-8")


def load_ranking(path: str | os.PathLike) -> list[str]:
    """Ranked descriptors (``", which ..."``) from a file written by :func:`save_ranking` or the
    released torch-saved ``better_descriptors_sorted_*.list``, best first."""
    descriptors = [line.rstrip("\r\n") for line in _read_lines(path, "path")]
    descriptors = [line for line in descriptors if line.strip()]
    if not descriptors:
        raise ValueError(f"path: {path} holds no ranked descriptors")
    for number, descriptor in enumerate(descriptors, start=1):
        check_ranked(descriptor, f"{path} entry {number}")
    return descriptors


def check_ranked(descriptor: Any, where: str) -> None:
    """ValueError unless ``descriptor`` is a ranked descriptor (``", which ..."``); ``where`` names it."""
    _check_descriptor_text(descriptor, where)
    if not descriptor.startswith(","):
        raise ValueError(f"descriptor: {where} ({descriptor!r}) lacks the leading ',' of a ranked descriptor; "
                         "rank candidate clauses with rank_descriptors() (or convert them with ranked_form())")


# ----------------------------------------------------------------------------------------------------------------------
# Ranking

@dataclass(frozen=True)
class RankedDescriptors:
    """Candidates in ranked order (best first) and the statistics that ranked them.

    Attributes:
        descriptors: the candidates in ranked form (``", which ..."``), best first.
        scores: int64 [n]: the score of each ranked descriptor (the last repeat's, or the sum
            over repeats with ``combine="sum"``), non-increasing.
        order: int64 [n]: ``descriptors[i] == ranked_form(candidates[order[i]])``.
        repeat_scores: int64 [repeats, n]: per repeat, the number of clusters whose
            similarity the candidate lowers, in candidate order.
        assignments: int64 [repeats, C]: each repeat's cluster of every class.
        base_similarity: float64 [repeats, K]: s_base(g), NaN for clusters of fewer than 2 classes.
        similarity: float64 [repeats, n, K]: s_d(g) in candidate order, NaN likewise.
        combine: "last" or "sum".
    """

    descriptors: tuple[str, ...]
    scores: np.ndarray
    order: np.ndarray
    repeat_scores: np.ndarray
    assignments: np.ndarray
    base_similarity: np.ndarray
    similarity: np.ndarray
    combine: str

    @property
    def cluster_sizes(self) -> np.ndarray:
        """int64 [repeats, K]: classes per cluster in each repeat."""
        n_clusters = self.base_similarity.shape[1]
        return np.stack([np.bincount(row, minlength=n_clusters) for row in self.assignments])


def cluster_similarity(embeddings: np.ndarray, assignments: np.ndarray, n_clusters: int) -> np.ndarray:
    """Mean pairwise inner product within each cluster, diagonal included:
    ``s(g) = mean_{i,j in g} <e_i, e_j> = ||sum_{i in g} e_i||^2 / |g|^2``.

    Args:
        embeddings: float [..., C, D] (leading axes: e.g. one block of candidates).
        assignments: int64 [C], cluster of each row in [0, n_clusters).
    Returns:
        float64 [..., K]; NaN for clusters with fewer than 2 members (they are not scored).
    """
    sizes = np.bincount(assignments, minlength=n_clusters)
    members = np.zeros((n_clusters, assignments.shape[0]))
    members[assignments, np.arange(assignments.shape[0])] = 1.0
    sums = np.matmul(members, np.asarray(embeddings, dtype=np.float64))  # [..., K, D]
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = (sums * sums).sum(-1) / sizes.astype(np.float64) ** 2
    similarity[..., sizes < 2] = np.nan
    return similarity


def rank_descriptors(encode: Encoder, classnames: Sequence[str], template: str, candidates: Sequence[str], *,
                     n_clusters: int = 16, repeats: int = 3, max_iter: int = 100, seed: int = 0,
                     combine: Literal["last", "sum"] = "last", texts_per_call: int = 4096,
                     progress: bool = True) -> RankedDescriptors:
    """Rank candidate clauses by the number of class clusters whose similarity they lower.

    1. ``t_c`` = ``encode(template(c))``; ``t_c^d`` = ``encode(augmented_prompt(template, c, d))``.
    2. Per repeat r: spherical k-means of the ``t_c`` into K = min(n_clusters, C) clusters
       (``clipadapt.kmeans``, k-means++ seeded with ``seed + r``, ``max_iter`` Lloyd rounds: the
       official loop stops once assignments stop changing, which is a fixed point of the rounds
       that follow, so running them all gives the same clusters).
    3. ``score_r(d) = #{g : |g| >= 2 and s_d(g) < s_base(g)}`` (:func:`cluster_similarity`).
    4. ``combine="last"`` (faithful: the official script keeps the last of its 3 orderings) ranks
       by the last repeat's scores; ``"sum"`` by the sum over repeats. The sort is stable, so
       ties keep candidate order and the ranking is deterministic for a seed.

    Args:
        encode: the text tower, ``list[str] -> L2-normalised float [n, D]`` (torch or numpy).
        classnames: the C target class names.
        template: e.g. ``"a photo of a {}."``.
        candidates: clauses (``" which ..."``), e.g. :func:`load_descriptors`.
        texts_per_call: strings per ``encode`` call (candidates are encoded in blocks of
            max(1, texts_per_call // C) candidates, so C x n texts never sit in memory at once).
    """
    classnames = check_classnames(classnames)
    template = check_template(template)
    candidates = _check_candidates(candidates)
    for value, name in ((n_clusters, "n_clusters"), (repeats, "repeats"), (texts_per_call, "texts_per_call")):
        _validate.integer(value, name, minimum=1)
    if combine not in ("last", "sum"):
        raise ValueError(f"combine: unknown rule {combine!r}; use 'last' (faithful) or 'sum'")
    base = encode_normalized(encode, [template.format(name) for name in classnames], "encode")
    k = min(int(n_clusters), len(classnames))
    assignments = np.stack([_cluster_classes(base, k, max_iter, seed + r) for r in range(repeats)])
    base_similarity = np.stack([cluster_similarity(base, row, k) for row in assignments])
    if np.isnan(base_similarity).all():
        log.warning("rank_descriptors: every cluster has fewer than 2 classes (C=%d, K=%d): all scores are 0",
                    len(classnames), k)
    similarity = _candidate_similarity(encode, classnames, template, candidates, assignments, k,
                                       texts_per_call, progress)
    repeat_scores = (similarity < base_similarity[:, None, :]).sum(-1).astype(np.int64)  # NaN compares False
    scores = repeat_scores[-1] if combine == "last" else repeat_scores.sum(0)
    order = np.argsort(-scores, kind="stable")
    log.info("rank_descriptors: %d candidates, C=%d, K=%d, %d repeats; best score %d", len(candidates),
             len(classnames), k, repeats, scores[order[0]])
    return RankedDescriptors(descriptors=tuple(ranked_form(candidates[i]) for i in order), scores=scores[order],
                             order=order.astype(np.int64), repeat_scores=repeat_scores, assignments=assignments,
                             base_similarity=base_similarity, similarity=similarity, combine=combine)


def _cluster_classes(base: np.ndarray, k: int, max_iter: int, seed: int) -> np.ndarray:
    result = kmeans(base.astype(np.float32), k, max_iter=max_iter, metric="cosine", init="kmeans++", seed=seed)
    return np.asarray(result.assignments, dtype=np.int64)


def _candidate_similarity(encode: Encoder, classnames: tuple[str, ...], template: str, candidates: list[str],
                          assignments: np.ndarray, k: int, texts_per_call: int, progress: bool) -> np.ndarray:
    """s_d(g) for every repeat, candidate and cluster: float64 [repeats, n, K]."""
    n_classes = len(classnames)
    block = max(1, texts_per_call // n_classes)
    similarity = np.empty((assignments.shape[0], len(candidates), k))
    with tqdm(total=len(candidates), desc="rank descriptors", unit="clause", disable=not progress) as bar:
        for start in range(0, len(candidates), block):
            chunk = candidates[start:start + block]
            texts = [augmented_prompt(template, name, clause) for clause in chunk for name in classnames]
            embeddings = encode_normalized(encode, texts, "encode").reshape(len(chunk), n_classes, -1)
            for r, row in enumerate(assignments):
                similarity[r, start:start + len(chunk)] = cluster_similarity(embeddings, row, k)
            bar.update(len(chunk))
    return similarity


# ----------------------------------------------------------------------------------------------------------------------
# Shared input checks (also used by retrieve.py)

def encode_normalized(encode: Encoder, texts: list[str], name: str) -> np.ndarray:
    """``encode(texts)`` as float64 numpy [len(texts), D] with unit rows (renormalised in float64,
    so the similarities are those of unit vectors whatever the tower's precision)."""
    embeddings = to_numpy(encode(texts), name).astype(np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise ValueError(f"{name}: must return [{len(texts)}, D] for {len(texts)} texts, got shape "
                         f"{embeddings.shape}")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    if not np.isfinite(embeddings).all() or (norms == 0).any():
        raise ValueError(f"{name}: returned zero or non-finite embeddings; check the text tower")
    return embeddings / norms


def check_classnames(classnames: Any) -> tuple[str, ...]:
    """``classnames`` as a tuple of non-empty strings (TypeError / ValueError otherwise)."""
    if isinstance(classnames, str) or not isinstance(classnames, Sequence):
        raise TypeError(f"classnames: must be a sequence of strings, got {type(classnames).__name__}")
    if not classnames:
        raise ValueError("classnames: give at least one class name")
    if not all(isinstance(name, str) and name for name in classnames):
        raise TypeError("classnames: every class name must be a non-empty string")
    return tuple(classnames)


def _check_candidates(candidates: Any) -> list[str]:
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates: must be a sequence of clauses, got {type(candidates).__name__}")
    if not candidates:
        raise ValueError("candidates: give at least one clause (load_descriptors() gives the built-in pool)")
    for position, clause in enumerate(candidates):
        _check_descriptor_text(clause, f"candidate {position}")
    return list(candidates)


