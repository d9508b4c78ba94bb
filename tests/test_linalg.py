"""exact_matmul: every entry the canonical float64 dot product rounded once, on the CPU."""
import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import clipadapt
from clipadapt._native import _core, capsule

rules = _core._rules
DTYPES = ["float16", "bfloat16", "float32"]


def canonical_matmul(a, b):
    """The canonical order (32 lane sums, element l, l + 32, ... in turn, then pairwise halving)
    of every row of a with every column of b, in float64 NumPy: [M, N] float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    padded = -(-d // 32) * 32
    products = np.zeros((a.shape[0], b.shape[1], padded))
    products[:, :, :d] = a[:, None, :] * b.T[None, :, :]  # exact in float64
    chunks = products.reshape(a.shape[0], b.shape[1], padded // 32, 32)
    lanes = np.cumsum(chunks, axis=2)[:, :, -1, :]  # in turn, not numpy's pairwise sum
    offset = 16
    while offset >= 1:
        lanes = lanes[..., :offset] + lanes[..., offset:2 * offset]
        offset //= 2
    return lanes[..., 0]


def rounded_bits(values, dtype):
    """The bit patterns of float64 values rounded once to dtype (numpy's astype rounds float64
    to float16 and float32 directly; bfloat16 through the tested host rule)."""
    if dtype == "bfloat16":
        return rules.bfloat16_from_double(values.ravel()).reshape(values.shape)
    with np.errstate(over="ignore"):
        return values.astype(dtype).view(np.uint16 if dtype == "float16" else np.uint32)


def bits(tensor):
    return tensor.view(torch.int16 if tensor.element_size() == 2 else torch.int32).numpy()


def random_pair(m, d, n, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(m, d, generator=generator).to(getattr(torch, dtype))
    b = (torch.randn(d, n, generator=generator) / max(d, 1) ** 0.5).to(getattr(torch, dtype))
    return a, b


def recomputed_entries(a, b):
    """How many entries the CPU kernel took from the canonical dot instead of its float64 estimate."""
    out = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    return _core.exact_matmul_into(capsule(a), capsule(b), capsule(out), 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,d,n", [(1, 1, 1), (7, 1, 5), (33, 77, 19), (130, 33, 41), (2, 769, 3), (300, 96, 2100)])
def test_every_entry_is_the_canonical_dot_rounded_once(dtype, m, d, n):
    a, b = random_pair(m, d, n, dtype, seed=m + d + n)
    expected = rounded_bits(canonical_matmul(a.float(), b.float()), dtype)
    out = clipadapt.exact_matmul(a, b)
    assert out.dtype == a.dtype and out.shape == (m, n)
    np.testing.assert_array_equal(bits(out).view(expected.dtype), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_float64_estimate_decides_almost_every_entry(dtype):
    """The fast float64 pass (AVX-512 tiles, or dgemm) is within its proven bound of the
    canonical dot, so only entries within that bound of a rounding boundary are recomputed
    (0, 6 and 38 of 630k here): a broken estimate would send most entries to the canonical dot
    (and still answer right)."""
    a, b = random_pair(300, 96, 2100, dtype, seed=8)
    assert recomputed_entries(a, b) <= 0.001 * 300 * 2100


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_numpy_in_numpy_out_equal_to_numpy_float64_rounded(dtype):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((50, 70)).astype(dtype), rng.standard_normal((70, 40)).astype(dtype)
    out = clipadapt.exact_matmul(a, b)
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    np.testing.assert_array_equal(out, (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype))


def test_within_one_ulp_of_torch_float16_matmul_plus_its_float32_sum_error():
    """torch sums float16 products in float32, then rounds: within an ulp of ours, except by its
    own float32 error where the sum cancels (up to a few ulps of a small result)."""
    a, b = random_pair(200, 300, 150, "float16", seed=5)
    ours, theirs = clipadapt.exact_matmul(a, b).double(), (a @ b).double()
    ulp = torch.from_numpy(np.spacing(torch.maximum(ours.abs(), theirs.abs()).numpy().astype(np.float16))).double()
    float32_sum_error = 300 * 2.0**-24 * (a.double().abs() @ b.double().abs())
    assert torch.all((ours - theirs).abs() <= ulp + float32_sum_error)
    assert torch.all((ours - theirs).abs()[float32_sum_error < ulp / 4] <= ulp[float32_sum_error < ulp / 4])
    assert torch.mean((ours == theirs).double()) > 0.99


def test_ties_round_to_even_through_the_canonical_dot():
    """Exact float16 midpoints (and overflow, and signed zeros): the float64 estimate cannot tell
    which way they round, so the canonical dot decides, to even."""
    a = torch.tensor([[1, 2**-11, 0], [1 + 2**-10, 2**-11, 0], [1, 2**-11, 2**-20], [65504, 16, 0],
                      [65504, 15, 0], [1, -1, 0], [2**-12, 0, 0], [-(2**-12), 0, 0]], dtype=torch.float16)
    b = torch.tensor([[1, -(2**-13)], [1, 0], [2**-20, 0]], dtype=torch.float16)
    out = clipadapt.exact_matmul(a, b)
    expected = [1.0, 1 + 2**-9, 1 + 2**-10, float("inf"), 65504, 0.0, 2**-12, -(2**-12)]  # first column
    assert out[:, 0].tolist() == expected
    assert bits(out[:, 0]).tolist()[5] == 0  # +0, as the canonical dot's sum
    assert bits(out[6:, 1]).view(np.uint16).tolist() == [0x8000, 0x0000]  # -2^-25 -> -0, +2^-25 -> +0
    np.testing.assert_array_equal(bits(out).view(np.uint16), rounded_bits(canonical_matmul(a.float(), b.float()),
                                                                          "float16"))
    assert recomputed_entries(a, b) >= 6  # the midpoints, 65520 and the zeros at least


def test_long_rows_of_midpoints_recomputed_and_rounded_to_even():
    """D = 100 (not a multiple of 32): every entry is 1536 + a small integer + 1/2, a midpoint
    between float16 neighbours (spacing 1 in [1024, 2048)): each is recomputed, and rounds to even."""
    rng = np.random.default_rng(11)
    a = np.concatenate([np.full((40, 1), 1536.0), np.full((40, 1), 0.5), rng.integers(-4, 5, (40, 98))], axis=1)
    b = np.concatenate([np.ones((2, 30)), rng.choice([-1.0, 1.0], (98, 30))])
    a, b = torch.from_numpy(a.astype(np.float16)), torch.from_numpy(b.astype(np.float16))
    exact = canonical_matmul(a.float(), b.float())
    assert np.all(exact % 1 == 0.5) and np.all((exact > 1024) & (exact < 2048))
    out = clipadapt.exact_matmul(a, b)
    np.testing.assert_array_equal(out.double().numpy(), np.round(exact))  # numpy's round: half to even
    np.testing.assert_array_equal(bits(out).view(np.uint16), rounded_bits(exact, "float16"))
    assert recomputed_entries(a, b) == 40 * 30


@pytest.mark.parametrize("m,d,n", [(0, 4, 3), (3, 4, 0), (3, 0, 2), (0, 0, 0)])
def test_empty_shapes(m, d, n):
    out = clipadapt.exact_matmul(torch.ones(m, d, dtype=torch.float16), torch.ones(d, n, dtype=torch.float16))
    assert out.shape == (m, n) and out.dtype == torch.float16
    assert bits(out).tolist() == np.zeros((m, n), np.int16).tolist()  # +0


def test_strided_inputs_read_as_their_values():
    a, b = random_pair(40, 64, 30, "float16", seed=2)
    wide = torch.zeros(40, 128, dtype=torch.float16)
    wide[:, ::2] = a
    strided_a, strided_b = wide[:, ::2], b.t().contiguous().t()
    assert not strided_a.is_contiguous() and not strided_b.is_contiguous()
    np.testing.assert_array_equal(bits(clipadapt.exact_matmul(strided_a, strided_b)), bits(clipadapt.exact_matmul(a, b)))
    np.testing.assert_array_equal(clipadapt.exact_matmul(a.numpy()[:, ::-1], b.numpy()[::-1]),
                                  clipadapt.exact_matmul(a.numpy()[:, ::-1].copy(), b.numpy()[::-1].copy()))


@pytest.mark.parametrize("a,b,error,words", [
    (np.ones((2, 3)), np.ones((3, 2)), TypeError, "a: dtype float64"),
    (np.ones((2, 3), np.float16), np.ones((3, 2), np.float32), TypeError, "a and b: dtypes differ"),
    (np.ones((2, 3), np.float16), np.ones((4, 2), np.float16), ValueError, "a and b: inner dimensions differ"),
    (np.ones((2, 3), np.float16), np.ones(3, np.float16), ValueError, "b: expected a 2-D array"),
    (np.ones((2, 3), np.int64), np.ones((3, 2), np.int64), TypeError, "a: dtype int64"),
])
def test_refuses_bad_arguments_by_name(a, b, error, words):
    with pytest.raises(error, match=words):
        clipadapt.exact_matmul(a, b)


def test_nan_refused_unless_unchecked():
    a, b = np.ones((2, 3), np.float16), np.ones((3, 2), np.float16)
    b[1, 1] = np.nan
    with pytest.raises(ValueError, match="b: contains NaN or Inf"):
        clipadapt.exact_matmul(a, b)
    out = clipadapt.exact_matmul(a, b, check_finite=False)
    assert np.isnan(out[:, 1]).all() and (out[:, 0] == 3).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_at_one_and_two_threads(dtype):
    a, b = random_pair(700, 200, 300, dtype, seed=9)
    before = clipadapt.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            clipadapt.set_num_threads(threads)
            results.append(bits(clipadapt.exact_matmul(a, b)))
    finally:
        clipadapt.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])


_DIGEST_SCRIPT = textwrap.dedent("""
    import hashlib, torch, clipadapt
    digest = hashlib.sha256()
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        generator = torch.Generator().manual_seed(4)
        a = torch.randn(600, 320, generator=generator).to(dtype)
        b = torch.randn(320, 500, generator=generator).to(dtype)
        digest.update(clipadapt.exact_matmul(a, b).view(torch.uint8).numpy().tobytes())
    print(digest.hexdigest())
""")


def _digest(env):
    run = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_same_bits_from_the_float64_tiles_and_from_any_blas_kernel():
    """The estimate on the AVX-512 float64 tiles, or on OpenBLAS's dgemm
    (CLIPADAPT_CPU_FP64_TILES=0) with OpenBLAS forced to either of two kernels: set only in the
    subprocesses."""
    plain = {key: value for key, value in os.environ.items()
             if key not in ("OPENBLAS_CORETYPE", "CLIPADAPT_CPU_FP64_TILES")}
    reference = _digest(plain)
    dgemm = {**plain, "CLIPADAPT_CPU_FP64_TILES": "0"}
    assert _digest(dgemm) == reference
    assert _digest({**dgemm, "OPENBLAS_CORETYPE": "Sandybridge"}) == reference
    assert _digest({**dgemm, "OPENBLAS_CORETYPE": "Haswell"}) == reference
