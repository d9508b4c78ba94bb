"""IVFIndex search on caller-chosen probe lists (the kernel's own input), for the CPU and GPU tests."""
from __future__ import annotations

from clipadapt import _native
from clipadapt._native import _core


def ivf_search_with_probes(index, queries, k, probes):
    """IVFIndex.search with given probes [nq, nprobe] (int64, the queries' device)."""
    q = _native.as_input(queries, "queries")
    scores = _native.empty(q, (q.shape[0], k), "float32")
    indices = _native.empty(q, (q.shape[0], k), "int64")
    stream = _native.current_stream(q)
    capsule = _native.capsule
    _core.ivf_search_into(capsule(q.value, stream), capsule(index._vectors.value, stream),
                          capsule(index._ids, stream), capsule(index._offsets, stream), capsule(probes, stream), k,
                          index.metric, capsule(scores, stream), capsule(indices, stream), stream)
    return scores, indices
