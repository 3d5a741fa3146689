"""The control plane's sections of the settings (:class:`~tierflow.settings.Settings`).

The control agent and the Prometheus server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from tierflow.homes import state_home
from tierflow.settings.sections import WILDCARD_HOSTS, Port, PositiveInt, Section


class ControlSettings(Section):
    """The control agent: time slots, the accuracy floor, solver and anti-flapping rules."""

    slot_s: float = Field(default=10.0, gt=0, description="Seconds between decisions.")
    window_s: float = Field(
        default=20.0, gt=0, description="Seconds of per-frame records the models look at."
    )
    a_min: float = Field(default=0.5, ge=0, le=1, description="Accuracy floor (eq. 6).")
    accuracy_credit: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description=(
            "Most one slot's accuracy floor may fall below a_min while earlier slots' surplus "
            "is banked (eq. 6 holds a_min for the mean over slots); 0: never below a_min."
        ),
    )
    objective: Literal["latency", "utility"] = Field(
        default="utility",
        description=(
            "utility: maximise eq. 5's a - Theta*T; latency: Algorithm 1 as written (fastest "
            "assignment meeting a_min, with the 10 ms / 20 % preference rule)."
        ),
    )
    theta_per_s: float = Field(
        default=0.2,
        ge=0,
        description=(
            "Theta of eq. 5: accuracy worth one second of latency (0.2: 0.02 of F1 per "
            "0.1 s). Latency is bounded by slo_p99_s; within it, accuracy over every "
            "captured frame is what is maximised."
        ),
    )
    latency_mean: Literal["sources", "frames"] = Field(
        default="frames",
        description=(
            "Which mean eq. 3's latency is: sources, as the paper writes it (the mean over "
            "sources of each source's mean frame latency); frames, the mean over analysed "
            "frames (each source weighted by its frame rate). They agree at one frame rate; "
            "over sources with unlike rates the milp program is a fixed point, not proven."
        ),
    )
    policy: str = Field(default="milp", description="Quality policy: milp, exact, all-max.")
    placement_policy: str = Field(
        default="auto",
        description=(
            "Placement policy (tierflow plan --help lists them); auto: the seed's algorithms"
            " where Fog or Cloud nodes exist, else the thesis's request program."
        ),
    )
    time_limit_s: float = Field(default=1.0, gt=0, description="Solver budget per decision.")
    min_dwell_slots: int = Field(
        default=2, ge=1, description="Slots a source keeps a quality before it may change."
    )
    slo_p99_s: float = Field(
        default=1.0, gt=0, description="A window p99 latency above this triggers a decision."
    )
    max_utilisation: float = Field(default=0.85, gt=0, lt=1)
    fps_ladder: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(25.0, 15.0, 10.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0),
        description=(
            "Frame rates a camera may be told to send at besides its own; the frames it "
            "skips are 'sampled'. Empty: quality is the only knob (the seed paper)."
        ),
    )
    workflow: Path | None = Field(
        default=None,
        description=(
            "Workflow TOML to place; unset: this deployment's own pipeline (resize, a detect"
            " per quality, draw). The paper's use case ships as default_workflow.toml."
        ),
    )
    detect_qualities: tuple[PositiveInt, ...] | None = Field(
        default=None,
        description="Qualities the placed pipeline runs a detector for (unset: every quality).",
    )
    provision: Literal["catalogue", "demand"] = Field(
        default="catalogue",
        description=(
            "catalogue: a detector for every quality of the pipeline; demand: the thesis's "
            "back end, a detector for the qualities frames arrive at (placed by the request "
            "program, evicted by placement_mode's rule)."
        ),
    )
    placement_mode: int = Field(
        default=1,
        ge=1,
        le=2,
        description=(
            "With provision = demand, the thesis's back-end mode: 1 keeps idle detectors "
            "loaded and evicts the least recently (then least frequently) used one when "
            "memory runs out; 2 plans on total memory and unloads every idle detector."
        ),
    )
    demand_s: float = Field(
        default=20.0,
        gt=0,
        description="With provision = demand, seconds a quality stays in demand after its "
        "last frame arrived.",
    )
    evict_idle_s: float | None = Field(
        default=None,
        gt=0,
        description="Mode 1: also unload a detector idle this many seconds (None: never).",
    )

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        # Imported here: the planner pulls in HiGHS, and only a policy someone set is checked.
        from tierflow.operators.planning.quality import POLICY_NAMES

        return _one_of(value, POLICY_NAMES, "quality policy")

    @field_validator("placement_policy")
    @classmethod
    def _known_placement_policy(cls, value: str) -> str:
        from tierflow.operators.planning.placement import POLICIES

        return _one_of(value, POLICIES, "placement policy")

    @model_validator(mode="after")
    def _demand_needs_the_request_program(self) -> ControlSettings:
        if self.provision == "demand" and self.placement_policy not in ("auto", "requests"):
            msg = (
                "control.provision = demand runs the thesis's request program; "
                f"placement_policy must be auto or requests, not {self.placement_policy!r}"
            )
            raise ValueError(msg)
        return self


def _one_of(value: str, names: tuple[str, ...], what: str) -> str:
    if value not in names:
        msg = f"unknown {what} {value!r}; known: {', '.join(names)}"
        raise ValueError(msg)
    return value


class PrometheusSettings(Section):
    """The Prometheus server ``tierflow up --prometheus`` starts (Debian's package)."""

    binary: str = Field(default="prometheus", description="Executable name or path.")
    host: str = "127.0.0.1"
    port: Port = 9090
    scrape_interval_s: float = Field(default=2.0, gt=0, description="Seconds between scrapes.")
    retention: str = Field(default="2d", description="How long samples are kept.")
    state_dir: Path = Field(
        default_factory=lambda: state_home() / "prometheus",
        description="Configuration, targets and samples.",
    )
    start_timeout_s: float = Field(default=60.0, gt=0)
    url: str | None = Field(
        default=None,
        description=(
            "URL Grafana's data source reaches this Prometheus at (tierflow grafana "
            "provision). None: http://host:port, 127.0.0.1 when host is a wildcard."
        ),
    )

    @property
    def reach_url(self) -> str:
        """The URL clients use: ``url``, or one built from ``host`` and ``port``."""
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in WILDCARD_HOSTS else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
