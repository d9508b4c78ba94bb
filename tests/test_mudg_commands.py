"""``clipadapt mudg`` commands: inputs that belong together but do not match are refused with a
message naming the option, instead of giving wrong images or wrong accuracies silently."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from clipadapt.cli import main
from cli_support import refused
from clipadapt.clip import load_clip, register_model_config
from clipadapt.mudg.augment import save_ranking
from clipadapt.mudg.corpus import write_corpus
from clipadapt.mudg.index import build_index
from clipadapt.mudg.retrieve import Selection

ARCHITECTURE = "clipadapt-mudg-commands-tiny"
TINY = {"embed_dim": 32, "vision_cfg": {"image_size": 16, "layers": 1, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
DESCRIPTORS = [", which is bright.", ", which is dark."]


@pytest.fixture(scope="module")
def model_options(tmp_path_factory):
    """The command-line options of a tiny random CLIP saved to disk."""
    root = tmp_path_factory.mktemp("model")
    register_model_config(ARCHITECTURE, TINY)
    torch.manual_seed(0)
    torch.save(load_clip(ARCHITECTURE).model.state_dict(), root / "model.pt")
    (root / "model.json").write_text(json.dumps(TINY))
    return ["--model", ARCHITECTURE, "--model-config", str(root / "model.json"), "--weights", str(root / "model.pt")]


def synthetic_corpus(path, count, seed, weights, **identity):
    rng = np.random.default_rng(seed)
    images, captions = rng.normal(size=(count, TINY["embed_dim"])), rng.normal(size=(count, TINY["embed_dim"]))
    return write_corpus(path, images, captions, [f"{i}.png" for i in range(count)],
                        [f"caption {i}" for i in range(count)],
                        model={"architecture": ARCHITECTURE, "weights": weights, **identity}, image_root=".")


def test_retrieve_refuses_a_model_built_with_another_activation(model_options, tmp_path, capsys):
    corpus = synthetic_corpus(tmp_path / "corpus", 40, 0, model_options[-1], activation="quickgelu")
    build_index(corpus, tmp_path / "index", n_clusters=4, progress=False)
    (tmp_path / "classnames.txt").write_text("red\nblue\n")
    save_ranking(tmp_path / "ranking.txt", DESCRIPTORS)
    retrieve = ["mudg", "retrieve", "--corpus", str(corpus.path), "--index", str(tmp_path / "index"),
                "--classnames", str(tmp_path / "classnames.txt"), "--ranking", str(tmp_path / "ranking.txt"),
                "--n-descriptors", "2", "--k", "8", "--nprobe", "2", "--k-sel", "4", "--threshold", "-1",
                "--out", str(tmp_path / "sel"), *model_options]
    assert "--quick-gelu: the corpus was embedded with quickgelu, the model is built with gelu; pass --quick-gelu" \
        in refused(capsys, retrieve)
    assert main([*retrieve, "--quick-gelu"]) == 0


@pytest.mark.parametrize("count", [60, 40])  # more rows (every index id is in range), or the same size
def test_retrieve_refuses_an_index_of_another_corpus(model_options, tmp_path, capsys, count):
    weights = model_options[-1]
    built_from = synthetic_corpus(tmp_path / "corpus-a", 40, 0, weights)
    build_index(built_from, tmp_path / "index-a", n_clusters=4, progress=False)
    other = synthetic_corpus(tmp_path / "corpus-b", count, 1, weights)
    (tmp_path / "classnames.txt").write_text("red\nblue\n")
    save_ranking(tmp_path / "ranking.txt", DESCRIPTORS)
    retrieve = ["mudg", "retrieve", "--index", str(tmp_path / "index-a"), "--classnames",
                str(tmp_path / "classnames.txt"), "--ranking", str(tmp_path / "ranking.txt"), "--n-descriptors", "2",
                "--k", "8", "--nprobe", "2", "--k-sel", "4", "--threshold", "-1", "--out", str(tmp_path / "sel"),
                *model_options]
    assert re.search("--index: was built from the corpus .*corpus-a .* whose content differs from --corpus "
                     ".*corpus-b", refused(capsys, [*retrieve, "--corpus", str(other.path)]))
    moved = (tmp_path / "corpus-a").rename(tmp_path / "moved")  # the same content elsewhere is that corpus
    assert main([*retrieve, "--corpus", str(moved)]) == 0


def test_retrieve_refuses_an_index_that_does_not_record_its_corpus(model_options, tmp_path, capsys):
    corpus = synthetic_corpus(tmp_path / "corpus", 40, 0, model_options[-1])
    build_index(corpus, tmp_path / "index", n_clusters=4, progress=False)
    record = json.loads((tmp_path / "index" / "index.json").read_text())
    del record["corpus"]["fingerprint"]  # as an index built before fingerprints were recorded
    (tmp_path / "index" / "index.json").write_text(json.dumps(record))
    (tmp_path / "classnames.txt").write_text("red\nblue\n")
    assert "rebuild it (clipadapt mudg index --rebuild)" in refused(capsys, [
        "mudg", "retrieve", "--corpus", str(corpus.path), "--index", str(tmp_path / "index"), "--classnames",
        str(tmp_path / "classnames.txt"), "--nprobe", "2", "--out", str(tmp_path / "sel"), *model_options])


def test_train_refuses_a_test_set_with_the_classes_in_another_order(model_options, tmp_path, capsys):
    classnames = ("red", "blue")  # an image folder labels its sorted folders: blue 0, red 1
    (tmp_path / "images").mkdir()
    for name in classnames:
        (tmp_path / "target" / name).mkdir(parents=True)
        for item in range(2):
            Image.new("RGB", (16, 16), color=name).save(tmp_path / "target" / name / f"{item}.png")
            Image.new("RGB", (16, 16), color=name).save(tmp_path / "images" / f"{name}-{item}.png")
    Selection(ids=np.arange(4), labels=np.array([0, 0, 1, 1]), classnames=classnames,
              images=[str(tmp_path / "images" / f"{name}-{item}.png") for name in classnames for item in range(2)],
              captions=[""] * 4, parameters={"template": "a photo of a {}."}).write(tmp_path / "selection")
    save_ranking(tmp_path / "selection" / "descriptors-ranked.txt", DESCRIPTORS)
    assert "--test: its classes ['blue', 'red'] are the selection's in another" in refused(capsys, [
        "mudg", "train", "--selection", str(tmp_path / "selection"), "--test", str(tmp_path / "target"),
        "--iterations", "1", "--batch-size", "2", "--n-descriptors", "2", "--vision-trainable-from", "0",
        "--text-trainable-from", "0", "--out", str(tmp_path / "run"), *model_options])


def test_index_with_other_settings_is_refused_unless_rebuilt(model_options, tmp_path, capsys):
    corpus = synthetic_corpus(tmp_path / "corpus", 40, 0, model_options[-1])
    index = ["mudg", "index", "--corpus", str(corpus.path), "--out", str(tmp_path / "index")]
    assert main([*index, "--clusters", "4"]) == 0
    assert re.match("clipadapt mudg: error: .*--rebuild", refused(capsys, [*index, "--clusters", "5"]))
    assert main([*index, "--clusters", "5", "--rebuild"]) == 0
    assert json.loads((tmp_path / "index" / "index.json").read_text())["parameters"]["n_clusters"] == 5


def test_damaged_files_are_reported_in_one_line(model_options, tmp_path, capsys):
    corpus = synthetic_corpus(tmp_path / "corpus", 40, 0, model_options[-1])
    build_index(corpus, tmp_path / "index", n_clusters=4, progress=False)
    (tmp_path / "classnames.txt").write_text("red\nblue\n")
    retrieve = ["mudg", "retrieve", "--corpus", str(corpus.path), "--index", str(tmp_path / "index"), "--classnames",
                str(tmp_path / "classnames.txt"), "--nprobe", "2", "--out", str(tmp_path / "sel"), *model_options]
    ivf = tmp_path / "index" / "ivf.npz"
    ivf.write_bytes(ivf.read_bytes()[:ivf.stat().st_size // 2])
    assert re.search(r"ivf.npz: cannot be read as a saved IVFIndex .*clipadapt mudg index --rebuild",
                     refused(capsys, retrieve))
    shard = tmp_path / "corpus" / "captions-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-64])
    assert re.search(r"captions-00000.npy: cannot be read as a .npy array .*clipadapt mudg corpus --rebuild",
                     refused(capsys, ["mudg", "index", "--corpus", str(corpus.path), "--out", str(tmp_path / "i2")]))
    (tmp_path / "corpus" / "corpus.json").write_text('{"format": "clipadapt-mudg-corpus", "count": ')
    assert re.search(r"corpus.json: is not valid JSON .*clipadapt mudg corpus --rebuild", refused(capsys, retrieve))


@pytest.fixture
def indexed_corpus(model_options, tmp_path):
    """A 40-item synthetic corpus and its 4-list index; the retrieve options that name them."""
    corpus = synthetic_corpus(tmp_path / "corpus", 40, 0, model_options[-1])
    build_index(corpus, tmp_path / "index", n_clusters=4, progress=False)
    save_ranking(tmp_path / "ranking.txt", DESCRIPTORS)
    return ["mudg", "retrieve", "--corpus", str(corpus.path), "--index", str(tmp_path / "index"), "--k", "8",
            "--out", str(tmp_path / "sel"), *model_options]


def test_retrieve_checks_nprobe_before_ranking_the_descriptors(indexed_corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("clipadapt.mudg.augment.rank_descriptors", lambda *a, **k: pytest.fail("ranked first"))
    (tmp_path / "classnames.txt").write_text("red\nblue\n")
    assert "--nprobe: the index has 4 lists; give 1 to 4, not 5" in refused(capsys, [
        *indexed_corpus, "--classnames", str(tmp_path / "classnames.txt"), "--nprobe", "5"])


def test_retrieve_refuses_to_write_an_empty_selection(indexed_corpus, tmp_path, capsys):
    (tmp_path / "classnames.txt").write_text("red\nblue\n")
    assert main([*indexed_corpus, "--classnames", str(tmp_path / "classnames.txt"), "--ranking",
                 str(tmp_path / "ranking.txt"), "--n-descriptors", "2", "--nprobe", "2", "--threshold", "1.5"]) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after the progress bars of the retrieval
    assert error.startswith("clipadapt mudg: error: --threshold: no retrieved image passed the filter (cosine > 1.5)")
    assert not (tmp_path / "sel" / "selection.csv").exists()


@pytest.mark.parametrize("preset_options, k_sel", [([], 384), (["--preset", "imagenet"], 96), (["--k-sel", "5"], 5)])
def test_retrieve_takes_the_released_settings_of_its_dataset(indexed_corpus, tmp_path, preset_options, k_sel):
    argv = [*indexed_corpus, "--dataset", "dtd", "--ranking", str(tmp_path / "ranking.txt"), "--n-descriptors", "2",
            "--nprobe", "2", "--threshold", "-1", *preset_options]
    assert main(argv) == 0
    parameters = json.loads((tmp_path / "sel" / "selection.json").read_text())["parameters"]
    preset = preset_options[1] if preset_options[:1] == ["--preset"] else "dtd"
    assert (parameters["preset"], parameters["k_sel"], parameters["n_descriptors"]) == (preset, k_sel, 2)


def test_train_takes_the_iterations_of_the_selections_preset(model_options, tmp_path):
    (tmp_path / "images").mkdir()
    for item, colour in enumerate(("red", "blue")):
        Image.new("RGB", (16, 16), color=colour).save(tmp_path / "images" / f"{item}.png")
    Selection(ids=np.arange(2), labels=np.array([0, 1]), classnames=("red", "blue"),
              images=[str(tmp_path / "images" / f"{item}.png") for item in range(2)], captions=["", ""],
              parameters={"template": "a photo of a {}.", "preset": "vlcs"}).write(tmp_path / "selection")
    save_ranking(tmp_path / "selection" / "descriptors-ranked.txt", DESCRIPTORS)
    train = ["mudg", "train", "--selection", str(tmp_path / "selection"), "--batch-size", "2", "--n-descriptors", "2",
             "--vision-trainable-from", "1", "--text-trainable-from", "1", "--out", str(tmp_path / "run"),
             *model_options]
    assert main(train) == 0
    assert json.loads((tmp_path / "run" / "result.json").read_text())["config"]["iterations"] == 50
    assert main([*train, "--iterations", "2", "--out", str(tmp_path / "run2")]) == 0
    assert json.loads((tmp_path / "run2" / "result.json").read_text())["config"]["iterations"] == 2
