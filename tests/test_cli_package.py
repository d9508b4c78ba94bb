"""The package around the command: ``python -m clipadapt``, what ``clipadapt info`` imports, a
missing extra named in one line, one version."""
import importlib.metadata
import json
import subprocess
import sys

import clipadapt


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_python_m_clipadapt_runs_the_command():
    finished = subprocess.run([sys.executable, "-m", "clipadapt", "info"], capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["cuda_compiled"] in (True, False)


def test_info_imports_neither_torch_nor_the_benchmarks_nor_the_methods():
    finished = _python(
        "import contextlib, io, sys\n"
        "from clipadapt.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['info']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n")
    assert finished.returncode == 0, finished.stderr
    modules = set(finished.stdout.split())
    heavy = {"torch", "scipy", "sklearn", "open_clip", "faiss", "tqdm", "matplotlib", "clipadapt.bench",
             "clipadapt.mudg", "clipadapt.reclip", "clipadapt.clip", "clipadapt.commands.bench",
             "clipadapt.commands.reclip", "clipadapt.commands.mudg"}
    assert not modules & heavy


def test_a_missing_dependency_ends_the_command_naming_its_extra():
    # torch blocked as if it were not installed: --device cuda asks torch for its devices.
    finished = _python(
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from clipadapt.cli import main\n"
        "sys.exit(main(['reclip', '--dataset', 'cifar10', '--model', 'RN50', '--pretrained', 'openai', '--out', "
        "'unused', '--device', 'cuda']))\n")
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines() == [
        "clipadapt reclip: error: the module 'torch' is not installed; `pip install clipadapt[clip]` installs what "
        "it needs"]


def test_one_version():
    assert clipadapt.__version__ == importlib.metadata.version("clipadapt")
