"""The MUDG source index built by a group of ranks (clipadapt.distributed.mudg, and
`torchrun ... -m clipadapt mudg index`): the single-process index's files and lists, resumed
stage by stage, read back as one index by MudgIndex.load."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from clipadapt.bench.data import synthetic_pairs
from clipadapt.mudg.corpus import write_corpus
from clipadapt.mudg.index import INDEX_FILE, MudgIndex, build_index
from distributed_ranks import run_ranks, values

N, D, K = 600, 32, 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """N clustered pairs with a modality gap, in shards of 250 (the last one 100)."""
    data = synthetic_pairs(N, D, n_classes=K, seed=3)
    return write_corpus(tmp_path_factory.mktemp("corpus") / "c", data.images, data.captions,
                        [f"{i}.jpg" for i in range(N)], [f"caption {i}" for i in range(N)],
                        model={"architecture": "synthetic", "weights": "none"}, image_root=".", shard_rows=250)


@pytest.fixture(scope="module")
def single_process(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return build_index(corpus, out, n_clusters=K, progress=False), out


def build_on_group(rank: int, world_size: int, corpus: str, out: str, clustering: str) -> dict:
    from clipadapt.distributed.mudg import build_index as build_with_ranks

    return build_with_ranks(corpus, out, n_clusters=K, clustering=clustering)


def assert_same_index(out, expected: MudgIndex, expected_out) -> None:
    built = MudgIndex.load(out)
    for name in ("pairing.npy",) if (expected_out / "pairing.npy").is_file() else ():
        np.testing.assert_array_equal(np.load(out / name), np.load(expected_out / name))
    np.testing.assert_allclose(built.ivf.centroids, expected.ivf.centroids, rtol=0, atol=1e-5)
    for mine, theirs in zip(built.ivf.inverted_lists(), expected.ivf.inverted_lists()):
        np.testing.assert_array_equal(mine, theirs)
    queries = synthetic_pairs(20, D, n_classes=K, seed=3, split=1).captions
    for mine, theirs in zip(built.search(queries, k=16, nprobe=2), expected.search(queries, k=16, nprobe=2)):
        np.testing.assert_array_equal(mine, theirs)
    assert built.info["list_sizes"] == expected.info["list_sizes"]
    assert built.info["ntotal"] == N and built.info["complete"]


def test_group_build_equals_the_single_process_index_and_resumes(corpus, single_process, tmp_path):
    expected, expected_out = single_process
    out = tmp_path / "index"
    infos = values(run_ranks(3, build_on_group, str(corpus.path), str(out), "paired"))
    assert infos[0] == infos[1] == infos[2]
    assert {stage["ranks"] for stage in infos[0]["stages"].values()} == {3}
    assert_same_index(out, expected, expected_out)
    # A build that one process left after the pairing is finished by a group of 2.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(expected_out / "pairing.npy", resumed)
    record = json.loads((expected_out / INDEX_FILE).read_text())
    record.update(complete=False, stages={"pairing": record["stages"]["pairing"]})
    (resumed / INDEX_FILE).write_text(json.dumps(record))
    info = values(run_ranks(2, build_on_group, str(corpus.path), str(resumed), "paired"))[0]
    assert "ranks" not in info["stages"]["pairing"] and info["stages"]["kmeans"]["ranks"] == 2
    assert_same_index(resumed, expected, expected_out)


def test_group_build_of_the_standard_clustering(corpus, tmp_path):
    expected_out = tmp_path / "single"
    expected = build_index(corpus, expected_out, n_clusters=K, clustering="standard", progress=False)
    values(run_ranks(2, build_on_group, str(corpus.path), str(tmp_path / "group"), "standard"))
    assert_same_index(tmp_path / "group", expected, expected_out)


def test_torchrun_launches_the_index_command(corpus, single_process, tmp_path):
    expected, expected_out = single_process
    out = tmp_path / "index"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                               "-m", "clipadapt", "mudg", "index", "--corpus", str(corpus.path), "--out", str(out),
                               "--clusters", str(K), "--threads", "1"],
                              capture_output=True, text=True, timeout=120, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads(finished.stdout)["complete"]  # rank 0 alone printed the record
    assert_same_index(out, expected, expected_out)
