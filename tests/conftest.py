import pytest

import clipadapt


def pytest_collection_modifyitems(config, items):
    if clipadapt.cuda_available():
        _skip_bfloat16_below_sm80(items)
        return
    skip = pytest.mark.skip(reason="no CUDA device (or no driver): GPU tests skipped")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _skip_bfloat16_below_sm80(items):
    """bfloat16 GPU work needs compute capability 8.0 (the library refuses it on Turing)."""
    if min(device["compute_capability"] for device in clipadapt.device_summary()["cuda_devices"]) >= (8, 0):
        return
    skip = pytest.mark.skip(reason="bfloat16 on the GPU needs compute capability 8.0")
    for item in items:
        if "gpu" in item.keywords and "bfloat16" in item.name:
            item.add_marker(skip)
