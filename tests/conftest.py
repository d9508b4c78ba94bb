import pytest

import clipadapt


def pytest_collection_modifyitems(config, items):
    if clipadapt.cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device (or no driver): GPU tests skipped")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
