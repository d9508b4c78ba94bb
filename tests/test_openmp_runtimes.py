"""torch and clipadapt in one process: each brings a GNU OpenMP runtime (torch's own libgomp,
and clipadapt's, vendored under another name in the repaired wheel), and both must work, in
either import order and at the same time."""
import subprocess
import sys

import pytest

pytest.importorskip("torch")

_CHECK = """
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
if sys.argv[1] == "torch-first":
    import torch, clipadapt
else:
    import clipadapt, torch
torch.set_num_threads(2)
clipadapt.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((4000, 64)).astype(np.float32)
a = rng.standard_normal((384, 384)).astype(np.float32)

def clipadapt_knn():
    _, indices = clipadapt.knn(x[:300], x, k=5, metric="l2")
    distances = ((x[:300, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    assert (indices[:, 0] == np.arange(300)).all()
    np.testing.assert_array_equal(np.sort(indices, 1), np.sort(np.argsort(distances, 1, kind="stable")[:, :5], 1))

def torch_matmul():
    product = (torch.from_numpy(a) @ torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(product, a.astype(np.float64) @ a, rtol=1e-4, atol=1e-3)

for step in (clipadapt_knn, torch_matmul):
    step()
with ThreadPoolExecutor(2) as pool:  # both runtimes' thread teams at once
    for future in [pool.submit(step) for _ in range(3) for step in (clipadapt_knn, torch_matmul)]:
        future.result()
maps = open("/proc/self/maps").read()
print(sorted({line.split()[-1].rsplit("/", 1)[-1] for line in maps.splitlines() if "gomp" in line}))
"""


@pytest.mark.parametrize("order", ["torch-first", "clipadapt-first"])
def test_both_openmp_runtimes_work_in_one_process(order):
    finished = subprocess.run([sys.executable, "-c", _CHECK, order], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "gomp" in finished.stdout  # the runtimes that were loaded, for the log
