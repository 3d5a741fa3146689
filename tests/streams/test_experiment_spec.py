"""Experiment files are checked before anything runs; reports compute the seed's makespan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tierflow.settings import Settings
from tierflow.streams.experiment.report import frame_stats
from tierflow.streams.experiment.run import configured
from tierflow.streams.experiment.spec import (
    MAKESPAN_SETTINGS,
    ExperimentError,
    load_experiment,
    parse_experiment,
)

SMOKE = Path(__file__).parents[2] / "docs" / "experiments" / "smoke.toml"


def _spec(**extra: Any) -> dict[str, Any]:
    return {"name": "t", "configs": [{"name": "a"}, {"name": "b", "control": False}], **extra}


def test_the_smoke_experiment_parses_into_two_policies() -> None:
    spec = load_experiment(SMOKE)
    assert [c.name for c in spec.configs] == ["milp", "fixed-512"]
    assert spec.input.recording is None and spec.input.seed == 0
    assert spec.configs[1].control is False and spec.configs[1].quality == 512
    assert spec.configs[0].settings["control"]["policy"] == "milp"


def test_shortcuts_become_settings_and_makespan_turns_drops_off(settings: Settings) -> None:
    raw = _spec(run={"mode": "makespan", "speed": "max"})
    raw["configs"][0].update(theta=0.5, a_min=0.7, detector="null")
    spec = parse_experiment(raw, Path("."))
    first = spec.configs[0]
    assert first.mode == "makespan" and first.speed is None
    assert first.settings["control"] == {"theta_per_s": 0.5, "a_min": 0.7}
    applied = configured(settings, first.settings)
    assert applied.detector.backend == "null"
    assert applied.control.theta_per_s == 0.5
    for name, value in MAKESPAN_SETTINGS["dataplane"].items():
        assert getattr(applied.dataplane, name) == value
    assert configured(settings, spec.configs[1].settings).control.theta_per_s == (
        settings.control.theta_per_s
    )


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (_spec(inputs={}), "inputs"),
        (_spec(run={"mood": "x"}), "mood"),
        (_spec(run={"mode": "batch"}), "batch"),
        ({"name": "t", "configs": []}, r"\[\[configs\]\]"),
        ({"name": "t", "configs": [{"name": "a"}, {"name": "a"}]}, "repeat"),
        ({"name": "t", "configs": [{"name": "a b"}]}, "a b"),
        ({"name": "t", "configs": [{"name": "a", "thetta": 1}]}, "thetta"),
        ({"name": "t", "kind": "batch", "configs": [{"name": "a"}]}, "batch"),
        (_spec(input={"cameras": "two"}), "two"),
        (_spec(run={"speed": 0}), "speed"),
        (_spec(run={"speed": "fast"}), "fast"),
        (_spec(run={"speed": float("inf")}), "speed"),
        (_spec(input={"fps": 0}), "fps must be positive"),
        ({"name": "t", "configs": ["a"]}, "must be a table"),
    ],
)
def test_a_bad_file_names_what_is_wrong(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ExperimentError, match=named):
        parse_experiment(raw, Path("."))


def test_bad_settings_are_refused_before_running(settings: Settings) -> None:
    with pytest.raises(ExperimentError, match="no section 'cntrol'"):
        configured(settings, {"cntrol": {"a_min": 1}})
    with pytest.raises(ExperimentError, match="amin"):
        configured(settings, {"control": {"amin": 1}})
    with pytest.raises(ExperimentError, match="a_min"):
        configured(settings, {"control": {"a_min": 2}})


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="no experiment file"):
        load_experiment(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(ExperimentError, match="not TOML"):
        load_experiment(bad)


def _row(
    seq: int, capture_s: float, outcome: str, latency_s: float, quality: int
) -> dict[str, Any]:
    return {
        "source": "c",
        "sequence": seq,
        "capture_ns": int(capture_s * 1e9),
        "outcome": outcome,
        "latency_s": latency_s,
        "quality": quality,
    }


def test_makespan_is_first_frame_sent_to_last_processed() -> None:
    rows = [
        _row(0, 10.0, "sampled", 0.0, 512),  # never sent: does not start the clock
        _row(1, 10.5, "processed", 0.3, 512),
        _row(2, 11.0, "dropped", 0.0, 320),
        _row(3, 11.5, "processed", 2.0, 320),  # done at 13.5 s
    ]
    stats = frame_stats(rows)
    assert stats["makespan_s"] == pytest.approx(3.0)
    assert stats["latencies_s"] == [0.3, 2.0]
    assert stats["mean_quality_sent"] == pytest.approx((512 + 320 + 320) / 3)
    assert sum(v for _, v in stats["fps_series"]) == pytest.approx(2.0)
    assert frame_stats([_row(0, 1.0, "sampled", 0.0, 512)])["makespan_s"] is None
    # a repeated record and an unreadable frame's (sequence -1, no time) change nothing
    noisy = [*rows, _row(3, 11.5, "processed", 2.0, 320), _row(-1, 0.0, "deadletter", 0.0, 0)]
    assert frame_stats(noisy) == stats


PAPER = Path(__file__).parents[2] / "docs" / "experiments" / "paper-tiers.toml"


def test_the_paper_experiments_run_on_tiers_with_the_adaptation_applied_once() -> None:
    spec = load_experiment(PAPER)
    assert spec.tiers is not None
    assert spec.tiers.scenario.resolve().name == "grid5000.toml"
    assert spec.tiers.placement["detect-512"] == "cloud"
    assert spec.tiers.placement["detect-416"] == "fog"
    by_name = {c.name: c for c in spec.configs}
    assert by_name["exp1-cloud-only"].assign == {}
    assert by_name["exp2-adapted"].assign == {"cam-0": 416}
    assert by_name["exp3-single"].sources == ("cam-0",)
    assert all(c.mode == "makespan" and not c.control for c in spec.configs)


_TIERS = {"scenario": "s.toml", "cameras": "edge0", "placement": {"draw": "cloud"}}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (_spec(tiers=_TIERS), "control = false"),  # the first config has control on
        ({"name": "t", "configs": [{"name": "a", "sources": ["cam-0"]}]}, "sources"),
        (
            {"name": "t", "tiers": {**_TIERS, "camera": "x"}, "configs": [{"name": "a"}]},
            "camera",
        ),
        (
            {"name": "t", "tiers": {**_TIERS, "cameras": []}, "configs": [{"name": "a"}]},
            "cameras must be",
        ),
        (
            {"name": "t", "tiers": {**_TIERS, "placement": {}}, "configs": [{"name": "a"}]},
            "placement",
        ),
        (
            {"name": "t", "configs": [{"name": "a", "assign": {"cam-0": "big"}}]},
            "big",
        ),
    ],
)
def test_a_bad_tiers_section_names_what_is_wrong(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ExperimentError, match=named):
        parse_experiment(raw, Path("."))
