"""The MUDG source corpus: on-disk round trip (shards, memory maps, gathers, metadata), building
from a folder of captioned images with a tiny CLIP, resumption, and bad inputs."""
import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipadapt.clip import load_clip, register_model_config
from clipadapt.clip.encode import encode_texts
from clipadapt.mudg.corpus import SourceCorpus, build_corpus, folder_pairs, write_corpus

MODEL = {"architecture": "ViT-L-14", "weights": "openai"}
TINY = {"embed_dim": 32, "vision_cfg": {"image_size": 16, "layers": 1, "width": 64, "patch_size": 4},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
# Captions that need CSV quoting, and non-ASCII text.
CAPTIONS = ['a dog, running', 'the "best" cat', 'two\nlines', 'café ☕', 'plain']


def _normalised_float16(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)).astype(np.float16)


@pytest.fixture
def written(tmp_path):
    """A 23-row, 8-d corpus in shards of 5 (the last holds 3), from unnormalised float32 rows."""
    rng = np.random.default_rng(0)
    images, captions = (rng.standard_normal((23, 8)).astype(np.float32) * 3 for _ in range(2))
    paths = [f"sub/{i:03d}.jpg" for i in range(23)]
    texts = [CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(23)]
    corpus = write_corpus(tmp_path / "corpus", images, captions, paths, texts, model=MODEL,
                          image_root=tmp_path / "images", shard_rows=5)
    return corpus, images, captions, paths, texts


def test_round_trip_reopens_normalised_float16_shards(written, tmp_path):
    _, images, captions, _, _ = written
    corpus = SourceCorpus(tmp_path / "corpus")
    assert (len(corpus), corpus.count, corpus.dim, corpus.model) == (23, 23, 8, MODEL)
    assert corpus.image_root == (tmp_path / "images").resolve()
    assert corpus.shard_starts.tolist() == [0, 5, 10, 15, 20, 23]
    description = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert description["format"] == "clipadapt-mudg-corpus" and description["version"] == 1
    assert [shard["rows"] for shard in description["shards"]] == [5, 5, 5, 5, 3]
    stored = corpus.image_embeddings()
    assert stored.dtype == np.float16 and stored.shape == (23, 8)
    np.testing.assert_allclose(stored.astype(np.float32), _normalised_float16(images).astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(corpus.caption_embeddings().astype(np.float64), axis=1), 1, atol=2e-3)
    np.testing.assert_allclose(corpus.caption_embeddings().astype(np.float32),
                               _normalised_float16(captions).astype(np.float32), atol=1e-3)


def test_shards_are_read_only_memory_maps_in_order(written):
    corpus = written[0]
    all_images, all_captions = corpus.image_embeddings(), corpus.caption_embeddings()
    starts = []
    for start, images, captions in corpus.shards():
        starts.append(start)
        assert isinstance(images, np.memmap) and isinstance(captions, np.memmap)
        assert not images.flags.writeable
        np.testing.assert_array_equal(images, all_images[start:start + len(images)])
        np.testing.assert_array_equal(captions, all_captions[start:start + len(captions)])
    assert starts == [0, 5, 10, 15, 20]


def test_gather_in_any_order_across_shards(written):
    corpus = written[0]
    ids = np.random.default_rng(1).integers(0, 23, size=40)  # every shard, repeats, any order
    np.testing.assert_array_equal(corpus.image_embeddings(ids), corpus.image_embeddings()[ids])
    np.testing.assert_array_equal(corpus.caption_embeddings(ids.tolist()), corpus.caption_embeddings()[ids])
    assert corpus.image_embeddings(np.array([], dtype=np.int64)).shape == (0, 8)


def test_records_follow_the_ids_with_absolute_paths(written, tmp_path):
    corpus, _, _, paths, texts = written
    ids = [22, 0, 7, 7, 13]
    records = corpus.records(np.array(ids))
    assert [record["id"] for record in records] == ids
    assert [record["caption"] for record in records] == [texts[i] for i in ids]
    assert [record["image"] for record in records] == [str((tmp_path / "images").resolve() / paths[i]) for i in ids]
    assert all(isinstance(record["id"], int) for record in records)


def test_relative_image_root_absolute_paths_and_urls(tmp_path):
    x = np.eye(3, dtype=np.float32)
    paths = ["a.jpg", "/data/b.jpg", "https://example.com/c.jpg"]
    corpus = write_corpus(tmp_path / "c", x, x, paths, ["a", "b", "c"], model=MODEL, image_root="../pictures")
    assert [record["image"] for record in corpus.records([0, 1, 2])] == [
        str((tmp_path / "pictures").resolve() / "a.jpg"), "/data/b.jpg", "https://example.com/c.jpg"]


@pytest.mark.parametrize("ids", [[23], [-1], [0.5], [[1, 2]]])
def test_ids_out_of_range_or_malformed_are_refused(written, ids):
    corpus = written[0]
    for read in (corpus.image_embeddings, corpus.caption_embeddings, corpus.records):
        with pytest.raises(ValueError, match="ids"):
            read(ids)


def test_missing_or_foreign_files_are_reported(written, tmp_path):
    path = tmp_path / "corpus"
    np.save(path / "captions-00001.npy", np.zeros((5, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="captions-00001.npy: expected float16 \\[5, 8\\]"):
        SourceCorpus(path)
    np.save(path / "captions-00001.npy", np.zeros((4, 8), dtype=np.float16))
    with pytest.raises(ValueError, match="expected float16"):
        SourceCorpus(path)
    (path / "captions-00001.npy").unlink()
    with pytest.raises(FileNotFoundError, match="captions-00001.npy: missing"):
        SourceCorpus(path)
    with pytest.raises(FileNotFoundError, match="corpus.json: not found"):
        SourceCorpus(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "corpus.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(ValueError, match="not a clipadapt-mudg-corpus"):
        SourceCorpus(tmp_path / "other")


def test_missing_metadata_is_reported_when_records_are_read(written, tmp_path):
    corpus = written[0]
    (tmp_path / "corpus" / "metadata-00004.csv").unlink()
    assert len(corpus.records([0, 4])) == 2  # shard 0 only
    with pytest.raises(FileNotFoundError, match="metadata-00004.csv"):
        corpus.records([21])


def test_write_corpus_refuses_bad_embeddings(tmp_path):
    x = np.ones((3, 4), dtype=np.float32)
    args = (["a", "b", "c"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="one entry per pair"):
        write_corpus(tmp_path / "c", x, x[:2], *args, model=MODEL, image_root=".")
    with pytest.raises(ValueError, match="row 1 is zero"):
        write_corpus(tmp_path / "c", np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]], np.float32), x, *args,
                     model=MODEL, image_root=".")
    with pytest.raises(ValueError, match="NaN"):
        write_corpus(tmp_path / "c", x, np.full((3, 4), np.nan, np.float32), *args, model=MODEL, image_root=".")
    with pytest.raises(ValueError, match="model"):
        write_corpus(tmp_path / "c", x, x, *args, model={"architecture": "x"}, image_root=".")
    with pytest.raises(ValueError, match="shard_rows"):
        write_corpus(tmp_path / "c", x, x, *args, model=MODEL, image_root=".", shard_rows=0)


# ---- build_corpus with a tiny randomly initialised CLIP ----

@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    register_model_config("clipadapt-mudg-corpus-tiny", TINY)
    return load_clip("clipadapt-mudg-corpus-tiny")


def _image_folder(root, captions_csv: bool):
    """7 small PNGs of different sizes and modes, in two folders, captioned by captions.csv or
    by sidecar .txt files; returns the (relative path, caption) pairs in sorted order."""
    rng = np.random.default_rng(2)
    pairs = []
    for i in range(7):
        relative = f"{'b' if i % 2 else 'a'}/{i:06d}.png"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(10 + i, 14, 3), dtype=np.uint8)
        Image.fromarray(pixels if i != 3 else pixels[..., 0]).save(root / relative)  # one grayscale image
        caption = CAPTIONS[i % len(CAPTIONS)] + f" number {i}"
        pairs.append((relative, caption))
        if not captions_csv:
            (root / relative).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    if captions_csv:
        with open(root / "captions.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "caption"])
            writer.writerows(reversed(pairs))  # the build sorts by path
    return sorted(pairs)


def _reference_embeddings(clip, root, pairs):
    with torch.no_grad():
        pixels = torch.stack([clip.preprocess(Image.open(root / path).convert("RGB")) for path, _ in pairs])
        images = F.normalize(clip.model.encode_image(pixels), dim=1).numpy()
    captions = encode_texts(clip, [caption for _, caption in pairs]).numpy()
    return images, captions


@pytest.mark.parametrize("captions_csv", [True, False], ids=["captions.csv", "sidecar-txt"])
def test_build_corpus_from_a_folder(tiny_clip, tmp_path, captions_csv):
    root = tmp_path / "images"
    pairs = _image_folder(root, captions_csv)
    assert folder_pairs(root) == pairs
    corpus = build_corpus(root, tiny_clip, tmp_path / "corpus", batch_size=2, shard_rows=3, progress=False)
    assert (corpus.count, corpus.dim) == (7, 32)
    assert corpus.model == {"architecture": "clipadapt-mudg-corpus-tiny", "weights": "random", "activation": "gelu"}
    assert corpus.shard_starts.tolist() == [0, 3, 6, 7]
    images, captions = _reference_embeddings(tiny_clip, root, pairs)
    np.testing.assert_allclose(corpus.image_embeddings().astype(np.float32), images, atol=1e-3)
    np.testing.assert_allclose(corpus.caption_embeddings().astype(np.float32), captions, atol=1e-3)
    records = corpus.records(range(7))
    assert [(record["image"], record["caption"]) for record in records] == [
        (str(root.resolve() / path), caption) for path, caption in pairs]


def test_build_corpus_resumes_at_the_first_missing_shard(tiny_clip, tmp_path):
    root = tmp_path / "images"
    _image_folder(root, captions_csv=True)
    out = tmp_path / "corpus"
    first = build_corpus(root, tiny_clip, out, batch_size=4, shard_rows=3, progress=False)
    images, captions = first.image_embeddings(), first.caption_embeddings()
    kept = (out / "images-00000.npy").stat().st_mtime_ns
    for name in ("images-00002.npy", "corpus.json"):  # as if killed while writing the last shard
        (out / name).unlink()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        SourceCorpus(out)
    resumed = build_corpus(root, tiny_clip, out, batch_size=4, shard_rows=3, progress=False)
    assert (out / "images-00000.npy").stat().st_mtime_ns == kept
    np.testing.assert_array_equal(resumed.image_embeddings(), images)
    np.testing.assert_array_equal(resumed.caption_embeddings(), captions)
    assert not list(out.glob("*.partial"))


def test_build_corpus_refuses_to_resume_other_inputs(tiny_clip, tmp_path):
    root = tmp_path / "images"
    _image_folder(root, captions_csv=True)
    out = tmp_path / "corpus"
    build_corpus(root, tiny_clip, out, shard_rows=3, progress=False)
    with pytest.raises(ValueError, match="other inputs or settings"):
        build_corpus(root, tiny_clip, out, shard_rows=4, progress=False)
    assert build_corpus(root, tiny_clip, out, shard_rows=4, resume=False, progress=False).shard_starts.tolist() == [
        0, 4, 7]


def test_folder_errors_name_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no captioned images"):
        folder_pairs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        folder_pairs(tmp_path / "absent")
    root = tmp_path / "uncaptioned"
    root.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "x.png")
    with pytest.raises(FileNotFoundError, match="no caption file"):
        folder_pairs(root)
    (root / "captions.csv").write_text("image,caption\nx.png,fine\ny.png,missing\n")
    with pytest.raises(FileNotFoundError, match="y.png"):
        folder_pairs(root)
    (root / "captions.csv").write_text("file,text\nx.png,fine\n")
    with pytest.raises(ValueError, match="image,caption"):
        folder_pairs(root)
