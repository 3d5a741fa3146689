"""The seeds' simulations as experiments: reports, determinism, the seeds' numbers, bad specs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tierflow.errors import ConfigError
from tierflow.operators.planning.simulations import SimulationError, run_simulation_experiment
from tierflow.operators.planning.simulations.generators import (
    avec_nodes,
    subproblem,
    thesis_problem,
)


def spec(**simulation: Any) -> dict[str, Any]:
    return {
        "kind": "simulation",
        "name": "small",
        "description": "a small run",
        "simulation": simulation,
    }


SMALL_REQUESTS = spec(study="requests", requests=[4, 8], nodes=3, repeats=2, seed=1)


def test_a_requests_study_writes_its_report_results_and_plot(tmp_path: Path) -> None:
    calls: list[tuple[str, float]] = []
    results = run_simulation_experiment(
        SMALL_REQUESTS, tmp_path, lambda label, done: calls.append((label, done))
    )
    report = (tmp_path / "report.md").read_text()
    assert (
        report.splitlines()[0]
        == f"`tierflow experiment docs/experiments/small.toml --out {tmp_path}`"
    )
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert results["plots"] == ["latency.png"]
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [row["requests"] for row in results["rows"]] == [4, 8]
    assert all(row["nodes"] == 3 for row in results["rows"])
    for row in results["rows"]:
        # The solver's optimum never loses to the thesis's one-node baseline when it serves all.
        if row["mode-1"]["rejected"] == 0:
            assert row["mode-1"]["U_s"] <= row["iterative"]["U_s"] + 1e-9
    fractions = [done for _, done in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_results_are_deterministic_by_seed(tmp_path: Path) -> None:
    one = run_simulation_experiment(SMALL_REQUESTS, tmp_path / "a")
    two = run_simulation_experiment(SMALL_REQUESTS, tmp_path / "b")
    strip = ("command",)  # names the output folder
    assert {k: v for k, v in one.items() if k not in strip} == {
        k: v for k, v in two.items() if k not in strip
    }
    other = spec(study="requests", requests=[4, 8], nodes=3, repeats=2, seed=2)
    three = run_simulation_experiment(other, tmp_path / "c")
    assert three["rows"] != one["rows"]


def test_the_thesis_values_sit_beside_ours_with_their_ratio(tmp_path: Path) -> None:
    results = run_simulation_experiment(
        spec(study="requests", requests=[20, 50], nodes=10, repeats=1, iterative_capacity=False),
        tmp_path,
    )
    first, last = results["rows"]
    # Seed 003 §6.1.1: "At 20 requests, we see a latency value of 7.6445 for the solver and
    # 13.6383 for the iterative search."
    assert first["mode-1"]["seed_U"] == 7.6445 and first["iterative"]["seed_U"] == 13.6383
    assert last["iterative"]["seed_U"] == 35.0095
    assert first["mode-1"]["ratio"] == pytest.approx(first["mode-1"]["U_s"] / 7.6445)
    assert "iterative-fill" not in first
    assert results["mean_over_sweep"]["mode-1"]["seed_U"] is None  # only over all 4 points
    assert "| 20 |" in (tmp_path / "report.md").read_text()


def test_a_node_sweep_keeps_the_requests_and_the_iterative_search_can_only_improve(
    tmp_path: Path,
) -> None:
    results = run_simulation_experiment(
        spec(study="nodes", nodes=[2, 4, 6], requests=6, repeats=2), tmp_path
    )
    rows = results["rows"]
    assert [r["nodes"] for r in rows] == [2, 4, 6] and {r["requests"] for r in rows} == {6}
    # The thesis's baseline is the least summed node; more nodes (a superset) never raise it.
    sums = [r["iterative"]["U_s"] for r in rows]
    assert sums == sorted(sums, reverse=True)


def test_a_sweep_point_is_a_prefix_of_the_largest_problem() -> None:
    pool = thesis_problem(random.Random(0), 50, 10)
    part = subproblem(pool, 20, 7)
    assert part.requests == pool.requests[:20] and part.nodes == pool.nodes[:7]
    assert np.array_equal(part.tau_ms, pool.tau_ms[:20, :7])
    assert np.array_equal(part.theta_ms, pool.theta_ms[:20, :7])
    # Table 6.1: round trip 0.1-0.5 s, execution 0.1-0.8 s (ms here).
    assert pool.tau_ms.min() >= 100 and pool.tau_ms.max() <= 500
    assert pool.theta_ms.min() >= 100 and pool.theta_ms.max() <= 800


def test_solver_times_name_the_thesis_table_of_each_size(tmp_path: Path) -> None:
    results = run_simulation_experiment(
        spec(study="solver-time", sizes=[[50, 10], [25, 20], [3, 2]], repeats=2), tmp_path
    )
    by_size = {(r["requests"], r["nodes"]): r for r in results["rows"]}
    # Table 6.2 at 50 requests: 24.391 / 19.239 ms; Table 6.3 at 20 nodes: 26.012 / 26.546.
    assert by_size[50, 10]["table"] == "6.2" and by_size[50, 10]["mode-1"]["seed_ms"] == 24.391
    assert by_size[50, 10]["mode-2"]["seed_ms"] == 19.239
    assert by_size[25, 20]["table"] == "6.3" and by_size[25, 20]["mode-2"]["seed_ms"] == 26.546
    assert by_size[3, 2]["table"] is None and by_size[3, 2]["mode-1"]["ratio"] is None
    row = by_size[25, 20]["mode-1"]
    assert row["ratio"] == pytest.approx(row["median_ms"] / 26.012)
    assert 0 < row["median_ms"] <= row["p90_ms"]
    assert (tmp_path / "solver-time.png").exists()


def test_avec_policies_are_timed_on_22_nodes_and_pick_real_ones(tmp_path: Path) -> None:
    results = run_simulation_experiment(spec(study="avec-policy-time", repeats=5), tmp_path)
    assert results["nodes"] == len(avec_nodes()) == 22
    chosen = {row["policy"]: row["chosen"] for row in results["rows"]}
    assert len(chosen) == 7 and set(chosen.values()) <= {"edge-rtx2060", "cloud-gtx1080"}
    assert chosen["fifo"] == "edge-rtx2060" and chosen["best-compute"] == "cloud-gtx1080"
    seed = {row["policy"]: row["seed_ms"] for row in results["rows"]}
    assert seed["random"] == 3.1 and seed["fifo"] == 0.7  # seed 004 §6
    assert (tmp_path / "policy-time.png").exists()


@pytest.mark.parametrize(
    ("bad", "names"),
    [
        ({**SMALL_REQUESTS, "kind": "replay"}, "kind"),
        ({k: v for k, v in SMALL_REQUESTS.items() if k != "simulation"}, "[simulation]"),
        ({**SMALL_REQUESTS, "extra": 1}, "'extra'"),
        ({**SMALL_REQUESTS, "name": ""}, "name"),
        (spec(study="fig-6.9"), "simulation.study"),
        (spec(study="requests", requets=[20]), "simulation.requets"),
        (spec(study="requests", requests=20), "simulation.requests"),
        (spec(study="requests", requests=[20], repeats=0), "simulation.repeats"),
        (spec(study="nodes", nodes=[5], requests="25"), "simulation.requests"),
        (spec(study="solver-time", sizes=[[20, 10, 3]]), "simulation.sizes"),
        (spec(study="solver-time", time_limit_s=0), "simulation.time_limit_s"),
        (spec(study="avec-policy-time", nodes=[5]), "simulation.nodes"),
        (spec(study="requests", requests=[4], iterative_capacity="no"), "iterative_capacity"),
    ],
)
def test_a_bad_spec_raises_a_config_error_naming_the_key(
    bad: dict[str, Any], names: str, tmp_path: Path
) -> None:
    with pytest.raises(SimulationError) as caught:
        run_simulation_experiment(bad, tmp_path)
    assert isinstance(caught.value, ConfigError)
    assert names in str(caught.value)
    assert not (tmp_path / "report.md").exists()
