"""`clipadapt bench distributed` at a tiny size (1 and 2 local ranks) and its cost model."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from clipadapt.bench.distributed import ClusterAssumptions, cost_model
from clipadapt.cli import main


def test_bench_times_each_phase_and_checks_the_ranks_agree(tmp_path, capsys):
    path = tmp_path / "result.json"
    assert main(["bench", "distributed", "--n", "400", "--d", "16", "--clusters", "5", "--iters", "2", "--ranks",
                 "1,2", "--n-queries", "10", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert [(row["ranks"], row["phase"]) for row in rows] == [(ranks, phase) for ranks in (1, 2) for phase in
                                                             ("pairing", "fetch pairs", "paired k-means", "add",
                                                              "search")]
    two = {row["phase"]: row for row in rows if row["ranks"] == 2}
    assert all(two[phase]["equal_to_one_rank"] for phase in ("pairing", "paired k-means", "search"))
    shard_mb = 200 * 16 * 2 / 1e6  # one float16 shard around the ring of 2, plus the small control messages
    assert shard_mb <= two["pairing"]["sent_mb"] < shard_mb + 0.001
    assert "Cost model" in capsys.readouterr().out


def test_cost_model_of_the_laion_index():
    model = cost_model()
    assert model["meets_goal"] and model["total_seconds"] < 7200
    assert model["exact_pairing_of_every_image"]["seconds"] > 100 * 3600
    slower = cost_model(replace(ClusterAssumptions(), kernel_efficiency=0.03, nodes=1))
    assert slower["phases"]["pairing"]["compute_s"] == pytest.approx(model["phases"]["pairing"]["compute_s"] * 80)
