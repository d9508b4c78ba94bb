"""The rules the CUDA kernels apply, checked on the CPU.

Each rule is one host/device function compiled into both the CPU and the CUDA code; here the
host copy runs against NumPy references, so the first GPU run meets tested rules.
"""
import numpy as np
import pytest

from clipadapt._native import _core

rules = _core._rules


def _lanes_reference(a, b):
    """The canonical order written out: 32 lane sums in float64, then pairwise halving."""
    lanes = np.zeros(32)
    for start in range(0, len(a), 32):
        for lane in range(min(32, len(a) - start)):
            lanes[lane] += float(a[start + lane]) * float(b[start + lane])
    offset = 16
    while offset >= 1:
        lanes[:offset] = lanes[:offset] + lanes[offset:2 * offset]
        offset //= 2
    return lanes[0]


@pytest.mark.parametrize("d", [1, 7, 31, 32, 33, 64, 95, 512, 769])
def test_canonical_dot_is_the_32_lane_order(d):
    rng = np.random.default_rng(d)
    a = rng.standard_normal(d).astype(np.float32) * np.float32(3)
    b = rng.standard_normal(d).astype(np.float32)
    assert rules.canonical_dot(a, b) == _lanes_reference(a, b)  # bitwise
    assert rules.canonical_dot(a, b) == pytest.approx(float(a.astype(np.float64) @ b.astype(np.float64)), rel=1e-12)


@pytest.mark.parametrize("d", [1, 33, 128, 769])
def test_squared_norms_are_the_canonical_dot_of_each_row(d):
    from clipadapt import _native

    x = np.random.default_rng(d).standard_normal((37, d)).astype(np.float32)
    x[3] = 0.0
    norms = np.empty(len(x))
    _core.squared_norms_into(_native.capsule(x), _native.capsule(norms))
    assert norms.tolist() == [_lanes_reference(row, row) for row in x]  # bitwise


def test_exact_key_rules():
    assert rules.exact_key(0.5, 1.0, 4.0, "cosine") == pytest.approx(0.25)
    assert rules.exact_key(3.0, 0.0, 4.0, "cosine") == 0.0  # a zero row has cosine 0
    assert rules.exact_key(2.0, 2.0, 2.0, "l2") == 0.0 and not np.signbit(rules.exact_key(2.0, 2.0, 2.0, "l2"))
    assert rules.exact_key(1.0, 4.0, 9.0, "l2") == -11.0  # keys are negated distances
    assert np.isnan(rules.exact_key(1.0, np.inf, 1.0, "ip"))
    assert np.isnan(rules.exact_key(1.0, 1.0, np.nan, "cosine"))
    assert np.isnan(rules.exact_key(1.0, 1.0, 2.0 ** 100, "ip"))  # beyond the supported norm


def test_slab_key_orders_nan_last_and_ties_signed_zeros():
    keys = np.array([0.5, np.nan, -0.0, 0.0, -1.0, np.inf, -np.inf], dtype=np.float32)
    slab = np.array([rules.slab_key(float(k)) for k in keys], dtype=np.float32)
    bits = slab.view(np.uint32)
    assert bits[2] == bits[3]  # -0 -> +0: the radix order sees one value
    # CUB's descending float order: flip to an unsigned order as its radix sort does.
    flipped = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    order = np.argsort(-flipped.astype(np.int64), kind="stable")
    assert order[-1] == 1  # NaN last
    np.testing.assert_array_equal(order[:6], [5, 0, 2, 3, 4, 6])


@pytest.mark.parametrize("k", [1, 2, 31, 32, 33, 100, 128])
def test_warp_insert_lane_by_lane_equals_a_stable_top_k(k):
    rng = np.random.default_rng(k)
    keys = rng.integers(-20, 20, 600).astype(np.float32) / 4  # many ties
    indices = rng.permutation(600).astype(np.int64)
    got_keys, got_indices = rules.warp_insert_all(keys, indices, k)
    order = np.lexsort((indices, -keys))[:k]
    np.testing.assert_array_equal(got_keys, keys[order])
    np.testing.assert_array_equal(got_indices, indices[order])


def test_warp_insert_drops_nan_and_keeps_empty_slots():
    keys, indices = rules.warp_insert_all(np.array([np.nan, 1.0, np.nan], np.float32), np.array([0, 1, 2]), 4)
    assert keys[0] == 1.0 and indices[0] == 1
    assert np.isneginf(keys[1:]).all() and (np.asarray(indices[1:]) == np.iinfo(np.int64).max).all()


def test_scans_probe_skips_repeats_and_out_of_range():
    row = np.array([3, -1, 3, 7, 2, 7, 9], dtype=np.int64)
    scanned = [rules.scans_probe(row, j, 8) for j in range(len(row))]
    assert scanned == [True, False, False, True, True, False, False]


def _plan_reference(counts):
    counts = list(counts)
    splits = []
    for empty in range(len(counts)):
        if counts[empty]:
            continue
        largest = int(np.argmax(counts))  # first maximum: the lowest id on ties
        if counts[largest] < 2:
            break
        splits.append((empty, largest))
        counts[empty] = counts[largest] // 2
        counts[largest] -= counts[empty]
    return splits, counts


@pytest.mark.parametrize("counts", [[0, 5, 0, 5], [3, 0, 0, 0, 1], [0, 1, 0], [4, 4, 0, 0, 0, 0], [7]])
def test_split_plan(counts):
    splits, after = rules.plan_splits(counts)
    expected_splits, expected_after = _plan_reference(counts)
    assert [tuple(s) for s in splits] == expected_splits
    assert list(after) == expected_after
    assert sum(after) == sum(counts)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_seeding_distance(metric):
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, c = rng.standard_normal((2, 9))
        dot, xx, cc = float(x @ c), float(x @ x), float(c @ c)
        expected = (xx + cc) - 2 * dot if metric == "l2" else 2 - 2 * dot / np.sqrt(xx * cc)
        assert rules.seeding_distance(dot, xx, cc, metric) == pytest.approx(max(expected, 0.0), abs=1e-12)
    assert rules.seeding_distance(1.0, 1.0, 1.0, "cosine") == 0.0
    assert rules.seeding_distance(2.0, 1.0, 1.0, "l2") == 0.0  # clamped at 0
    assert rules.seeding_distance(0.0, 0.0, 1.0, "cosine") == 2.0  # a zero row: cosine 0


def test_unit_uniform_uses_the_top_53_bits():
    assert rules.unit_uniform(0) == 0.0
    assert rules.unit_uniform(2 ** 64 - 1) == 1 - 2.0 ** -53
    assert rules.unit_uniform(2 ** 63) == 0.5


def test_pick_by_weight_walks_blocks_then_rows():
    rng = np.random.default_rng(1)
    weights = rng.random(10_000) * (rng.random(10_000) < 0.3)
    cumulative = np.cumsum(weights)
    for u in [0.0, 1e-9, 0.25, 0.5, 0.999999, rng.random()]:
        picked = rules.pick_by_weight(weights, u)
        assert weights[picked] > 0
        # the first row whose running sum exceeds u * total (up to the blocked sum's rounding)
        assert abs(cumulative[picked] - u * cumulative[-1]) <= weights[picked] + 1e-9 * cumulative[-1]
    assert rules.pick_by_weight(np.zeros(10), 0.55) == 5  # all rows at a center: uniform
    assert rules.pick_by_weight(np.zeros(10), 0.9999999) == 9


def test_first_not_below_is_a_lower_bound():
    rng = np.random.default_rng(2)
    keys = np.sort(rng.integers(0, 50, 300)).astype(np.int64)
    for target in range(-1, 52):
        assert rules.first_not_below(keys, target) == np.searchsorted(keys, target, side="left")
    assert rules.first_not_below(np.array([], dtype=np.int64), 3) == 0


def test_edge_keys_round_trip_and_self_edges_sort_last():
    n = 1000
    for row, col in [(0, 1), (999, 0), (17, 998), (500, 501)]:
        key = rules.edge_key(row, col, n)
        assert (rules.edge_row(key, n), rules.edge_column(key, n)) == (row, col)
        assert key < rules.edge_key(5, 5, n) == n * n


@pytest.mark.parametrize("width", [1, 5, 129, 700, 1000])
def test_radix_selection_equals_a_stable_sort(width):
    """The large-k path's selection of a slab row's best keys: NaN (as slab_key makes it) last
    as empty slots, ties to the smaller row, signed zeros tied."""
    rng = np.random.default_rng(width)
    keys = (rng.integers(-300, 300, 1000) / 7).astype(np.float32)  # many ties
    keys[rng.choice(1000, 40, replace=False)] = np.float32(-np.nan)
    keys[rng.choice(1000, 5, replace=False)] = np.float32(np.inf)
    keys[keys == 0] = 0.0
    got_keys, got_rows = rules.select_top(keys, width)
    finite = ~np.isnan(keys)
    order = np.lexsort((np.arange(1000), -np.where(finite, keys, -np.inf), ~finite))[:width]
    real = finite[order]
    np.testing.assert_array_equal(np.asarray(got_rows)[real], order[real])
    np.testing.assert_array_equal(np.asarray(got_keys)[real], keys[order][real])
    assert (np.asarray(got_rows)[~real] == np.iinfo(np.int64).max).all()
    assert np.isneginf(np.asarray(got_keys)[~real]).all()


def test_ordered_bits_follow_the_key_order():
    keys = np.array([-np.inf, -3.5, -1e-30, 0.0, 1e-30, 2.0, np.inf], dtype=np.float32)
    selected, _ = rules.select_top(keys, len(keys))
    np.testing.assert_array_equal(selected, keys[::-1])


def test_seeding_random_bits_are_std_mt19937_64():
    # The C++ standard fixes the 10000th output of a default-seeded std::mt19937_64.
    assert int(_core.seeding_random_bits(5489, 10000)[-1]) == 9981545732273789042


@pytest.mark.parametrize("spherical", [True, False])
def test_finish_centroids_splits_empty_clusters_then_normalises(spherical):
    rng = np.random.default_rng(3)
    means = rng.standard_normal((5, 6)).astype(np.float32)
    counts = np.array([0, 7, 0, 3, 0], dtype=np.int64)
    centroids, after = means.copy(), counts.copy()
    splits = _core.finish_centroids_into(_native_capsule(centroids), _native_capsule(after), spherical)
    plan, expected_counts = _plan_reference(counts)
    assert splits == len(plan) and list(after) == expected_counts
    expected = means.astype(np.float64)
    even = np.arange(6) % 2 == 0
    for empty, largest in plan:  # the new half moves up on even coordinates, the split one down
        source = expected[largest].astype(np.float32).astype(np.float64)
        expected[empty] = (source * np.where(even, 1 + 1 / 1024, 1 - 1 / 1024)).astype(np.float32)
        expected[largest] = (source * np.where(even, 1 - 1 / 1024, 1 + 1 / 1024)).astype(np.float32)
    if spherical:
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(centroids, expected, rtol=1e-6)


def _native_capsule(array):
    from clipadapt import _native

    return _native.capsule(array, 0)


def _rounding_probes(format_values):
    """float64 values that test a rounding to a narrower format: every finite value of the
    format, the exact midpoints between neighbours, one float64 step either side of each, and
    random values over the whole range (float64 subnormals, NaN and infinities included)."""
    finite = np.unique(np.abs(format_values[np.isfinite(format_values)]))
    midpoints = (finite[:-1] + finite[1:]) / 2  # exact in float64
    edges = np.concatenate([finite, midpoints, [finite[-1] + (finite[-1] - finite[-2]) / 2]])  # + overflow threshold
    around = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    rng = np.random.default_rng(7)
    spread = rng.standard_normal(200_000) * 2.0 ** rng.integers(-160, 140, 200_000).astype(np.float64)
    special = np.array([0.0, 5e-324, 1e-310, np.inf, 1e300, np.nan])
    values = np.concatenate([around, spread, special])
    return np.concatenate([values, -values])


def _bfloat16_reference(values):
    """Round to nearest even to bfloat16 (8 significant bits, subnormals from 2^-133) in float64
    arithmetic, independently of the C++ bit manipulation; as bfloat16 bit patterns."""
    with np.errstate(over="ignore", invalid="ignore"):
        _, exponent = np.frexp(values)  # |value| = m 2^exponent, 0.5 <= m < 1
        quantum = np.maximum(exponent - 8, -133).astype(np.float64)
        rounded = np.ldexp(np.rint(np.ldexp(values, -quantum.astype(int))), quantum.astype(int))  # np.rint: ties to even
        rounded = np.where(np.isfinite(values) & (np.abs(rounded) >= 2.0 ** 128), np.copysign(np.inf, values), rounded)
        rounded = np.where(np.isfinite(values), rounded, values)
    bits = (rounded.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # exact: rounded has 8 bits
    return np.where(np.isnan(values), (np.signbit(values).astype(np.uint16) << 15) | 0x7fc0, bits)


def test_float16_from_double_is_numpys_single_rounding():
    """numpy's float64 -> float16 astype rounds once, to nearest even: the reference."""
    values = _rounding_probes(np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float64))
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16).view(np.uint16)
    got = rules.float16_from_double(values)
    nan = np.isnan(values)
    np.testing.assert_array_equal(got[~nan], expected[~nan])
    assert np.all((got[nan] & 0x7e00) == 0x7e00)  # a quiet NaN
    # Not through float32: 1 + 2^-11 + 2^-40 lies above the midpoint of 1 and 1 + 2^-10.
    assert rules.float16_from_double(np.array([1 + 2**-11 + 2**-40]))[0] == 0x3c01
    assert np.float16(np.float32(1 + 2**-11 + 2**-40)) == 1.0  # the double rounding it avoids


def test_bfloat16_from_double_rounds_once_to_nearest_even():
    with np.errstate(invalid="ignore"):  # signalling NaNs among the patterns
        all_bfloat16 = (np.arange(2**16, dtype=np.uint32) << 16).view(np.float32).astype(np.float64)
    values = _rounding_probes(all_bfloat16)
    np.testing.assert_array_equal(rules.bfloat16_from_double(values), _bfloat16_reference(values))
    assert rules.bfloat16_from_double(np.array([1 + 2**-8 + 2**-40]))[0] == 0x3f81  # above the midpoint
