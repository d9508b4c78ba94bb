"""The shape of the public API: no exported function shadows its package's module of the same
name, and library modules share helpers under public names, never by importing private ones."""
import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import clipadapt

PACKAGES = ["clipadapt", "clipadapt.clip", "clipadapt.distributed", "clipadapt.mudg", "clipadapt.reclip"]
SOURCE = Path(clipadapt.__file__).parent


@pytest.mark.parametrize("name", PACKAGES)
def test_no_export_is_named_like_a_submodule(name):
    package = importlib.import_module(name)
    submodules = {module.name for module in pkgutil.iter_modules(package.__path__)}
    assert not submodules & set(package.__all__)


def test_implementation_modules_import_as_modules():
    import clipadapt.clustering as clustering
    import clipadapt.neighbors as neighbors
    import clipadapt.propagation as propagation

    assert (neighbors.knn, clustering.kmeans, propagation.label_propagation) == (
        clipadapt.knn, clipadapt.kmeans, clipadapt.label_propagation)


def library_modules():
    return sorted(path for path in SOURCE.rglob("*.py"))


@pytest.mark.parametrize("path", library_modules(), ids=lambda path: str(path.relative_to(SOURCE)))
def test_no_private_name_crosses_a_module_and_no_mock(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clipadapt"):
            module = importlib.import_module(node.module)
            for alias in node.names:  # a private module (clipadapt._native, its _core) is fine
                if not isinstance(getattr(module, alias.name, None), types.ModuleType):
                    assert not alias.name.startswith("_"), f"{path.name} imports the private {node.module}.{alias.name}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not any(name.startswith("unittest") for name in names), f"{path.name} imports unittest"
