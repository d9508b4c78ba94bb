"""Tables and plots of the committed benchmark results (``benchmarks/results/*.json``).

The documentation's benchmarks page calls these functions on every build, so its numbers are
always those of the committed files; the README's overview plot is drawn by the same code::

    python docs/_ext/benchmark_report.py docs/_static/benchmarks-cpu.png
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

# What each benchmark's result file is about, for titles.
TITLES = {
    "knn": "Exact k-NN graph",
    "lp": "Label propagation",
    "kmeans": "k-means, time per iteration",
    "ivf": "IVF index: recall and search time by nprobe",
    "reclip-lp": "ReCLIP pseudo-labelling step",
    "mudg-index": "MUDG source index: build and text-query recall by nprobe",
    "distributed": "MUDG index phases on several local ranks",
}


@dataclass(frozen=True)
class Column:
    """One table column: its title, the row field it shows (dots walk into nested dicts) and
    the format of a number."""

    title: str
    field: str
    number_format: str = ""

    def cell(self, row: dict[str, Any]) -> str:
        value: Any = row
        for key in self.field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return format(value, self.number_format) if isinstance(value, (int, float)) else str(value)


COLUMNS: dict[str, list[Column]] = {
    "knn": [Column("method", "method"), Column("dtype", "precision"), Column("seconds", "seconds", ".3f"),
            Column("recall@k", "recall_at_k", ".4f"), Column("GFLOP/s", "gflops", ".0f"),
            Column("of mm rate", "fraction_of_mm_rate", ".2f"),
            Column("clipadapt / this", "ratio_clipadapt_over_method", ".2f")],
    "kmeans": [Column("method", "method"), Column("device", "device"),
               Column("s / iteration", "seconds_per_iteration", ".3f"), Column("inertia", "inertia", ".1f"),
               Column("GFLOP/s", "gflops", ".0f"), Column("of mm rate", "fraction_of_mm_rate", ".2f"),
               Column("clipadapt / this", "ratio_clipadapt_over_method", ".2f")],
    "lp": [Column("method", "method"), Column("device", "device"), Column("precision", "precision"),
           Column("solve s", "solve_seconds", ".3f"), Column("total s", "total_seconds", ".2f"),
           Column("clipadapt / this (solve)", "ratio_solve", ".2f"),
           Column("scipy recipe / this (solve)", "speedup_over_scipy_solve", ".1f"),
           Column("of copy bandwidth", "fraction_of_bandwidth", ".2f"),
           Column("agreement with recipe", "agreement_recipe", ".4f"), Column("accuracy", "accuracy", ".4f")],
    "reclip-lp": [Column("method", "method"), Column("device", "device"),
                  Column("projection s", "seconds.projection", ".2f"), Column("graph s", "seconds.graph", ".2f"),
                  Column("propagation s", "seconds.propagation", ".2f"), Column("total s", "total_seconds", ".2f"),
                  Column("projection share", "projection_share", ".0%"),
                  Column("peak MB", "peak_rss_mb", ".0f"), Column("this / clipadapt", "this_over_clipadapt", ".1f"),
                  Column("agreement with recipe", "agreement_recipe", ".4f"), Column("accuracy", "accuracy", ".4f")],
    "ivf": [Column("method", "method"), Column("train s", "train_seconds", ".2f"), Column("add s", "add_seconds", ".2f"),
            Column("nprobe", "nprobe"), Column("recall@10", "recall_at_10", ".4f"),
            Column("search s", "search_seconds", ".3f"), Column("rows scanned / query", "rows_scanned", ".0f"),
            Column("clipadapt / faiss, same lists", "search_ratio_same_lists", ".2f")],
    "mudg-index": [Column("method", "method"), Column("pairing s", "pairing_seconds", ".1f"),
                   Column("k-means s", "kmeans_seconds", ".1f"), Column("add s", "add_seconds", ".1f"),
                   Column("nprobe", "nprobe"), Column("recall@64", "recall_at_64", ".4f"),
                   Column("search s", "search_seconds", ".3f"), Column("rows scanned / query", "rows_scanned", ".0f")],
    "distributed": [Column("ranks", "ranks"), Column("threads / rank", "threads_per_rank"), Column("phase", "phase"),
                    Column("seconds", "seconds", ".3f"), Column("MB sent / rank", "sent_mb", ".2f"),
                    Column("speed-up", "speedup", ".2f"), Column("equal to one rank", "equal_to_one_rank")],
}


def load_results(directory: Path = RESULTS) -> list[dict[str, Any]]:
    """Every result file of ``directory``, sorted by benchmark then file name; each dict gets
    ``file`` (its name)."""
    results = []
    for path in sorted(directory.glob("*.json")):
        result = json.loads(path.read_text())
        result["file"] = path.name
        results.append(result)
    return sorted(results, key=lambda result: (list(TITLES).index(result["benchmark"])
                                               if result["benchmark"] in TITLES else len(TITLES), result["file"]))


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows to tabulate: a method measured at several nprobe gives one row per nprobe."""
    rows = []
    for row in result["rows"]:
        if row.get("status") == "ok" and "by_nprobe" in row:
            rows.extend({**row, **point} for point in row["by_nprobe"])
        else:
            rows.append(row)
    return rows


def markdown_table(result: dict[str, Any]) -> str:
    """The result's rows as a Markdown table; rows that did not run say why in a last column."""
    columns = COLUMNS.get(result["benchmark"]) or [Column("method", "method"), Column("status", "status")]
    rows = table_rows(result)
    with_notes = any(row.get("status") != "ok" for row in rows)
    header = [column.title for column in columns] + (["note"] if with_notes else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        skipped = row.get("status") != "ok"
        cells = [column.cell(row) if not skipped or column.field in ("method", "device", "ranks", "phase") else ""
                 for column in columns]
        if with_notes:
            cells.append(f"{row.get('status')}: {row.get('reason', '')}" if skipped else "")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def describe(result: dict[str, Any]) -> str:
    """The command, date and machine of a result, as a Markdown paragraph."""
    machine = result.get("machine", {})
    libraries = ", ".join(f"{name} {version}" for name, version in machine.get("libraries", {}).items() if version)
    devices = [device.get("name", "?") for device in machine.get("clipadapt", {}).get("cuda_devices", [])]
    blas_core = machine.get("clipadapt", {}).get("cpu_kernels", {}).get("blas_core")
    where = f"{machine.get('cpu_model', 'unknown CPU')}, {machine.get('threads', '?')} threads" + \
        (f", OpenBLAS kernels {blas_core}" if blas_core else "") + (f", GPU: {', '.join(devices)}" if devices else "")
    # Runs started as `python -m clipadapt` record the module's file name as the program.
    command = result["command"].replace("__main__.py", "clipadapt", 1)
    return (f"`{command}` ({result.get('date', 'undated')}; {where}; "
            f"{libraries or 'library versions not recorded'}; file `{result['file']}`)")


# The IVF benchmark's method keys, as a reader of the plot needs them.
IVF_METHODS = {"paired": "clipadapt: paired k-means", "kmeans": "clipadapt: k-means", "faiss": "faiss IndexIVFFlat",
               "faiss-kmeans": "faiss IndexIVFFlat on clipadapt's k-means lists"}


def _ok_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in result["rows"] if row.get("status") == "ok"]


def _first(results: list[dict[str, Any]], benchmark: str,
           choose: Callable[[dict[str, Any]], Any] = lambda result: 0) -> dict[str, Any] | None:
    """The result of ``benchmark`` that ranks highest by ``choose`` (e.g. the largest n)."""
    candidates = [result for result in results if result["benchmark"] == benchmark]
    return max(candidates, key=choose) if candidates else None


def _bars(axis: Any, labels: list[str], seconds: list[float], title: str, unit: str) -> None:
    colours = ["tab:orange" if label.startswith("clipadapt") else "tab:gray" for label in labels]
    axis.barh(labels, seconds, color=colours)
    axis.invert_yaxis()
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(unit)
    for position, value in enumerate(seconds):
        axis.text(value, position, f" {value:.3g}", va="center", fontsize=8)
    axis.margins(x=0.25)


# The bar panels of the overview: benchmark, the seconds field of its rows, title, unit.
_BAR_PANELS = (
    ("knn", "seconds", "exact k-NN graph, n={n:,}, d={d}, k={k}", "seconds"),
    ("kmeans", "seconds_per_iteration", "k-means, n={n:,}, d={d}, K={clusters}", "seconds per iteration"),
    ("lp", "solve_seconds", "label propagation solve, n={n:,}, {classes} classes", "seconds"),
)


def overview_figure(results: list[dict[str, Any]]) -> Any:
    """Four panels: k-NN graph time, k-means time per iteration, label-propagation solve time
    (clipadapt in orange, baselines in grey) and IVF recall@10 against search time."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    shown = []
    for axis, (benchmark, field, title, unit) in zip((axes[0, 0], axes[0, 1], axes[1, 0]), _BAR_PANELS):
        result = _first(results, benchmark, lambda result: result["parameters"]["n"])
        if result:
            shown.append(result)
            rows = _ok_rows(result)
            _bars(axis, [row["method"] for row in rows], [row[field] for row in rows],
                  title.format(**result["parameters"]), unit)
    ivf = _first(results, "ivf", lambda result: result["parameters"]["n"])
    if ivf:
        axis = axes[1, 1]
        for row in _ok_rows(ivf):
            points = row["by_nprobe"]
            axis.plot([point["search_seconds"] for point in points], [point["recall_at_10"] for point in points],
                      marker="o", label=IVF_METHODS.get(row["method"], row["method"]))
            for point in points:
                axis.annotate(str(point["nprobe"]), (point["search_seconds"], point["recall_at_10"]), fontsize=7,
                              textcoords="offset points", xytext=(3, -9))
        parameters = ivf["parameters"]
        axis.set_title(f"IVF, n={parameters['n']:,}, K={parameters['clusters']}: text queries, labels = nprobe",
                       fontsize=10)
        axis.set_xlabel(f"seconds for {parameters['n_queries']} queries")
        axis.set_ylabel("recall@10")
        axis.legend(fontsize=8)
    machine = (shown + [ivf or {}])[0].get("machine", {})
    figure.suptitle(f"clipadapt against its baselines on {machine.get('cpu_model', 'the CPU')}, "
                    f"{machine.get('threads', '?')} threads (benchmarks/results)", fontsize=11)
    figure.tight_layout()
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description="Draw the overview plot of the committed benchmark results.")
    parser.add_argument("out", type=Path, help="PNG file to write, e.g. docs/_static/benchmarks-cpu.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")  # a file, no window
    overview_figure(load_results()).savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
