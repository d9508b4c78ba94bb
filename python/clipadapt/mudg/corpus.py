"""The MUDG source corpus: image and caption embeddings of an image-text collection, on disk.

Format (a directory)::

    corpus.json
    images-00000.npy    captions-00000.npy    metadata-00000.csv
    images-00001.npy    captions-00001.npy    metadata-00001.csv
    ...

``corpus.json``::

    {"format": "clipadapt-mudg-corpus", "version": 1,
     "dim": D, "count": N, "dtype": "float16",
     "model": {"architecture": "ViT-L-14", "weights": "openai", "activation": "quickgelu"},
     "image_root": "/data/laion-subset",
     "shards": [{"images": "images-00000.npy", "captions": "captions-00000.npy",
                 "metadata": "metadata-00000.csv", "rows": r0}, ...]}

- ``images-XXXXX.npy`` / ``captions-XXXXX.npy``: float16 [r, D], L2-normalised image and caption
  embeddings of the same r items (row i of both describes one image-text pair), in the space of
  ``model``. Shard s holds the global rows ``sum(r_0..r_{s-1}) + [0, r_s)``; every shard but the
  last has the writer's ``shard_rows`` rows.
- ``metadata-XXXXX.csv``: a header ``id,image,caption`` and one line per row (standard CSV quoting):
  ``id`` the global row number, ``image`` the image file relative to ``image_root`` (an absolute
  path or a URL is kept as is), ``caption`` the text that was embedded.
- ``image_root``: an absolute directory, or one relative to the corpus directory.

Shards are read memory-mapped (``np.load(mmap_mode="r")``), so a corpus may exceed RAM; a
gather by ids reads only the shards that hold them. Every file is written under a ``.partial``
name and renamed when complete, and ``corpus.json`` last: a directory without it is an
unfinished build, which :func:`build_corpus` resumes at the first missing shard.

Corpora come from precomputed embeddings (:func:`write_corpus`, e.g. LAION's released
``img_emb`` / ``text_emb`` files and their metadata) or from a folder of captioned images
(:func:`build_corpus`, encoded with a CLIP model).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from clipadapt import _validate
from clipadapt._files import PARTIAL_SUFFIX, atomic_open, read_json, write_text_atomically

log = logging.getLogger(__name__)

FORMAT, VERSION = "clipadapt-mudg-corpus", 1
CORPUS_FILE = "corpus.json"
# Written when a build starts and kept: what the shards are made from, so a resumed build can
# tell whether the shards on disk belong to it.
BUILD_FILE = "corpus-build.json"
DTYPE = "float16"
METADATA_COLUMNS = ("id", "image", "caption")
# LAION's released embedding files hold about 1M rows each.
DEFAULT_SHARD_ROWS = 1_000_000
# Encoding images is slow on a CPU: small shards make an interrupted build lose little.
DEFAULT_BUILD_SHARD_ROWS = 10_000
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
CAPTIONS_CSV = "captions.csv"
# What to do about a damaged corpus file.
DAMAGED_FIX = "restore it, or rebuild the corpus (clipadapt mudg corpus --rebuild, or write_corpus)"
# Rows of each shard's embeddings that a fingerprint reads (evenly spaced, first and last included).
FINGERPRINT_ROWS = 64
# The towers' activations a model identity may name (clipadapt.clip.models.ClipModel.activation).
ACTIVATIONS = ("gelu", "quickgelu")


def shard_names(index: int) -> dict[str, str]:
    """The three file names of shard ``index``: ``{"images", "captions", "metadata"}``."""
    return {"images": f"images-{index:05d}.npy", "captions": f"captions-{index:05d}.npy",
            "metadata": f"metadata-{index:05d}.csv"}


class SourceCorpus:
    """A corpus directory opened for reading (see the module docstring for the format).

    Attributes:
        path: the corpus directory.
        count: number of image-text pairs N.
        dim: embedding dimension D.
        model: ``{"architecture", "weights", "activation"}`` of the CLIP model that embedded it
            (``"activation"`` is absent where the writer did not give it).
        image_root: absolute directory the metadata's image paths are relative to.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        description = _read_description(self.path)
        self.count: int = description["count"]
        self.dim: int = description["dim"]
        self.model: dict[str, str] = dict(description["model"])
        self.image_root = (self.path / description["image_root"]).resolve()
        self._shards = description["shards"]
        self._starts = np.cumsum([0] + [shard["rows"] for shard in self._shards], dtype=np.int64)
        if self._starts[-1] != self.count:
            raise ValueError(f"{self.path / CORPUS_FILE}: shards hold {self._starts[-1]} rows but count is "
                             f"{self.count}; the file is inconsistent, rebuild the corpus")
        self._images = [self._open_embeddings(shard, "images") for shard in self._shards]
        self._captions = [self._open_embeddings(shard, "captions") for shard in self._shards]
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (f"SourceCorpus({os.fspath(self.path)!r}, count={self.count}, dim={self.dim}, "
                f"shards={len(self._shards)}, model={self.model})")

    @property
    def shard_starts(self) -> np.ndarray:
        """int64 [shards + 1]: shard s holds the global rows ``[starts[s], starts[s + 1])``."""
        return self._starts.copy()

    def shards(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(start_id, images, captions)`` per shard in order: the first global id of the
        shard and its float16 [r, D] embeddings, memory-mapped (read-only, read on access)."""
        for start, images, captions in zip(self._starts, self._images, self._captions):
            yield int(start), images, captions

    def image_embeddings(self, ids: Any = None) -> np.ndarray:
        """float16 [m, D] image embeddings of the global row ids [m] (any order, repeats
        allowed), reading only the shards that hold them; ``None``: all N rows in order."""
        return self._gather(self._images, ids)

    def caption_embeddings(self, ids: Any = None) -> np.ndarray:
        """float16 [m, D] caption embeddings of the global row ids [m]; ``None``: all rows."""
        return self._gather(self._captions, ids)

    def fingerprint(self) -> str:
        """A hash of the corpus's content, cheap for any size: ``corpus.json``, the size of every
        shard file, and :data:`FINGERPRINT_ROWS` evenly spaced rows of every shard's image and
        caption embeddings. A moved or copied corpus keeps it; a corpus of other embeddings or
        captions gets another one (whatever its size, dimension and model)."""
        if self._fingerprint is None:
            digest = hashlib.sha256((self.path / CORPUS_FILE).read_bytes())
            for shard, images, captions in zip(self._shards, self._images, self._captions):
                sizes = [(self.path / shard[kind]).stat().st_size for kind in ("images", "captions", "metadata")]
                digest.update(json.dumps(sizes).encode())
                rows = np.unique(np.linspace(0, len(images) - 1, FINGERPRINT_ROWS).round().astype(np.int64))
                for embeddings in (images, captions):
                    digest.update(np.ascontiguousarray(embeddings[rows]).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def records(self, ids: Any) -> list[dict[str, Any]]:
        """Metadata of the global row ids [m], in their order: ``{"id": int, "image": absolute
        path (or URL) string, "caption": str}``, reading only the CSVs of the shards that hold them."""
        wanted = self._check_ids(ids)
        shard_of = self._shard_of(wanted)
        found: dict[int, dict[str, Any]] = {}
        for shard in np.unique(shard_of):
            found.update(self._read_metadata(int(shard), set(wanted[shard_of == shard].tolist())))
        return [dict(found[int(i)]) for i in wanted]

    def _open_embeddings(self, shard: Mapping[str, Any], kind: str) -> np.ndarray:
        file = self.path / shard[kind]
        if not file.is_file():
            raise FileNotFoundError(f"{file}: missing; the corpus is incomplete, rebuild it (build_corpus "
                                    "resumes) or restore the file")
        array = _load_embeddings(file)
        if array.dtype != np.float16 or array.shape != (shard["rows"], self.dim):
            raise ValueError(f"{file}: expected float16 [{shard['rows']}, {self.dim}], got {array.dtype} "
                             f"{list(array.shape)}; the file does not belong to this corpus, rebuild it")
        return array

    def _check_ids(self, ids: Any) -> np.ndarray:
        wanted = np.asarray(ids)
        if wanted.ndim != 1 or not (np.issubdtype(wanted.dtype, np.integer) or wanted.size == 0):
            raise ValueError(f"ids: expected a 1-D array of integer row ids, got {wanted.dtype} {list(wanted.shape)}")
        wanted = wanted.astype(np.int64, copy=False)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.count):
            bad = wanted[(wanted < 0) | (wanted >= self.count)][0]
            raise ValueError(f"ids: {bad} is out of range; the corpus has rows 0..{self.count - 1}")
        return wanted

    def _shard_of(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._starts, ids, side="right") - 1

    def _gather(self, arrays: list[np.ndarray], ids: Any) -> np.ndarray:
        if ids is None:
            return np.concatenate(arrays) if arrays else np.empty((0, self.dim), dtype=np.float16)
        wanted = self._check_ids(ids)
        out = np.empty((wanted.size, self.dim), dtype=np.float16)
        shard_of = self._shard_of(wanted)
        by_shard = np.argsort(shard_of, kind="stable")
        bounds = np.searchsorted(shard_of[by_shard], np.arange(len(arrays) + 1))
        for shard in range(len(arrays)):
            positions = by_shard[bounds[shard]:bounds[shard + 1]]
            if positions.size:
                rows = wanted[positions] - self._starts[shard]
                order = np.argsort(rows, kind="stable")  # ascending offsets: sequential reads
                out[positions[order]] = arrays[shard][rows[order]]
        return out

    def _read_metadata(self, shard: int, needed: set[int]) -> dict[int, dict[str, Any]]:
        file = self.path / self._shards[shard]["metadata"]
        if not file.is_file():
            raise FileNotFoundError(f"{file}: missing; the corpus is incomplete, rebuild it or restore the file")
        found = {}
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != METADATA_COLUMNS:
                raise ValueError(f"{file}: expected the columns {','.join(METADATA_COLUMNS)}, got {reader.fieldnames}")
            for line in reader:
                row = int(line["id"])
                if row in needed:
                    found[row] = {"id": row, "image": self._image_location(line["image"]), "caption": line["caption"]}
        missing = needed - found.keys()
        if missing:
            raise ValueError(f"{file}: has no line for id {min(missing)}; the metadata is inconsistent, rebuild "
                             "the corpus")
        return found

    def _image_location(self, image: str) -> str:
        if "://" in image or os.path.isabs(image):
            return image
        return os.fspath(self.image_root / image)


def _read_description(path: Path) -> dict[str, Any]:
    file = path / CORPUS_FILE
    if not file.is_file():
        unfinished = (path / BUILD_FILE).is_file()
        raise FileNotFoundError(f"{file}: not found; " + ("the build of this corpus did not finish: run it again "
                                                          "to resume" if unfinished else
                                                          "point to a directory written by write_corpus or "
                                                          "build_corpus"))
    description = read_json(file, f"the corpus description is damaged: {DAMAGED_FIX}")
    found = description if isinstance(description, dict) else {}
    if found.get("format") != FORMAT or found.get("version") != VERSION:
        raise ValueError(f"{file}: not a {FORMAT} version {VERSION} file (format {found.get('format')!r}, "
                         f"version {found.get('version')!r})")
    if description.get("dtype") != DTYPE:
        raise ValueError(f"{file}: dtype {description.get('dtype')!r} is not supported; corpora store {DTYPE}")
    if not _has_description_fields(description):
        raise ValueError(f"{file}: lacks fields of the {FORMAT} format (count, dim, model, image_root, shards with "
                         f"images, captions, metadata and rows) or holds them with the wrong types; {DAMAGED_FIX}")
    return description


def _has_description_fields(description: dict[str, Any]) -> bool:
    try:
        shards = description["shards"]
        return (isinstance(description["count"], int) and isinstance(description["dim"], int)
                and isinstance(description["image_root"], str) and isinstance(description["model"], dict)
                and isinstance(shards, list)
                and all(isinstance(shard["rows"], int) and isinstance(shard["images"], str)
                        and isinstance(shard["captions"], str) and isinstance(shard["metadata"], str)
                        for shard in shards))
    except (KeyError, TypeError):
        return False


def _load_embeddings(file: Path) -> np.ndarray:
    """A shard's ``.npy`` file memory-mapped; a ValueError naming the file when it cannot be
    (truncated, or not a ``.npy`` file)."""
    try:
        return np.load(file, mmap_mode="r")
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{file}: cannot be read as a .npy array ({error}); the file is damaged or truncated: "
                         f"{DAMAGED_FIX}") from error


class CorpusWriter:
    """Writes a corpus of ``count`` rows shard by shard (shard i holds the global rows
    ``[i * shard_rows, (i + 1) * shard_rows)``), each file atomically, ``corpus.json`` last.

    With ``resume=True`` shards already on disk from an earlier run with the same arguments
    (``count``, ``dim``, ``model``, ``image_root``, ``shard_rows`` and ``inputs``, a fingerprint
    of the source data; kept in ``corpus-build.json``) are kept and :meth:`has_shard` reports
    them; otherwise the directory's corpus files are removed first. Under ``resume=True`` a
    directory holding a build of other arguments is refused rather than overwritten.
    """

    def __init__(self, path: str | os.PathLike, *, count: int, dim: int, model: Mapping[str, str],
                 image_root: str | os.PathLike, shard_rows: int = DEFAULT_SHARD_ROWS, inputs: str | None = None,
                 resume: bool = False):
        _check_positive(count=count, dim=dim, shard_rows=shard_rows)
        self.path = Path(path)
        self.count, self.dim, self.shard_rows = int(count), int(dim), int(shard_rows)
        self._build = {"count": self.count, "dim": self.dim, "model": _model_info(model),
                       "image_root": os.fspath(image_root), "shard_rows": self.shard_rows, "inputs": inputs}
        self.path.mkdir(parents=True, exist_ok=True)
        if not (resume and self._resumable()):
            self._clear()
            write_text_atomically(self.path / BUILD_FILE, json.dumps(self._build, indent=2) + "\n")

    @property
    def n_shards(self) -> int:
        return -(-self.count // self.shard_rows)

    def shard_rows_of(self, index: int) -> int:
        """Rows of shard ``index``: ``shard_rows``, fewer in the last shard."""
        if not 0 <= index < self.n_shards:
            raise ValueError(f"index: shard {index} is outside [0, {self.n_shards})")
        return min(self.shard_rows, self.count - index * self.shard_rows)

    def has_shard(self, index: int) -> bool:
        """Whether shard ``index`` is complete on disk (all three files, with its row count)."""
        names = shard_names(index)
        if not all((self.path / name).is_file() for name in names.values()):
            return False
        rows = self.shard_rows_of(index)
        try:
            return all(_load_embeddings(self.path / names[kind]).shape == (rows, self.dim)
                       for kind in ("images", "captions"))
        except ValueError:  # a damaged shard is written again
            return False

    def write_shard(self, index: int, images: Any, captions: Any, image_paths: Sequence[str],
                    caption_texts: Sequence[str]) -> None:
        """Write shard ``index``: image and caption embeddings [r, D] (any float dtype; rows are
        normalised to unit norm, then stored as float16), and the r image paths and captions."""
        rows = self.shard_rows_of(index)
        start = index * self.shard_rows
        names = shard_names(index)
        embeddings = {"images": _unit_float16(images, "images", rows, self.dim),
                      "captions": _unit_float16(captions, "captions", rows, self.dim)}
        for name, values in (("image_paths", image_paths), ("caption_texts", caption_texts)):
            if len(values) != rows:
                raise ValueError(f"{name}: has {len(values)} entries for the {rows} rows of shard {index}")
        for kind, array in embeddings.items():
            with atomic_open(self.path / names[kind], "wb") as handle:
                np.save(handle, array)
        with atomic_open(self.path / names["metadata"], "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(METADATA_COLUMNS)
            writer.writerows(zip(range(start, start + rows), map(str, image_paths), map(str, caption_texts)))

    def finish(self) -> SourceCorpus:
        """Write ``corpus.json`` once every shard is on disk and return the corpus opened."""
        missing = [index for index in range(self.n_shards) if not self.has_shard(index)]
        if missing:
            raise RuntimeError(f"corpus: shards {missing[:5]} are not written yet; write them before finish()")
        shards = [{**shard_names(index), "rows": self.shard_rows_of(index)} for index in range(self.n_shards)]
        description = {"format": FORMAT, "version": VERSION, "dim": self.dim, "count": self.count, "dtype": DTYPE,
                       "model": self._build["model"], "image_root": self._build["image_root"], "shards": shards}
        write_text_atomically(self.path / CORPUS_FILE, json.dumps(description, indent=2) + "\n")
        log.info("corpus: wrote %s (%d rows, %d shards)", self.path, self.count, self.n_shards)
        return SourceCorpus(self.path)

    def _resumable(self) -> bool:
        """Whether the directory holds shards of a build with the same arguments."""
        file = self.path / BUILD_FILE
        if not file.is_file():
            return False
        if read_json(file, "pass resume=False (clipadapt mudg corpus --rebuild) to build again") != self._build:
            raise ValueError(f"out: {self.path} holds a corpus built from other inputs or settings ({file}); "
                             "pass resume=False (clipadapt mudg corpus --rebuild) to overwrite it, or use another "
                             "directory")
        return True

    def _clear(self) -> None:
        for file in self.path.iterdir():
            if file.name in (CORPUS_FILE, BUILD_FILE) or _is_shard_file(file.name):
                file.unlink()


def _is_shard_file(name: str) -> bool:
    stem = name.removesuffix(PARTIAL_SUFFIX)
    return any(stem.startswith(prefix) and stem.endswith(suffix)
               for prefix, suffix in (("images-", ".npy"), ("captions-", ".npy"), ("metadata-", ".csv")))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        _validate.integer(value, name, minimum=1)


def _model_info(model: Mapping[str, str]) -> dict[str, str]:
    """The identity of the model that embedded a corpus: architecture, weights and, where known,
    activation (the towers' GELU or QuickGELU; other embeddings under the other one)."""
    try:
        info = {"architecture": str(model["architecture"]), "weights": str(model["weights"])}
    except (KeyError, TypeError) as error:
        raise ValueError(f"model: expected a mapping with 'architecture' and 'weights', got {model!r}") from error
    if "activation" in model:
        if model["activation"] not in ACTIVATIONS:
            raise ValueError(f"model: activation {model['activation']!r} is not one of {', '.join(ACTIVATIONS)}")
        info["activation"] = str(model["activation"])
    return info


def _unit_float16(array: Any, name: str, rows: int, dim: int) -> np.ndarray:
    """``array`` [rows, dim] with unit rows, normalised in float32, stored as float16."""
    if type(array).__module__.startswith("torch"):
        array = array.detach().cpu().numpy()
    values = np.asarray(array)
    if values.shape != (rows, dim) or not np.issubdtype(values.dtype, np.floating):
        raise ValueError(f"{name}: expected a float array [{rows}, {dim}], got {values.dtype} {list(values.shape)}")
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: contains NaN or Inf; drop or re-encode those rows")
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name}: row {int(np.flatnonzero(norms == 0)[0])} is zero and cannot be normalised")
    return (values / norms).astype(np.float16)


def write_corpus(path: str | os.PathLike, images: Any, captions: Any, image_paths: Sequence[str],
                 caption_texts: Sequence[str], *, model: Mapping[str, str], image_root: str | os.PathLike,
                 shard_rows: int = DEFAULT_SHARD_ROWS, progress: bool = False) -> SourceCorpus:
    """Write a corpus from precomputed embeddings and return it opened.

    Args:
        path: the corpus directory (created; corpus files already there are replaced).
        images, captions: [N, D] paired image and caption embeddings, any float dtype, numpy
            (memory-mapped ``.npy`` files work: they are read a shard at a time) or torch;
            rows are normalised to unit norm and stored as float16.
        image_paths: N image paths relative to ``image_root`` (or absolute paths, or URLs).
        caption_texts: the N captions.
        model: ``{"architecture", "weights", "activation"}`` of the CLIP model that made the
            embeddings (``ClipModel.identity()``); ``"activation"`` ("gelu" or "quickgelu": OpenAI's
            CLIP, e.g. LAION's ViT-L/14 embeddings) may be left out, but then retrieval cannot
            check that its queries are encoded with the same one.
        image_root: the directory ``image_paths`` are relative to (absolute, or relative to ``path``).
        shard_rows: rows per shard file.
    """
    if len(images) != len(captions) or len(image_paths) != len(images) or len(caption_texts) != len(images):
        raise ValueError(f"images, captions, image_paths and caption_texts: must have one entry per pair, got "
                         f"{len(images)}, {len(captions)}, {len(image_paths)} and {len(caption_texts)}")
    if len(images) == 0 or np.ndim(images) != 2:
        raise ValueError(f"images: expected a non-empty [N, D] array, got shape {list(np.shape(images))}")
    writer = CorpusWriter(path, count=len(images), dim=int(np.shape(images)[1]), model=model, image_root=image_root,
                          shard_rows=shard_rows)
    for index in tqdm(range(writer.n_shards), desc="write corpus", disable=not progress):
        rows = slice(index * writer.shard_rows, index * writer.shard_rows + writer.shard_rows_of(index))
        writer.write_shard(index, images[rows], captions[rows], image_paths[rows], caption_texts[rows])
    return writer.finish()


def folder_pairs(folder: str | os.PathLike) -> list[tuple[str, str]]:
    """The (image path relative to ``folder``, caption) pairs of a folder, sorted by path.

    Captions come from ``folder/captions.csv`` (columns ``image,caption``, image relative to
    the folder) when it exists, else from a ``.txt`` file beside each image with the same stem
    (img2dataset's layout: ``00000/000001.jpg`` + ``00000/000001.txt``); images are found
    recursively by suffix (:data:`IMAGE_SUFFIXES`, any case).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder: {root} is not a directory")
    table = root / CAPTIONS_CSV
    pairs = _pairs_from_csv(root, table) if table.is_file() else _pairs_from_sidecars(root)
    if not pairs:
        raise ValueError(f"folder: {root} holds no captioned images (add {CAPTIONS_CSV} or .txt captions beside "
                         f"images with suffixes {', '.join(IMAGE_SUFFIXES)})")
    return sorted(pairs, key=lambda pair: pair[0])


def _pairs_from_csv(root: Path, table: Path) -> list[tuple[str, str]]:
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"image", "caption"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{table}: needs the columns image,caption, got {reader.fieldnames}")
        pairs = [(line["image"], line["caption"]) for line in reader]
    absent = [image for image, _ in pairs if not (root / image).is_file()]
    if absent:
        raise FileNotFoundError(f"{table}: {len(absent)} listed images do not exist under {root}, e.g. {absent[:3]}")
    return pairs


def _pairs_from_sidecars(root: Path) -> list[tuple[str, str]]:
    images = sorted(file for file in root.rglob("*") if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file())
    uncaptioned = [file for file in images if not file.with_suffix(".txt").is_file()]
    if uncaptioned:
        raise FileNotFoundError(f"folder: {len(uncaptioned)} images have no caption file beside them (e.g. "
                                f"{uncaptioned[0].with_suffix('.txt')}); add them or write {root / CAPTIONS_CSV}")
    return [(file.relative_to(root).as_posix(), file.with_suffix(".txt").read_text(encoding="utf-8").strip())
            for file in images]


def _fingerprint(pairs: Sequence[tuple[str, str]], clip: Any) -> str:
    """Identifies a build's inputs: the pairs and the model's preprocessing."""
    digest = hashlib.sha256(repr(clip.preprocess).encode())
    for image, caption in pairs:
        digest.update(f"{image}\0{caption}\0".encode())
    return digest.hexdigest()


class _ImageFiles:
    """Map-style dataset: the preprocessed RGB image [3, H, W] of each path."""

    def __init__(self, root: Path, paths: Sequence[str], preprocess: Any):
        self.root, self.paths, self.preprocess = root, list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        from PIL import Image

        file = self.root / self.paths[index]
        try:
            with Image.open(file) as image:
                return self.preprocess(image.convert("RGB"))
        except OSError as error:
            raise ValueError(f"image: cannot read {file} ({error}); remove it from the folder") from error


def build_corpus(folder: str | os.PathLike, clip: Any, out: str | os.PathLike, *, batch_size: int = 64,
                 shard_rows: int = DEFAULT_BUILD_SHARD_ROWS, device: str = "cpu", num_workers: int = 0,
                 resume: bool = True, progress: bool = True) -> SourceCorpus:
    """Embed a folder of captioned images with ``clip`` into a corpus at ``out``.

    Pairs come from :func:`folder_pairs` (sorted by image path). Images are ``clip.preprocess``'d
    (PIL, RGB) and encoded with ``clip.model.encode_image``, captions with
    :func:`clipadapt.clip.encode.encode_texts`, ``batch_size`` at a time on ``device`` (where
    ``clip.model`` must already be). Each shard is written as soon as it is encoded; with
    ``resume=True`` a rerun of the same build skips the shards already on disk.

    Args:
        folder: the image folder.
        clip: a :class:`clipadapt.clip.ClipModel`.
        out: the corpus directory.
        batch_size: images (and captions) per forward pass.
        shard_rows: rows per shard, the unit of resumption.
        num_workers: image-loading processes of the ``torch.utils.data.DataLoader``.
    """
    import torch
    from clipadapt.clip.encode import encode_texts

    _check_positive(batch_size=batch_size, shard_rows=shard_rows)
    root = Path(folder).resolve()
    pairs = folder_pairs(root)
    paths, texts = [image for image, _ in pairs], [caption for _, caption in pairs]
    dim = encode_texts(clip, texts[:1], device=device).shape[1]
    writer = CorpusWriter(out, count=len(pairs), dim=dim, model=_clip_info(clip), image_root=root,
                          shard_rows=shard_rows, inputs=_fingerprint(pairs, clip), resume=resume)
    bar = tqdm(total=len(pairs), desc="build corpus", unit="pair", disable=not progress)
    for index in range(writer.n_shards):
        rows = slice(index * shard_rows, index * shard_rows + writer.shard_rows_of(index))
        if writer.has_shard(index):
            log.info("corpus: shard %d already written, skipped", index)
        else:
            loader = torch.utils.data.DataLoader(_ImageFiles(root, paths[rows], clip.preprocess),
                                                 batch_size=batch_size, shuffle=False, num_workers=num_workers)
            images = _encode_images(clip, loader, device)
            captions = encode_texts(clip, texts[rows], device=device, batch_size=batch_size)
            writer.write_shard(index, images, captions, paths[rows], texts[rows])
        bar.update(rows.stop - rows.start)
    bar.close()
    return writer.finish()


def _encode_images(clip: Any, loader: Any, device: str) -> np.ndarray:
    import torch

    with torch.no_grad():
        batches = [clip.model.encode_image(images.to(device)).float().cpu() for images in loader]
    return torch.cat(batches).numpy()


def _clip_info(clip: Any) -> dict[str, str]:
    return clip.identity()
