"""Scenario files for ``tierflow plan``: the shipped one solves, bad ones name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import tierflow
from tierflow.operators.planning.quality import LatencyMean, assign
from tierflow.operators.planning.scenario import Scenario, ScenarioError

ROOT = Path(__file__).resolve().parents[3]
GRID5000 = ROOT / "docs" / "scenarios" / "grid5000.toml"

MINIMAL = """
[[nodes]]
id = "e"
tier = "edge"
parent = "c"
uplink_mbps = 100
[[nodes]]
id = "c"
tier = "cloud"
[[pipelines]]
id = "p"
node = "c"
capacity_fps = 50
accuracy = { "512" = 0.9, "320" = 0.6 }
[[sources]]
count = 3
fps = 5
qualities = [320, 512]
"""


def test_the_paper_scenario_reduces_some_cameras_and_keeps_a_min() -> None:
    scenario = Scenario.load(GRID5000)
    assert len(scenario.problem.sources) == 19
    result = assign(scenario.problem)
    reduced = [a for a in result.assignments if a.reduced]
    assert result.solved and 0 < len(reduced) < 19
    assert result.accuracy >= 0.5
    no_adaptation = assign(scenario.problem, "all-max")
    assert result.latency_s < no_adaptation.latency_s


def test_a_minimal_scenario_spreads_unsited_cameras_over_edge_nodes(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL)
    scenario = Scenario.load(path)
    assert {s.site for s in scenario.problem.sources} == {"e"}
    assert [s.id for s in scenario.problem.sources] == ["cam00", "cam01", "cam02"]
    assert scenario.workflow is None


def test_a_scenario_chooses_which_mean_eq_3_is(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL)
    assert Scenario.load(path).problem.latency_mean is LatencyMean.FRAMES  # Problem's default
    path.write_text('latency_mean = "sources"\n' + MINIMAL)  # the paper's eq. 3
    assert Scenario.load(path).problem.latency_mean is LatencyMean.SOURCES


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda s: s.replace('tier = "edge"', 'tier = "mist"'), "nodes[0].tier"),
        (lambda s: s.replace('parent = "c"', 'parent = "x"'), "parent 'x'"),
        (
            lambda s: s.replace("capacity_fps = 50", "capacity_fps = -1"),
            "pipelines[0].capacity_fps",
        ),
        (
            lambda s: s.replace("capacity_fps = 50", 'capacity_fps = "fast"'),
            "pipelines[0].capacity_fps must be float",
        ),
        (lambda s: s.replace('node = "c"', 'node = "nowhere"'), "pipelines[0].node"),
        (lambda s: s.replace("fps = 5\n", ""), "sources[0].fps is missing"),
        (lambda s: s.replace("[[sources]]", "[[sourcez]]"), "[[sources]]"),
        (lambda s: s + "\n[this is not toml", "is not TOML"),
        (lambda s: 'latency_mean = "jobs"\n' + s, "scenario.latency_mean must be one of"),
    ],
)
def test_bad_scenarios_name_the_field(tmp_path: Path, change: object, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(change(MINIMAL))  # type: ignore[operator]
    with pytest.raises(ScenarioError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Scenario.load(path)


def test_plan_prints_the_assignment_and_placement_as_json() -> None:
    result = tierflow("plan", str(GRID5000), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["status"] == "optimal" and plan["policy"] == "milp"
    assert sum(plan["distribution"].values()) == 19
    assert len(plan["assignments"]) == 19
    assert plan["accuracy"] >= 0.5
    tiers = {i.split("#")[0]: v["tier"] for i, v in plan["placement"]["instances"].items()}
    assert tiers["detect-512"] == "cloud" and tiers["detect-416"] == "fog"


@pytest.mark.parametrize("policy", ["exact", "all-max"])
def test_plan_baselines_are_selectable_by_name(policy: str) -> None:
    result = tierflow(
        "plan", str(GRID5000), "--policy", policy, "--placement", "cloud-only", "--json"
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["policy"] == policy
    assert plan["placement"]["policy"] == "cloud-only"
    if policy == "all-max":
        assert set(plan["distribution"]) == {"512@cloud-512"}


def test_plan_on_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = tierflow("plan", str(tmp_path / "none.toml"))
    assert result.returncode == 2
    assert "cannot read scenario" in result.stderr
