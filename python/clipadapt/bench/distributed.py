"""The MUDG index phases on R ranks of a local gloo group (:mod:`clipadapt.distributed`): time and
bytes moved per rank for each R, and a cost model that extrapolates the LAION-2B index to a
multi-node GPU cluster.

Measured: a synthetic paired corpus (:func:`clipadapt.bench.data.synthetic_pairs`, float16 as a
MUDG corpus), split into R contiguous shards, runs each phase of
:func:`clipadapt.distributed.mudg.build_index` in memory plus a search: ``pairing`` (sharded
k-NN, k = 1), ``fetch pairs`` (the paired images from the ranks that hold them), ``paired
k-means``, ``add`` (assign the rank's images, group into lists) and ``search`` (top-64 at
nprobe 8). Every phase starts at a barrier; its time is the slowest rank's, its bytes the most
any rank sent and received through clipadapt's collectives (:func:`clipadapt.distributed.traffic`).
The results of R > 1 are checked against R = 1 (pairing and search ids equal, centroids within
1e-5).

Modelled: :func:`cost_model` (:class:`ClusterAssumptions`: every number it uses, with its
source), per phase compute, communication and I/O time and memory per rank.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipadapt.bench.common import format_table, log, publish_result
from clipadapt.bench.data import synthetic_pairs

DEFAULT_N, DEFAULT_D, DEFAULT_RANKS, DEFAULT_QUERIES = 20_000, 768, (1, 2, 4), 200
PHASES = ("pairing", "fetch pairs", "paired k-means", "add", "search")
K, NPROBE = 64, 8
_MB = 1e6


def run_distributed_benchmark(n: int = DEFAULT_N, d: int = DEFAULT_D, clusters: int | None = None, *,
                              iters: int = 10, ranks: tuple[int, ...] = DEFAULT_RANKS, threads: int = 2,
                              n_queries: int = DEFAULT_QUERIES, seed: int = 0,
                              json_path: str | Path | None = None) -> dict[str, Any]:
    """Run the phases on each group size in ``ranks`` (``threads // R`` kernel threads per rank,
    at least 1), print the table and the cost model, and return (and write) the result.

    Returns:
        ``{"benchmark", "date", "command", "parameters", "machine", "rows", "cost_model"}``;
        each row is one (ranks, phase): ``ranks, threads_per_rank, phase, status, seconds,
        sent_mb, received_mb, speedup`` (vs one rank), and for R > 1 ``equal_to_one_rank``.
    """
    from clipadapt.distributed.local import results, run_local_group
    from clipadapt.mudg.index import default_n_clusters

    clusters = default_n_clusters(n) if clusters is None else clusters
    if not 1 <= clusters <= n or n < K:
        raise ValueError(f"n, clusters: need n >= {K} and 1 <= clusters <= n, got n={n}, clusters={clusters}")
    rows, baseline = [], None
    for world_size in ranks:
        per_rank = max(1, threads // world_size)
        log(f"distributed: {world_size} rank(s), {per_rank} thread(s) each, n={n}, d={d}, K={clusters}")
        outcomes = results(run_local_group(world_size, measure_phases, n, d, clusters, iters, n_queries, seed,
                                           threads=per_rank, timeout=600))
        baseline = baseline or outcomes
        rows += _rows(world_size, per_rank, outcomes, baseline)
    parameters = {"n": n, "d": d, "clusters": clusters, "iters": iters, "ranks": list(ranks), "threads": threads,
                  "n_queries": n_queries, "k": K, "nprobe": min(NPROBE, clusters), "seed": seed, "dtype": "float16",
                  "backend": "gloo (loopback)"}
    return publish_result("distributed", parameters, threads, {"rows": rows, "cost_model": cost_model()},
                          format_distributed_table, json_path)


def measure_phases(rank: int, world_size: int, n: int, d: int, clusters: int, iters: int, n_queries: int,
                   seed: int) -> dict[str, Any]:
    """One rank's phases (run by :func:`clipadapt.distributed.local.run_local_group`): per phase
    ``(seconds, bytes sent, bytes received)``, and what R = 1 is compared with."""
    import torch.distributed as dist

    import clipadapt.distributed as cd
    from clipadapt.ivf import IVFIndex
    from clipadapt.clustering import assign

    data = synthetic_pairs(n, d, seed=seed)
    bounds = np.linspace(0, n, world_size + 1).round().astype(np.int64)
    rows = np.arange(bounds[rank], bounds[rank + 1])
    images, captions = (array[rows].astype(np.float16) for array in (data.images, data.captions))
    queries = np.array_split(synthetic_pairs(n_queries, d, seed=seed, split=1).captions.astype(np.float16),
                             world_size)[rank]
    measured: dict[str, Any] = {}

    def phase(name: str, work):
        dist.barrier()
        before, start = cd.traffic(), time.perf_counter()
        value = work()
        seconds, after = time.perf_counter() - start, cd.traffic()
        measured[name] = (seconds, after.sent - before.sent, after.received - before.received)
        return value

    pairing = phase("pairing", lambda: cd.knn(captions, images, 1, metric="ip")[1][:, 0])
    paired = phase("fetch pairs", lambda: cd.take_rows(images, pairing))
    result = phase("paired k-means", lambda: cd.paired_kmeans(paired, captions, clusters, max_iter=iters, metric="ip",
                                                              init="random", seed=seed))
    quantiser = result.centroids.astype(np.float16)
    index = phase("add", lambda: cd.ShardedIVFIndex.from_local(
        IVFIndex.from_lists(result.centroids, images, assign(images, quantiser, metric="ip")[1], rows, metric="ip")
        if len(rows) else IVFIndex(result.centroids, metric="ip")))
    found = phase("search", lambda: index.search(queries, K, min(NPROBE, clusters))[1])
    return {"phases": measured, "pairing": pairing, "centroids": result.centroids, "found": found}


def _rows(world_size: int, per_rank: int, outcomes: list[dict[str, Any]],
          baseline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per phase: the slowest rank's time, the most bytes any rank moved."""
    equal = {"pairing": _same(outcomes, baseline, "pairing"), "search": _same(outcomes, baseline, "found"),
             "paired k-means": float(np.abs(outcomes[0]["centroids"] - baseline[0]["centroids"]).max()) <= 1e-5}
    rows = []
    for name in PHASES:
        seconds, sent, received = (max(outcome["phases"][name][i] for outcome in outcomes) for i in range(3))
        alone = max(outcome["phases"][name][0] for outcome in baseline)
        rows.append({"ranks": world_size, "threads_per_rank": per_rank, "phase": name, "status": "ok",
                     "seconds": seconds, "sent_mb": sent / _MB, "received_mb": received / _MB,
                     "speedup": alone / seconds if seconds else None,
                     "equal_to_one_rank": equal.get(name) if world_size > 1 else None})
    return rows


def _same(outcomes: list[dict[str, Any]], baseline: list[dict[str, Any]], key: str) -> bool:
    return np.array_equal(np.concatenate([o[key] for o in outcomes]), np.concatenate([o[key] for o in baseline]))


@dataclass(frozen=True)
class ClusterAssumptions:
    """Every number :func:`cost_model` uses. Defaults: the MUDG LAION-2B index as released
    (paired k-means trained on a 20M subset, every image added) on 8 nodes x 8 H100 SXM."""

    images: int = 2_170_337_258  # LAION-2B-en ViT-L/14 image embeddings added to the index
    train_pairs: int = 20_000_000  # the released pairing and paired k-means use a 20M subset
    dim: int = 768
    value_bytes: int = 2  # float16 rows
    lists: int = 131_072
    iterations: int = 10
    nodes: int = 8
    gpus_per_node: int = 8
    # H100 SXM dense float16/bfloat16 tensor-core peak (NVIDIA's data sheet, without sparsity).
    peak_tflops: float = 989.0
    # Fraction of that peak clipadapt's WMMA k-NN tiles sustain: an assumption until measured
    # (clipadapt bench knn --device cuda --dtype float16 on an H100).
    kernel_efficiency: float = 0.30
    # One 400 Gb/s NDR InfiniBand NIC per GPU, at 80% in NCCL: the ring and the all-to-alls
    # cross nodes, so every exchange runs at the inter-node rate (NVLink, 450 GB/s per direction,
    # is never the bottleneck).
    network_gb_per_s: float = 40.0
    host_to_gpu_gb_per_s: float = 25.0  # PCIe Gen5 x16, 8 GPUs sharing the hosts' memory
    read_gb_per_s_per_node: float = 10.0  # embeddings read from local NVMe or a parallel file system
    write_gb_per_s_per_node: float = 5.0  # IVF parts written
    gpu_memory_gb: float = 80.0


def cost_model(assumptions: ClusterAssumptions = ClusterAssumptions()) -> dict[str, Any]:
    """Seconds, bytes and memory per rank of each phase of the sharded MUDG index, from
    ``assumptions``: compute at ``peak * efficiency`` per GPU, exchanges at the network rate
    (the ring's transfers overlap its compute), reads and writes at the per-node rates. Also
    the exact pairing of every image, which the released recipe avoids."""
    a = assumptions
    gpus = a.nodes * a.gpus_per_node
    rate = a.peak_tflops * 1e12 * a.kernel_efficiency * gpus  # FLOP/s of the cluster
    row_bytes = a.dim * a.value_bytes
    share = (gpus - 1) / gpus  # of every exchanged tensor, the part a rank sends away

    def pairing(pairs: int) -> dict[str, Any]:
        flops = 2.0 * pairs * pairs * a.dim
        ring_bytes = pairs * row_bytes * share
        shard_gb = pairs / gpus * row_bytes / 1e9
        return {"flops": flops, "compute_s": flops / rate, "bytes_per_rank": ring_bytes,
                "communication_s": ring_bytes / (a.network_gb_per_s * 1e9), "overlapped": True,
                "gpu_memory_gb": 3 * shard_gb, "fits": 3 * shard_gb < a.gpu_memory_gb,
                "seconds": max(flops / rate, ring_bytes / (a.network_gb_per_s * 1e9))}

    assign_flops = 2.0 * a.train_pairs * a.lists * a.dim
    fetch_bytes = a.train_pairs / gpus * row_bytes * share
    reduce_bytes = 2 * share * a.lists * a.dim * 8  # float64 partial sums: all-to-all + all-gather
    kmeans_compute = (a.iterations + 1) * assign_flops / rate
    kmeans_communication = (fetch_bytes + a.iterations * reduce_bytes) / (a.network_gb_per_s * 1e9)
    add_flops = 2.0 * a.images * a.lists * a.dim
    read_s = a.images * row_bytes / a.nodes / (a.read_gb_per_s_per_node * 1e9)
    copy_s = a.images / gpus * row_bytes / (a.host_to_gpu_gb_per_s * 1e9)
    stored = a.images * (row_bytes + 16)  # rows, int64 ids and list numbers
    write_s = stored / a.nodes / (a.write_gb_per_s_per_node * 1e9)
    kmeans_memory = a.train_pairs / gpus * 2 * row_bytes + a.lists * a.dim * (4 + 8 + 8)  # rows, centroids, sums
    phases = {
        "pairing": pairing(a.train_pairs),
        "paired k-means": {"flops": (a.iterations + 1) * assign_flops, "compute_s": kmeans_compute,
                           "bytes_per_rank": fetch_bytes + a.iterations * reduce_bytes,
                           "communication_s": kmeans_communication,
                           "gpu_memory_gb": kmeans_memory / 1e9,
                           "seconds": kmeans_compute + kmeans_communication},
        "add": {"flops": add_flops, "compute_s": add_flops / rate, "bytes_per_rank": 0, "read_s": read_s,
                "host_to_gpu_s": copy_s, "write_s": write_s,
                "host_memory_gb_per_node": 2 * a.images * row_bytes / a.nodes / 1e9,
                "seconds": max(add_flops / rate, read_s, copy_s) + write_s},
    }
    total = sum(phase["seconds"] for phase in phases.values())
    return {"assumptions": asdict(a), "gpus": gpus, "cluster_tflops": rate / 1e12, "phases": phases,
            "total_seconds": total, "goal_seconds": 7200, "meets_goal": total < 7200,
            "exact_pairing_of_every_image": pairing(a.images)}


def format_distributed_table(result: dict[str, Any]) -> str:
    """The measured table (one line per ranks x phase), then the cost model."""
    p = result["parameters"]
    title = (f"MUDG index phases on a local {p['backend']} group: n={p['n']} pairs, d={p['d']}, K={p['clusters']}, "
             f"{p['iters']} iterations, {p['n_queries']} queries top-{p['k']} at nprobe {p['nprobe']}, "
             f"{p['dtype']}, {p['threads']} threads in all")
    headers = ["ranks", "threads/rank", "phase", "seconds", "MB sent/rank", "MB received/rank", "speedup",
               "= 1 rank"]
    lines = [[str(row["ranks"]), str(row["threads_per_rank"]), row["phase"], f"{row['seconds']:.3f}",
              f"{row['sent_mb']:.2f}", f"{row['received_mb']:.2f}",
              "-" if row["speedup"] is None else f"{row['speedup']:.2f}",
              "-" if row["equal_to_one_rank"] is None else ("yes" if row["equal_to_one_rank"] else "NO")]
             for row in result["rows"]]
    legend = ("seconds: the slowest rank, from a barrier; MB: the most any rank sent / received through clipadapt's "
              "collectives; = 1 rank: pairing and search ids equal, centroids within 1e-5")
    return "\n".join([title, format_table(headers, lines, align="rrlrrrrl"), legend, "",
                      format_cost_model(result["cost_model"])])


def format_cost_model(model: dict[str, Any]) -> str:
    """The cost model as text: assumptions, then per phase time, traffic and memory."""
    a = model["assumptions"]
    exact = model["exact_pairing_of_every_image"]
    lines = [f"Cost model: the MUDG index of {a['images']:,} images (pairing and {a['iterations']} paired k-means "
             f"iterations on {a['train_pairs']:,} pairs, K={a['lists']:,}, d={a['dim']}, float16) on "
             f"{a['nodes']} nodes x {a['gpus_per_node']} GPUs",
             f"  assumed: {a['peak_tflops']:.0f} TFLOP/s fp16 peak x {a['kernel_efficiency']:.0%} = "
             f"{model['cluster_tflops'] / model['gpus']:.0f} TFLOP/s per GPU; {a['network_gb_per_s']:.0f} GB/s "
             f"per GPU across nodes; {a['host_to_gpu_gb_per_s']:.0f} GB/s host->GPU; read "
             f"{a['read_gb_per_s_per_node']:.0f} GB/s, write {a['write_gb_per_s_per_node']:.0f} GB/s per node"]
    for name, phase in model["phases"].items():
        parts = [f"{phase['flops']:.2e} FLOP -> {phase['compute_s']:.1f} s compute"]
        if phase.get("bytes_per_rank"):
            parts.append(f"{phase['bytes_per_rank'] / 1e9:.2f} GB/rank moved -> {phase['communication_s']:.2f} s"
                         + (" (overlapped)" if phase.get("overlapped") else ""))
        if "read_s" in phase:
            parts.append(f"read {phase['read_s']:.0f} s, host->GPU {phase['host_to_gpu_s']:.1f} s, write "
                         f"{phase['write_s']:.0f} s, {phase['host_memory_gb_per_node']:.0f} GB host memory/node")
        if "gpu_memory_gb" in phase:
            parts.append(f"{phase['gpu_memory_gb']:.1f} GB GPU memory/rank")
        lines.append(f"  {name}: {phase['seconds']:.0f} s = " + "; ".join(parts))
    verdict = "meets" if model["meets_goal"] else "misses"
    lines.append(f"  total: {model['total_seconds']:.0f} s ({model['total_seconds'] / 3600:.2f} h): {verdict} the "
                 f"{model['goal_seconds'] / 3600:.0f} h goal")
    lines.append(f"  exact pairing of all {a['images']:,} images instead: {exact['flops']:.2e} FLOP -> "
                 f"{exact['seconds'] / 3600:.0f} h, ring shards of {exact['gpu_memory_gb'] / 3:.0f} GB per GPU"
                 f"{'' if exact['fits'] else ' (3 do not fit in GPU memory)'}: out of reach")
    return "\n".join(lines)
