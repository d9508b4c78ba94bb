"""The ``clipadapt`` command."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clipadapt.device import cuda_available, device_summary

_KNN_JSON = "bench-results/knn-{device}-n{n}-d{d}-k{k}.json"
_LP_JSON = "bench-results/lp-{device}-n{n}-c{classes}-d{d}.json"


def main(argv: list[str] | None = None) -> int:
    """Run the ``clipadapt`` command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = argparse.ArgumentParser(prog="clipadapt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the build and the devices the kernels can use")
    benchmarks = _add_bench_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "info":
        json.dump(device_summary(), sys.stdout, indent=2)
        print()
        return 0
    if args.benchmark is None:  # plain `clipadapt bench`: every benchmark at its small defaults
        runs = [(benchmark.parse_args([]), benchmark) for benchmark in benchmarks.values()]
    else:
        runs = [(args, benchmarks[args.benchmark])]
    return max(run_args.run(run_args, benchmark) for run_args, benchmark in runs)


def _add_bench_parser(commands: argparse._SubParsersAction) -> dict[str, argparse.ArgumentParser]:
    """Add ``bench`` and return its benchmarks by name; each parser's defaults hold
    ``run(args, that_parser) -> exit code``."""
    from clipadapt.bench.knn import DEFAULT_D, DEFAULT_K, DEFAULT_N, DEVICES, DTYPES, FAMILIES

    bench = commands.add_parser("bench", help="benchmarks against baselines; without a benchmark name, "
                                "run all of them at a small size")
    benchmarks = bench.add_subparsers(dest="benchmark", metavar="{knn,lp}")
    knn = benchmarks.add_parser("knn", help="exact k-NN graph: clipadapt vs faiss, scikit-learn and torch",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    knn.set_defaults(run=_run_knn)
    _add_lp_parser(benchmarks)
    return dict(benchmarks.choices)


def _add_lp_parser(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``bench lp``: label propagation, clipadapt vs the scipy ReCLIP recipe, torch and cupy."""
    from clipadapt.bench.lp import DEFAULT_CLASSES, DEFAULT_D, DEFAULT_N, DEFAULT_NOISE, DEVICES

    lp = benchmarks.add_parser("lp", help="label propagation: clipadapt vs the scipy ReCLIP recipe, torch and cupy",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    lp.add_argument("--json", default=_LP_JSON, help="result file; {device}, {n}, {classes} and {d} are filled in")
    lp.set_defaults(run=_run_lp)


def _run_knn(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench knn``: one benchmark per value of ``--k``; 1 when a method failed."""
    from clipadapt.bench.knn import run_knn_benchmark

    try:
        device = _bench_device(args.device)
    except ValueError as error:
        return _usage_error(parser, str(error))
    if len(args.k) > 1 and "{k}" not in args.json:
        return _usage_error(parser, "--json: with several --k values the path needs a {k} placeholder")
    failed = False
    for k in args.k:
        json_path = args.json.format(device=device, n=args.n, d=args.d, k=k, dtype=args.dtype)
        try:
            result = run_knn_benchmark(args.n, args.d, k, threads=args.threads, seed=args.seed, methods=args.methods,
                                       dtype=args.dtype, device=device, oracle_queries=args.oracle_queries,
                                       repeats=args.repeats, json_path=json_path)
        except ValueError as error:
            return _usage_error(parser, str(error))
        failed |= _any_failed(result)
    return 1 if failed else 0


def _run_lp(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``clipadapt bench lp``: one benchmark per (--n, --classes) pair; 1 when a method failed."""
    from clipadapt.bench.lp import run_lp_benchmark

    try:
        device = _bench_device(args.device)
    except ValueError as error:
        return _usage_error(parser, str(error))
    for values, placeholder in ((args.n, "{n}"), (args.classes, "{classes}")):
        if len(values) > 1 and placeholder not in args.json:
            return _usage_error(parser, f"--json: with several values the path needs a {placeholder} placeholder")
    failed = False
    for n in args.n:
        for classes in args.classes:
            json_path = args.json.format(device=device, n=n, classes=classes, d=args.d)
            try:
                result = run_lp_benchmark(n, classes, args.d, noise=args.noise, threads=args.threads,
                                          seed=args.seed, device=device, json_path=json_path)
            except ValueError as error:
                return _usage_error(parser, str(error))
            failed |= _any_failed(result)
    return 1 if failed else 0


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
    """Report a bad argument the way argparse does, but return exit code 2 instead of exiting."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 2


def _int_list(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma list of integers, got {text!r}") from None


def _name_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


if __name__ == "__main__":
    raise SystemExit(main())
