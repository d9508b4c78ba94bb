"""``clipadapt bench knn|lp|kmeans|ivf|reclip-lp|mudg-index|distributed``: the benchmarks against their baselines.

The benchmark modules (:mod:`clipadapt.bench`) are imported when this command is set up, their
baselines (faiss, scikit-learn, torch, ...) only when a benchmark runs.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipadapt.device import cuda_available

_KNN_JSON = "bench-results/knn-{device}-n{n}-d{d}-k{k}.json"
_LP_JSON = "bench-results/lp-{device}-n{n}-c{classes}-d{d}.json"
_KMEANS_JSON = "bench-results/kmeans-{device}-n{n}-d{d}-k{clusters}.json"
_IVF_JSON = "bench-results/ivf-{device}-n{n}-d{d}-k{clusters}.json"
_RECLIP_LP_JSON = "bench-results/reclip-lp-{device}-m{m}-c{classes}.json"
_MUDG_INDEX_JSON = "bench-results/mudg-index-{device}-n{n}-d{d}-k{clusters}.json"
_DISTRIBUTED_JSON = "bench-results/distributed-cpu-n{n}-d{d}-k{clusters}.json"


def add_arguments(bench: argparse.ArgumentParser) -> None:
    """Give ``bench`` its benchmarks; ``args.run(args)`` runs the one named, or all of them at
    their small defaults. Each benchmark's parser's defaults hold ``benchmark(args, that_parser)
    -> exit code``."""
    from clipadapt.bench.knn import DEFAULT_D, DEFAULT_K, DEFAULT_N, DEVICES, DTYPES, FAMILIES

    benchmarks = bench.add_subparsers(dest="benchmark", metavar="{knn,lp,kmeans,ivf,reclip-lp,mudg-index,distributed}")
    knn = benchmarks.add_parser("knn", help="exact k-NN graph: clipadapt vs faiss, scikit-learn and torch")
    knn.add_argument("--n", type=int, default=DEFAULT_N, help="rows of synthetic CLIP-like data")
    knn.add_argument("--d", type=int, default=DEFAULT_D, help="embedding dimension")
    knn.add_argument("--k", type=_int_list, default=[DEFAULT_K], help="neighbours; a comma list (10,100) runs each")
    knn.add_argument("--threads", type=int, default=2, help="CPU threads of every library")
    knn.add_argument("--seed", type=int, default=0, help="seed of the data and of the oracle's query rows")
    knn.add_argument("--dtype", choices=DTYPES, default="float32", help="input dtype")
    knn.add_argument("--device", choices=DEVICES, default=None, help="default: cuda when usable, else cpu")
    knn.add_argument("--methods", type=_name_list, default=None,
                     help=f"comma list of {','.join(FAMILIES)} (default: all; sklearn only up to n=50000)")
    knn.add_argument("--oracle-queries", type=int, default=1000, help="rows checked against the float64 oracle")
    knn.add_argument("--repeats", type=int, default=1, help="timed runs per method (the fastest is reported)")
    knn.add_argument("--json", default=_KNN_JSON,
                     help="result file; {device}, {n}, {d}, {k} and {dtype} are filled in")
    knn.set_defaults(benchmark_run=_run_knn)
    _add_lp_parser(benchmarks)
    _add_kmeans_parser(benchmarks)
    _add_ivf_parser(benchmarks)
    _add_reclip_lp_parser(benchmarks)
    _add_mudg_index_parser(benchmarks)
    _add_distributed_parser(benchmarks)
    bench.set_defaults(run=functools.partial(_run_benchmarks, dict(benchmarks.choices)))


def _run_benchmarks(benchmarks: dict[str, argparse.ArgumentParser], args: argparse.Namespace) -> int:
    """The benchmark ``args`` names, or (plain ``clipadapt bench``) every benchmark at its small defaults."""
    if args.benchmark is None:
        runs = [(benchmark.parse_args([]), benchmark) for benchmark in benchmarks.values()]
    else:
        runs = [(args, benchmarks[args.benchmark])]
    return max(run_args.benchmark_run(run_args, benchmark) for run_args, benchmark in runs)


def _add_lp_parser(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``bench lp``: label propagation, clipadapt vs the scipy ReCLIP recipe, torch and cupy."""
    from clipadapt.bench.lp import DEFAULT_CLASSES, DEFAULT_D, DEFAULT_N, DEFAULT_NOISE, DEVICES

    lp = benchmarks.add_parser("lp", help="label propagation: clipadapt vs the scipy ReCLIP recipe, torch and cupy")
    lp.add_argument("--n", type=_int_list, default=[DEFAULT_N],
                    help="graph nodes (C text + n - C image); a comma list (10000,100000) runs each")
    lp.add_argument("--classes", type=_int_list, default=[DEFAULT_CLASSES],
                    help="classes C, one labelled text node each; a comma list runs each")
    lp.add_argument("--d", type=int, default=DEFAULT_D, help="embedding dimension")
    lp.add_argument("--noise", type=float, default=DEFAULT_NOISE, help="noise of the synthetic image nodes")
    lp.add_argument("--threads", type=int, default=2, help="CPU threads of every library")
    lp.add_argument("--seed", type=int, default=0, help="seed of the data")
    lp.add_argument("--device", choices=DEVICES, default=None,
                    help="where the graph is built; cuda also runs the CUDA methods (default: cuda when usable)")
    lp.add_argument("--repeats", type=int, default=1, help="timed runs per method and phase (the fastest is reported)")
    lp.add_argument("--json", default=_LP_JSON, help="result file; {device}, {n}, {classes} and {d} are filled in")
    lp.set_defaults(benchmark_run=_run_lp)


def _add_kmeans_parser(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``bench kmeans``: spherical k-means, clipadapt vs faiss, torch and flash-kmeans."""
    from clipadapt.bench.kmeans import DEFAULT_CLUSTERS, DEFAULT_D, DEFAULT_ITERS, DEFAULT_N, DEVICES, FAMILIES

    kmeans = benchmarks.add_parser("kmeans", help="spherical k-means: clipadapt vs faiss, torch and flash-kmeans")
    kmeans.add_argument("--n", type=_int_list, default=[DEFAULT_N],
                        help="rows of synthetic CLIP-like data; a comma list runs each")
    kmeans.add_argument("--d", type=_int_list, default=[DEFAULT_D], help="embedding dimension; a comma list runs each")
    kmeans.add_argument("--clusters", type=_int_list, default=[DEFAULT_CLUSTERS],
                        help="clusters K; a comma list runs each")
    kmeans.add_argument("--iters", type=int, default=DEFAULT_ITERS, help="Lloyd iterations of every method")
    kmeans.add_argument("--threads", type=int, default=2, help="CPU threads of every library")
    kmeans.add_argument("--seed", type=int, default=0, help="seed of the data and of the initial centroids")
    kmeans.add_argument("--device", choices=DEVICES, default=None, help="default: cuda when usable, else cpu")
    kmeans.add_argument("--methods", type=_name_list, default=None,
                        help=f"comma list of {','.join(FAMILIES)} (default: all)")
    kmeans.add_argument("--json", default=_KMEANS_JSON,
                        help="result file; {device}, {n}, {d} and {clusters} are filled in")
    kmeans.set_defaults(benchmark_run=_run_kmeans)


def _add_ivf_parser(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``bench ivf``: text-query recall of IVF lists from paired k-means, k-means and faiss."""
    from clipadapt.bench.ivf import (DEFAULT_CLASSES, DEFAULT_CLUSTERS, DEFAULT_D, DEFAULT_GAP, DEFAULT_ITERS,
                                     DEFAULT_N, DEFAULT_NOISE, DEFAULT_NPROBES, DEFAULT_QUERIES, DEVICES)

    ivf = benchmarks.add_parser("ivf", help="IVF on paired data: text-query recall of lists from paired k-means, "
                                "k-means and faiss")
    ivf.add_argument("--n", type=_int_list, default=[DEFAULT_N],
                     help="paired items in the database; a comma list runs each")
    ivf.add_argument("--d", type=_int_list, default=[DEFAULT_D], help="embedding dimension; a comma list runs each")
    ivf.add_argument("--clusters", type=_int_list, default=[DEFAULT_CLUSTERS],
                     help="inverted lists K (about n / 150); a comma list runs each")
    ivf.add_argument("--iters", type=int, default=DEFAULT_ITERS, help="k-means iterations of every index")
    ivf.add_argument("--nprobe", type=_int_list, default=list(DEFAULT_NPROBES),
                     help="lists probed per query, a comma list (values above K are left out)")
    ivf.add_argument("--n-queries", type=int, default=DEFAULT_QUERIES, help="held-out captions searched")
    ivf.add_argument("--classes", type=int, default=DEFAULT_CLASSES, help="classes of the synthetic items")
    ivf.add_argument("--gap", type=float, default=DEFAULT_GAP, help="length of the image modality gap vector")
    ivf.add_argument("--noise", type=float, default=DEFAULT_NOISE,
                     help="noise of each item around its class and of image and caption around their item")
    ivf.add_argument("--images", default=None, help="real features instead: float32 .npy of images [n, d] "
                     "(with --captions, paired row by row, and --queries; --n, --d and the data options are ignored)")
    ivf.add_argument("--captions", default=None, help="float32 .npy of the captions [n, d] paired with --images")
    ivf.add_argument("--queries", default=None, help="float32 .npy of the text queries [nq, d]")
    ivf.add_argument("--threads", type=int, default=2, help="CPU threads of every library")
    ivf.add_argument("--seed", type=int, default=0, help="seed of the data and of every k-means initialisation")
    ivf.add_argument("--device", choices=DEVICES, default=None, help="default: cuda when usable, else cpu")
    ivf.add_argument("--repeats", type=int, default=1, help="timed runs of each search (the fastest is reported)")
    ivf.add_argument("--json", default=_IVF_JSON, help="result file; {device}, {n}, {d} and {clusters} are filled in")
    ivf.set_defaults(benchmark_run=_run_ivf)


def _add_reclip_lp_parser(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``bench reclip-lp``: ReCLIP's pseudo-labelling step, clipadapt vs the dense released recipe."""
    from clipadapt.bench.lp import DEFAULT_NOISE
    from clipadapt.bench.reclip_lp import DEFAULT_CLASSES, DEFAULT_D, DEFAULT_M, DEVICES

    reclip_lp = benchmarks.add_parser("reclip-lp", help="ReCLIP pseudo labels (projection + graph + propagation): "
                                      "clipadapt vs the dense released recipe, time and peak memory")
    reclip_lp.add_argument("--m", type=_int_list, default=[DEFAULT_M],
                           help="nodes M (C text + M - C image); a comma list (10000,51000) runs each")
    reclip_lp.add_argument("--classes", type=_int_list, default=[DEFAULT_CLASSES],
                           help="classes C, one text node each; a comma list runs each")
    reclip_lp.add_argument("--d", type=int, default=DEFAULT_D, help="embedding dimension")
    reclip_lp.add_argument("--noise", type=float, default=DEFAULT_NOISE, help="noise of the synthetic image nodes")
    reclip_lp.add_argument("--threads", type=int, default=2, help="CPU threads of every library")
    reclip_lp.add_argument("--seed", type=int, default=0, help="seed of the data")
    reclip_lp.add_argument("--device", choices=DEVICES, default=None,
                           help="where the nodes live: clipadapt runs there, the recipe projects there and does the "
                           "rest on the CPU (default: cuda when usable)")
    reclip_lp.add_argument("--no-cubic-degree", dest="cubic_degree", action="store_false",
                           help="the recipe's degrees by row sums and S by broadcasting, instead of the released "
                           "W @ ones(M, M) and D @ (W @ D), O(M^3) matmuls (cubic degree: %(default)s unless given)")
    reclip_lp.add_argument("--json", default=_RECLIP_LP_JSON,
                           help="result file; {device}, {m}, {classes} and {d} are filled in")
    reclip_lp.set_defaults(benchmark_run=_run_reclip_lp)


def _add_mudg_index_parser(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``bench mudg-index``: the MUDG source index build, paired vs standard k-means."""
    from clipadapt.bench.mudg_index import DEFAULT_D, DEFAULT_N, DEFAULT_NPROBES, DEFAULT_QUERIES, DEVICES
    from clipadapt.mudg.index import DEFAULT_MAX_ITER

    mudg_index = benchmarks.add_parser("mudg-index", help="MUDG source index: pairing + paired k-means + IVF build of "
                                       "a synthetic corpus, time per phase and text-query recall, paired vs standard "
                                       "k-means")
    mudg_index.add_argument("--n", type=int, default=DEFAULT_N, help="image-caption pairs in the synthetic corpus")
    mudg_index.add_argument("--d", type=int, default=DEFAULT_D, help="embedding dimension")
    mudg_index.add_argument("--clusters", type=int, default=None, help="inverted lists K (None: n / 150, as build_index)")
    mudg_index.add_argument("--iters", type=int, default=DEFAULT_MAX_ITER, help="k-means iterations")
    mudg_index.add_argument("--nprobe", type=_int_list, default=list(DEFAULT_NPROBES),
                            help="lists probed per query, a comma list (values above K are left out)")
    mudg_index.add_argument("--n-queries", type=int, default=DEFAULT_QUERIES, help="held-out captions searched")
    mudg_index.add_argument("--threads", type=int, default=2, help="CPU threads")
    mudg_index.add_argument("--seed", type=int, default=0, help="seed of the data and of the k-means initialisation")
    mudg_index.add_argument("--device", choices=DEVICES, default=None, help="default: cuda when usable, else cpu")
    mudg_index.add_argument("--work-dir", default=None,
                            help="where the corpus and indexes are written (None: a temporary directory, removed "
                            "afterwards)")
    mudg_index.add_argument("--json", default=_MUDG_INDEX_JSON,
                            help="result file; {device}, {n}, {d} and {clusters} are filled in")
    mudg_index.set_defaults(benchmark_run=_run_mudg_index)


def _add_distributed_parser(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``bench distributed``: the MUDG index phases on 1, 2, 4 local gloo ranks, and the cost model."""
    from clipadapt.bench.distributed import DEFAULT_D, DEFAULT_N, DEFAULT_QUERIES, DEFAULT_RANKS

    distributed = benchmarks.add_parser("distributed", help="MUDG index phases (pairing, paired k-means, add, "
                                        "search) on R local gloo ranks: time and bytes moved per rank, and a cost "
                                        "model of the LAION-2B index on 8 nodes x 8 H100")
    distributed.add_argument("--n", type=int, default=DEFAULT_N, help="image-caption pairs (synthetic, float16)")
    distributed.add_argument("--d", type=int, default=DEFAULT_D, help="embedding dimension")
    distributed.add_argument("--clusters", type=int, default=None, help="inverted lists K (None: n / 150)")
    distributed.add_argument("--iters", type=int, default=10, help="paired k-means iterations")
    distributed.add_argument("--ranks", type=_int_list, default=list(DEFAULT_RANKS),
                             help="group sizes R, a comma list; each rank gets threads // R threads (at least 1)")
    distributed.add_argument("--threads", type=int, default=2, help="CPU threads of all ranks together")
    distributed.add_argument("--n-queries", type=int, default=DEFAULT_QUERIES, help="held-out captions searched")
    distributed.add_argument("--seed", type=int, default=0, help="seed of the data and of the k-means initialisation")
    distributed.add_argument("--json", default=_DISTRIBUTED_JSON,
                             help="result file; {n}, {d} and {clusters} are filled in")
    distributed.set_defaults(benchmark_run=_run_distributed, device="cpu")


def _run_distributed(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench distributed``: one run over every --ranks value."""
    from clipadapt.bench.distributed import run_distributed_benchmark
    from clipadapt.mudg.index import default_n_clusters

    clusters = default_n_clusters(args.n) if args.clusters is None else args.clusters
    if not args.ranks or min(args.ranks) < 1:
        return _usage_error(parser, f"--ranks: need group sizes >= 1, got {args.ranks}")

    def run(device: str, json_path: str, n: int, d: int, clusters: int) -> dict[str, Any]:
        return run_distributed_benchmark(n, d, clusters, iters=args.iters, ranks=tuple(args.ranks),
                                         threads=args.threads, n_queries=args.n_queries, seed=args.seed,
                                         json_path=json_path)

    return _run_grid(args, parser, {"n": [args.n], "d": [args.d], "clusters": [clusters]}, run)


def _run_knn(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench knn``: one benchmark per value of ``--k``."""
    from clipadapt.bench.knn import run_knn_benchmark

    def run(device: str, json_path: str, k: int) -> dict[str, Any]:
        return run_knn_benchmark(args.n, args.d, k, threads=args.threads, seed=args.seed, methods=args.methods,
                                 dtype=args.dtype, device=device, oracle_queries=args.oracle_queries,
                                 repeats=args.repeats, json_path=json_path)

    return _run_grid(args, parser, {"k": args.k}, run, n=args.n, d=args.d, dtype=args.dtype)


def _run_lp(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench lp``: one benchmark per (--n, --classes) pair."""
    from clipadapt.bench.lp import run_lp_benchmark

    def run(device: str, json_path: str, n: int, classes: int) -> dict[str, Any]:
        return run_lp_benchmark(n, classes, args.d, noise=args.noise, threads=args.threads, seed=args.seed,
                                device=device, repeats=args.repeats, json_path=json_path)

    return _run_grid(args, parser, {"n": args.n, "classes": args.classes}, run, d=args.d)


def _run_reclip_lp(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench reclip-lp``: one benchmark per (--m, --classes) pair."""
    from clipadapt.bench.reclip_lp import run_reclip_lp_benchmark

    def run(device: str, json_path: str, m: int, classes: int) -> dict[str, Any]:
        return run_reclip_lp_benchmark(m, classes, args.d, noise=args.noise, threads=args.threads, seed=args.seed,
                                       device=device, cubic_degree=args.cubic_degree, json_path=json_path)

    return _run_grid(args, parser, {"m": args.m, "classes": args.classes}, run, d=args.d)


def _run_kmeans(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench kmeans``: one benchmark per (--n, --d, --clusters) combination."""
    from clipadapt.bench.kmeans import run_kmeans_benchmark

    def run(device: str, json_path: str, n: int, d: int, clusters: int) -> dict[str, Any]:
        return run_kmeans_benchmark(n, d, clusters, iters=args.iters, threads=args.threads, seed=args.seed,
                                    methods=args.methods, device=device, json_path=json_path)

    return _run_grid(args, parser, {"n": args.n, "d": args.d, "clusters": args.clusters}, run)


def _run_ivf(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench ivf``: one benchmark per (--n, --d, --clusters) combination, or per
    --clusters on the features of --images, --captions and --queries."""
    from clipadapt.bench.ivf import corpus_from_files, run_ivf_benchmark, synthetic_corpus

    files = (args.images, args.captions, args.queries)
    if any(files) and not all(files):
        return _usage_error(parser, "--images, --captions and --queries go together")
    if all(files):
        n, d = _npy_shape(args.images)
        grid = {"n": [n], "d": [d], "clusters": args.clusters}
    else:
        grid = {"n": args.n, "d": args.d, "clusters": args.clusters}

    def run(device: str, json_path: str, n: int, d: int, clusters: int) -> dict[str, Any]:
        corpus = (corpus_from_files(*files) if all(files) else
                  synthetic_corpus(n, d, args.n_queries, n_classes=args.classes, gap=args.gap, noise=args.noise,
                                   seed=args.seed))
        return run_ivf_benchmark(corpus, clusters, iters=args.iters, nprobes=args.nprobe, threads=args.threads,
                                 seed=args.seed, device=device, repeats=args.repeats, json_path=json_path)

    return _run_grid(args, parser, grid, run)


def _run_mudg_index(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench mudg-index``: one benchmark."""
    from clipadapt.bench.mudg_index import run_mudg_index_benchmark
    from clipadapt.mudg.index import default_n_clusters

    clusters = default_n_clusters(args.n) if args.clusters is None else args.clusters

    def run(device: str, json_path: str, n: int, d: int, clusters: int) -> dict[str, Any]:
        return run_mudg_index_benchmark(n, d, clusters, iters=args.iters, nprobes=args.nprobe,
                                        n_queries=args.n_queries, threads=args.threads, seed=args.seed, device=device,
                                        work_dir=args.work_dir, json_path=json_path)

    return _run_grid(args, parser, {"n": [args.n], "d": [args.d], "clusters": [clusters]}, run)


def _npy_shape(path: str) -> tuple[int, ...]:
    """The array shape in a ``.npy`` file's header (the data are not read)."""
    import numpy as np

    return np.load(path, mmap_mode="r").shape


def _run_grid(args: argparse.Namespace, parser: argparse.ArgumentParser, grid: dict[str, list[Any]],
              run: Callable[..., dict[str, Any]], **fixed: Any) -> int:
    """Call ``run(device=, json_path=, **values)`` once per combination of the ``grid`` values,
    the ``--json`` path filled in from the device, the values and ``fixed``. Returns 2 on a bad
    argument (``--device``, a path that several runs would share, a ValueError of a run), 1
    when a method failed, else 0."""
    try:
        device = _bench_device(args.device)
        combinations = [dict(zip(grid, combination)) for combination in itertools.product(*grid.values())]
        json_paths = _json_paths(args.json, [{"device": device, **values, **fixed} for values in combinations])
    except ValueError as error:
        return _usage_error(parser, str(error))
    for name, values in grid.items():
        if len(values) > 1 and f"{{{name}}}" not in args.json:
            return _usage_error(parser, f"--json: with several --{name} values the path needs a {{{name}}} "
                                "placeholder")
    failed = False
    for values, json_path in zip(combinations, json_paths):
        try:
            result = run(device=device, json_path=json_path, **values)
        except ValueError as error:
            return _usage_error(parser, str(error))
        failed |= _any_failed(result)
    return 1 if failed else 0


def _json_paths(pattern: str, fields: list[dict[str, Any]]) -> list[str]:
    """``--json`` filled in with each of ``fields``, checked before any benchmark runs (the
    file is written at the end of a run that may take long).

    Raises:
        ValueError: the pattern is malformed or names another placeholder, or a path is a
            directory or lies under a file.
    """
    names = ", ".join(f"{{{name}}}" for name in fields[0])
    try:
        paths = [pattern.format(**values) for values in fields]
    except KeyError as error:
        raise ValueError(f"--json: {pattern!r} has the placeholder {{{error.args[0]}}}; use {names} (a literal "
                         "brace as {{ or }})") from None
    except (ValueError, IndexError, AttributeError) as error:
        raise ValueError(f"--json: {pattern!r} is not a valid pattern ({error}); use the placeholders {names} and "
                         "write a literal brace as {{ or }}") from None
    for path in map(Path, paths):
        blocking = next((parent for parent in path.parents if parent.is_file()), None)
        if path.is_dir() or blocking is not None:
            reason = "is a directory" if path.is_dir() else f"lies under the file {blocking}"
            raise ValueError(f"--json: {path} {reason}; give the path of a file to write")
    return paths


def _any_failed(result: dict[str, Any]) -> bool:
    """True when a method of a benchmark result failed (rather than ran or was skipped)."""
    return any(row["status"] == "failed" for row in result["rows"])


def _bench_device(requested: str | None) -> str:
    """``--device`` as given, or cuda when clipadapt can use it, else cpu.

    Raises:
        ValueError: cuda was asked for and clipadapt cannot use it.
    """
    device = requested or ("cuda" if cuda_available() else "cpu")
    if device == "cuda" and not cuda_available():
        raise ValueError("--device cuda: clipadapt sees no usable CUDA device (see `clipadapt info`)")
    return device


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    """Report a bad argument in one line, as argparse's error line, and return exit code 2."""
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 2


def _int_list(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma list of integers, got {text!r}") from None


def _name_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]

