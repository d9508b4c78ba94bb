"""Damaged MUDG files are refused with a message naming the file and the fix; an index knows
the content of the corpus it was built from."""
import json
import shutil

import numpy as np
import pytest

from clipadapt import IVFIndex
from clipadapt.mudg.corpus import CorpusWriter, SourceCorpus, shard_names, write_corpus
from clipadapt.mudg.index import MudgIndex, build_index

MODEL = {"architecture": "ViT-B-32", "weights": "test"}
DIM = 8


def corpus_of(path, seed, count=40, shard_rows=16):
    rng = np.random.default_rng(seed)
    return write_corpus(path, rng.normal(size=(count, DIM)), rng.normal(size=(count, DIM)),
                        [f"{i}.png" for i in range(count)], [f"caption {i}" for i in range(count)], model=MODEL,
                        image_root=".", shard_rows=shard_rows)


def truncate(file, keep):
    data = file.read_bytes()
    file.write_bytes(data[:keep(len(data))])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return corpus_of(tmp_path_factory.mktemp("corpus") / "corpus", 0)


def test_truncated_shard_names_the_file(corpus, tmp_path):
    damaged = shutil.copytree(corpus.path, tmp_path / "damaged")
    truncate(damaged / "images-00001.npy", lambda size: size - 100)
    with pytest.raises(ValueError, match=r"images-00001.npy: cannot be read as a .npy array .*damaged or truncated: "
                       r"restore it, or rebuild the corpus \(clipadapt mudg corpus --rebuild"):
        SourceCorpus(damaged)


@pytest.mark.parametrize("text,message", [
    ('{"format": ', r"corpus.json: is not valid JSON \(Expecting value"),
    ("[1, 2]", "corpus.json: not a clipadapt-mudg-corpus version 1 file"),
    ('{"format": "clipadapt-mudg-corpus", "version": 1, "dtype": "float16", "count": 40}',
     "corpus.json: lacks fields of the clipadapt-mudg-corpus format"),
])
def test_malformed_description_names_the_file(corpus, tmp_path, text, message):
    damaged = shutil.copytree(corpus.path, tmp_path / "damaged")
    (damaged / "corpus.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        SourceCorpus(damaged)


def test_a_damaged_shard_is_written_again_on_resume(corpus, tmp_path):
    damaged = shutil.copytree(corpus.path, tmp_path / "damaged")
    truncate(damaged / "captions-00002.npy", lambda size: size // 2)
    writer = CorpusWriter(damaged, count=40, dim=DIM, model=MODEL, image_root=".", shard_rows=16, resume=True)
    assert [writer.has_shard(index) for index in range(3)] == [True, True, False]


@pytest.mark.parametrize("keep", [lambda size: size // 2, lambda size: size - 10, lambda size: 0])
def test_truncated_ivf_file_names_the_file(corpus, tmp_path, keep):
    build_index(corpus, tmp_path / "index", n_clusters=3, progress=False)
    truncate(tmp_path / "index" / "ivf.npz", keep)
    with pytest.raises(ValueError, match=r"ivf.npz: cannot be read as a saved IVFIndex .*: write it again "
                       r"\(clipadapt mudg index --rebuild\)"):
        MudgIndex.load(tmp_path / "index")


def test_ivf_file_without_its_arrays_is_refused(tmp_path):
    np.savez(tmp_path / "ivf.npz", centroids=np.eye(2, dtype=np.float32), metric=np.array("ip"),
             vectors=np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match=r"lacks the arrays \['ids', 'lists'\] of a saved IVFIndex"):
        IVFIndex.load(tmp_path / "ivf.npz")


def test_malformed_index_record_names_the_file(corpus, tmp_path):
    build_index(corpus, tmp_path / "index", n_clusters=3, progress=False)
    (tmp_path / "index" / "index.json").write_text('{"format": "clipadapt-mudg-index", ')
    with pytest.raises(ValueError, match=r"index.json: is not valid JSON .*clipadapt mudg index --rebuild"):
        MudgIndex.load(tmp_path / "index")


def test_fingerprint_follows_the_content_not_the_place(corpus, tmp_path):
    moved = SourceCorpus(shutil.copytree(corpus.path, tmp_path / "moved"))
    assert moved.fingerprint() == corpus.fingerprint()
    other = corpus_of(tmp_path / "other", seed=1)  # same size, dimension, model and description
    assert (tmp_path / "other" / "corpus.json").read_text() == (corpus.path / "corpus.json").read_text()
    assert other.fingerprint() != corpus.fingerprint()
    # One caption text changed: the embeddings are the same, the metadata file is not.
    recaptioned = shutil.copytree(corpus.path, tmp_path / "recaptioned")
    metadata = recaptioned / shard_names(1)["metadata"]
    metadata.write_text(metadata.read_text().replace("caption 20", "caption 20, edited"))
    assert SourceCorpus(recaptioned).fingerprint() != corpus.fingerprint()


def test_index_records_the_fingerprint_of_its_corpus(corpus, tmp_path):
    index = build_index(corpus, tmp_path / "index", n_clusters=3, progress=False)
    assert json.loads((tmp_path / "index" / "index.json").read_text())["corpus"]["fingerprint"] == \
        corpus.fingerprint()
    assert index.matches_corpus(SourceCorpus(shutil.copytree(corpus.path, tmp_path / "moved")))
    assert not index.matches_corpus(corpus_of(tmp_path / "other", seed=1))
