"""Scenario files for ``tierflow plan``: the shipped one solves, bad ones name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import tierflow
from tierflow.operators.planning.quality import LatencyMean, Objective, assign
from tierflow.operators.planning.scenario import Scenario, ScenarioError
from tierflow.operators.planning.workflow import default_workflow

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


def test_the_paper_scenario_is_the_papers_run_at_25_fps_with_one_gamma() -> None:
    problem = Scenario.load(GRID5000).problem
    assert len(problem.sources) == 19 and {s.fps for s in problem.sources} == {25.0}
    assert problem.objective is Objective.MAKESPAN and problem.duration_s == 1200.0
    gamma = default_workflow().bits_per_pixel  # eq. 2's gamma, as the workflow prices it
    assert {o.bits_per_frame for o in problem.options if o.quality == 512} == {gamma * 512 * 512}


def test_the_paper_scenario_reduces_some_cameras_and_drains_sooner() -> None:
    scenario = Scenario.load(GRID5000)
    result = assign(scenario.problem)
    reduced = [a for a in result.assignments if a.reduced]
    assert result.solved and 0 < len(reduced) < 19
    assert result.accuracy >= 0.5
    no_adaptation = assign(scenario.problem, "all-max")
    assert no_adaptation.solved and not any(a.reduced for a in no_adaptation.assignments)
    # the cloud is offered 19 x 25 fps over 1200 s at capacity_fps = 40: T_E = Load/C
    assert no_adaptation.makespan_s == pytest.approx(1200 * 19 * 25 / 40)
    assert 1200 < result.makespan_s < no_adaptation.makespan_s


def test_a_makespan_scenario_needs_its_duration(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('objective = "makespan"\n' + MINIMAL)
    with pytest.raises(ScenarioError, match=r"scenario\.duration_s is missing"):
        Scenario.load(path)
    path.write_text('objective = "makespan"\nduration_s = 60\n' + MINIMAL)
    assert Scenario.load(path).problem.duration_s == 60.0
    path.write_text('objective = "makespan"\nduration_s = -1\n' + MINIMAL)
    with pytest.raises(ScenarioError, match="duration_s must be finite and > 0"):
        Scenario.load(path)


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
    assert plan["makespan_s"] > plan["duration_s"] == 1200
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
    assert plan["makespan_s"] > 1200  # also the baselines report the makespan


def test_plan_json_puts_the_adapted_makespan_below_the_baselines() -> None:
    spans = {}
    for policy in ("milp", "all-max"):
        result = tierflow("plan", str(GRID5000), "--policy", policy, "--json")
        assert result.returncode == 0, result.stderr
        spans[policy] = json.loads(result.stdout)["makespan_s"]
    assert spans["milp"] < spans["all-max"]


def test_plan_json_has_no_makespan_for_a_latency_scenario(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL)
    result = tierflow("plan", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert "makespan_s" not in json.loads(result.stdout)


def test_plan_on_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = tierflow("plan", str(tmp_path / "none.toml"))
    assert result.returncode == 2
    assert "no scenario" in result.stderr
