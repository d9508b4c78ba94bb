"""The command line ends bad input with one line naming the option or file and the fix, and
exit code 2, instead of a traceback; two runs never share an output directory."""
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import clipadapt
from clipadapt._files import LOCK_FILE, exclusive_directory
from clipadapt.cli import main
from cli_support import refused
from clipadapt.mudg.corpus import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus", rng.normal(size=(30, 8)),
                        rng.normal(size=(30, 8)), [f"{i}.png" for i in range(30)], [f"c {i}" for i in range(30)],
                        model={"architecture": "ViT-B-32", "weights": "test"}, image_root=".")


def index_command(corpus, out, *options):
    return ["mudg", "index", "--corpus", str(corpus.path), "--out", str(out), "--clusters", "3", *options]


def test_unknown_device_is_refused(corpus, tmp_path, capsys):
    assert "--device: unknown device 'gpu'; use cpu, cuda or cuda:N" in \
        refused(capsys, index_command(corpus, tmp_path / "index", "--device", "gpu"))


def test_cuda_device_that_torch_cannot_use_is_refused(corpus, tmp_path, capsys):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    error = refused(capsys, index_command(corpus, tmp_path / "index", "--device", f"cuda:{count}"))
    assert f"--device cuda:{count}: torch sees " in error
    assert ("use --device cpu" if count == 0 else f"cuda:0 to cuda:{count - 1}") in error
    assert not (tmp_path / "index").exists(), "a refused run must not create its output directory"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused(corpus, tmp_path, capsys):
    assert "--device cuda: torch sees no usable CUDA device" in \
        refused(capsys, index_command(corpus, tmp_path / "index", "--device", "cuda"))


@pytest.mark.gpu
def test_numbered_cuda_device_works_as_the_help_says(corpus, tmp_path):
    assert main(index_command(corpus, tmp_path / "gpu", "--device", "cuda:0")) == 0
    assert main(index_command(corpus, tmp_path / "cpu")) == 0
    on_gpu, on_cpu = (clipadapt.IVFIndex.load(tmp_path / name / "ivf.npz") for name in ("gpu", "cpu"))
    np.testing.assert_array_equal(on_gpu.list_sizes(), on_cpu.list_sizes())


def test_out_pointing_at_a_file_is_refused(corpus, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert f"--out {tmp_path / 'file'}: is a file, not a directory" in \
        refused(capsys, index_command(corpus, tmp_path / "file"))
    assert f"--out {tmp_path / 'file' / 'index'}: cannot be created" in \
        refused(capsys, index_command(corpus, tmp_path / "file" / "index"))


def test_a_second_run_on_the_same_out_is_refused(corpus, tmp_path, capsys):
    out = tmp_path / "index"
    with exclusive_directory(out):
        error = refused(capsys, index_command(corpus, out))
    assert f"--out {out}: is in use by another clipadapt run" in error and "choose another directory" in error
    assert not (out / "index.json").exists()
    assert main(index_command(corpus, out)) == 0  # released when the holder is done


def test_the_lock_holds_across_processes_and_dies_with_its_holder(corpus, tmp_path, capsys):
    out = tmp_path / "index"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib; from clipadapt._files import exclusive_directory\n"
         f"with exclusive_directory(pathlib.Path({str(out)!r})):\n print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert "is in use by another clipadapt run" in refused(capsys, index_command(corpus, out))
    finally:
        holder.kill()  # not a clean exit: the system still releases the lock
        holder.wait()
    assert (out / LOCK_FILE).is_file()
    assert main(index_command(corpus, out)) == 0


@pytest.mark.parametrize("pattern,message", [
    ("out-{foo}.json", r"--json: 'out-\{foo\}.json' has the placeholder \{foo\}; use \{device\}, \{k\}"),
    ("out-{.json", r"--json: 'out-\{.json' is not a valid pattern \(.*\); use the placeholders"),
    ("out-{}.json", r"--json: 'out-\{\}.json' is not a valid pattern"),
])
def test_bad_json_pattern_is_refused_before_any_benchmark_runs(pattern, message, capsys):
    assert re.search(message, refused(capsys, ["bench", "knn", "--n", "50", "--json", pattern]))


def test_json_path_that_cannot_be_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert f"--json: {tmp_path / 'file' / 'knn.json'} lies under the file {tmp_path / 'file'}" in \
        refused(capsys, ["bench", "knn", "--n", "50", "--json", str(tmp_path / "file" / "knn.json")])
    assert f"--json: {tmp_path} is a directory" in \
        refused(capsys, ["bench", "knn", "--n", "50", "--json", str(tmp_path)])


def test_command_line_errors_exit_with_code_2_without_a_traceback(tmp_path):
    finished = subprocess.run([sys.executable, "-m", "clipadapt.cli", "mudg", "index", "--corpus",
                               str(tmp_path / "missing"), "--out", str(tmp_path / "index")],
                              capture_output=True, text=True)
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [f"clipadapt mudg: error: {tmp_path / 'missing' / 'corpus.json'}: not "
                                            "found; point to a directory written by write_corpus or build_corpus"]
