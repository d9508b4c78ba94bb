"""pytest-benchmark: ReCLIP's pseudo-labelling step (projection + graph + propagation),
clipadapt's ``propagate_pseudo_labels`` vs the dense released recipe, at a small size.

Run with ``pytest benchmarks/ --benchmark-only``. Each test times one step (in this process;
``clipadapt bench reclip-lp`` measures each method in a fresh one, with its peak memory) and
asserts that at least 99.9% of the image pseudo labels equal the dense recipe's on the CPU.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clipadapt import cuda_available
from clipadapt.bench.lp import lp_problem, numpy_blas_threads
from clipadapt.bench.reclip_lp import METHODS, pseudo_label_step
from clipadapt.device import set_num_threads

M, CLASSES, D, THREADS = 1500, 30, 768, 2
MIN_AGREEMENT = 0.999

_ON_GPU = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device")]
CASES = [(name, "cpu") for name in METHODS] + [pytest.param(name, "cuda", marks=_ON_GPU) for name in METHODS]


@pytest.fixture(scope="module")
def nodes() -> torch.Tensor:
    """The M float16 nodes: C text nodes (class directions), then the image nodes; sets the
    threads of torch and clipadapt."""
    torch.set_num_threads(THREADS)
    set_num_threads(THREADS)
    return torch.from_numpy(lp_problem(M, CLASSES, D, seed=0).features.astype(np.float16))


@pytest.fixture(scope="module")
def recipe_labels(nodes: torch.Tensor) -> np.ndarray:
    """The image pseudo labels of the dense recipe on the CPU."""
    step = pseudo_label_step("dense-recipe")
    with numpy_blas_threads(THREADS):
        return step(nodes[:CLASSES], nodes[CLASSES:]).outputs.labels.numpy()


@pytest.mark.parametrize(("method", "device"), CASES)
def test_pseudo_labelling_step(benchmark, nodes, recipe_labels, method: str, device: str) -> None:
    step = pseudo_label_step(method, device=device)
    on_device = nodes.to(device)
    text, images = on_device[:CLASSES], on_device[CLASSES:]
    with numpy_blas_threads(THREADS):
        step(text, images)  # warm-up
        result = benchmark.pedantic(step, args=(text, images), rounds=1, iterations=1)
    agreement = float(np.mean(result.outputs.labels.cpu().numpy() == recipe_labels))
    benchmark.extra_info.update(method=method, device=device, m=M, classes=CLASSES, d=D, seconds=result.seconds,
                                agreement_recipe=agreement)
    assert agreement >= MIN_AGREEMENT
