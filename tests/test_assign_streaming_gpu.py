"""assign() streaming host rows through the GPU (skipped without a GPU)."""
import numpy as np
import pytest
import torch

import clipadapt

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("chunk_rows", [1000, 4096, 1 << 20])
def test_streamed_assignment_equals_on_device_assignment(chunk_rows):
    seed = int(np.random.SeedSequence().generate_state(1)[0])
    x = np.random.default_rng(seed).standard_normal((10_007, 48)).astype(np.float32)
    centroids = torch.from_numpy(x[:300].copy()).cuda()
    scores, ids = clipadapt.assign(x, centroids, chunk_rows=chunk_rows)
    assert isinstance(ids, np.ndarray) and ids.shape == (10_007,)
    want_scores, want_ids = clipadapt.assign(torch.from_numpy(x).cuda(), centroids)
    np.testing.assert_array_equal(ids, want_ids.cpu().numpy(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(scores, want_scores.cpu().numpy(), err_msg=f"seed {seed}")
