"""CUDA exact_matmul against its CPU twin (skipped without a GPU): the same bits."""
import numpy as np
import pytest
import torch

import clipadapt

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("m,d,n", [(1, 1, 1), (33, 77, 19), (257, 768, 130), (5, 1, 300)])
def test_cuda_equals_the_cpu_twin(dtype, m, d, n):
    generator = torch.Generator().manual_seed(m * d + n)
    a = torch.randn(m, d, generator=generator).to(getattr(torch, dtype))
    b = torch.randn(d, n, generator=generator).to(getattr(torch, dtype))
    on_cpu = clipadapt.exact_matmul(a, b)
    on_gpu = clipadapt.exact_matmul(a.cuda(), b.cuda())
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == a.dtype
    view = torch.int16 if a.element_size() == 2 else torch.int32
    np.testing.assert_array_equal(on_gpu.cpu().view(view).numpy(), on_cpu.view(view).numpy())


def test_cuda_ties_and_overflow_round_like_the_cpu():
    a = torch.tensor([[1, 2**-11, 0], [1 + 2**-10, 2**-11, 0], [1, 2**-11, 2**-20], [65504, 16, 0], [1, -1, 0]],
                     dtype=torch.float16)
    b = torch.tensor([[1], [1], [2**-20]], dtype=torch.float16)
    assert torch.equal(clipadapt.exact_matmul(a.cuda(), b.cuda()).cpu().view(torch.int16),
                       clipadapt.exact_matmul(a, b).view(torch.int16))
