"""The ``[simulation]`` table of an experiment file, parsed and checked.

An experiment file with ``kind = "simulation"`` names the study and its ranges::

    kind = "simulation"
    name = "thesis-fig6-1"
    description = "Seed 003, Fig. 6.1: 20-50 requests on 10 nodes"

    [simulation]
    study = "requests"        # requests | nodes | solver-time | avec-policy-time
    requests = [20, 30, 40, 50]
    nodes = 10
    repeats = 20              # problems drawn per point (avec-policy-time: calls per policy)
    seed = 0

Keys per study (defaults are Table 6.1's, seed 003):

=====================  =====================================================================
study                  keys
=====================  =====================================================================
``requests``           ``requests`` (list, swept), ``nodes`` (10), ``iterative_capacity``
``nodes``              ``nodes`` (list, swept), ``requests`` (25), ``iterative_capacity``
``solver-time``        ``sizes`` (list of [requests, nodes]; Tables 6.2 and 6.3's rows)
``avec-policy-time``   ``dummies`` (20; seed 004 §6's dummy nodes)
=====================  =====================================================================

Every study also takes ``seed`` (0), ``repeats`` and ``time_limit_s`` (10 s, HiGHS per
solve). A wrong key, type or value raises :class:`SimulationError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierflow.errors import ConfigError

STUDIES = ("requests", "nodes", "solver-time", "avec-policy-time")
"""The studies :func:`parse_spec` accepts."""

TABLE_SIZES = ((20, 10), (30, 10), (40, 10), (50, 10), (25, 5), (25, 10), (25, 15), (25, 20))
"""(requests, nodes) of Table 6.2's rows (10 nodes) and Table 6.3's (25 requests), seed 003."""

_COMMON = {"study", "seed", "repeats", "time_limit_s"}
_KEYS = {
    "requests": _COMMON | {"requests", "nodes", "iterative_capacity"},
    "nodes": _COMMON | {"requests", "nodes", "iterative_capacity"},
    "solver-time": _COMMON | {"sizes"},
    "avec-policy-time": _COMMON | {"dummies"},
}
_TOP = {"kind", "name", "description", "simulation"}


class SimulationError(ConfigError):
    """An experiment file's simulation spec is malformed (the message names the key)."""


@dataclass(frozen=True)
class SimulationSpec:
    """A checked simulation spec.

    Attributes:
        name: the experiment's name.
        description: one line on what it reproduces.
        study: one of :data:`STUDIES`.
        seed: seed of every random draw.
        repeats: problems drawn per point (``avec-policy-time``: timed calls per policy).
        requests: requests per problem (the swept values for ``requests``).
        nodes: nodes per problem (the swept values for ``nodes``).
        sizes: (requests, nodes) pairs timed by ``solver-time``.
        iterative_capacity: also run the iterative search that fills nodes by capacity.
        time_limit_s: HiGHS time limit per solve, s.
        dummies: dummy nodes beside AVEC's two real ones.
    """

    name: str
    description: str
    study: str
    seed: int = 0
    repeats: int = 20
    requests: tuple[int, ...] = (25,)
    nodes: tuple[int, ...] = (10,)
    sizes: tuple[tuple[int, int], ...] = TABLE_SIZES
    iterative_capacity: bool = True
    time_limit_s: float = 10.0
    dummies: int = 20

    def table(self) -> dict[str, Any]:
        """The ``[simulation]`` table with every default filled in (JSON-able)."""
        out: dict[str, Any] = {"study": self.study, "seed": self.seed, "repeats": self.repeats}
        if self.study in ("requests", "nodes"):
            swept = self.study
            out[swept] = list(getattr(self, swept))
            other = "nodes" if swept == "requests" else "requests"
            out[other] = getattr(self, other)[0]
            out["iterative_capacity"] = self.iterative_capacity
        elif self.study == "solver-time":
            out["sizes"] = [list(size) for size in self.sizes]
        else:
            out["dummies"] = self.dummies
        if self.study != "avec-policy-time":
            out["time_limit_s"] = self.time_limit_s
        return out


def _fail(message: str) -> SimulationError:
    return SimulationError(f"simulation spec: {message}")


def _int(table: Mapping[str, Any], key: str, default: int, least: int = 1) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"simulation.{key} must be an integer, got {value!r}"
        raise _fail(msg)
    if value < least:
        msg = f"simulation.{key} must be >= {least}, got {value}"
        raise _fail(msg)
    return value


def _ints(table: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = table.get(key)
    if not isinstance(value, list) or not value:
        msg = f"simulation.{key} must be a non-empty list of integers, got {value!r}"
        raise _fail(msg)
    return tuple(_int({key: v}, key, 1) for v in value)


def _sizes(table: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    value = table.get("sizes", [list(s) for s in TABLE_SIZES])
    ok = isinstance(value, list) and value and all(isinstance(v, list) for v in value)
    if not ok or any(len(v) != 2 for v in value):
        msg = f"simulation.sizes must list [requests, nodes] pairs, got {value!r}"
        raise _fail(msg)
    return tuple((_int({"sizes": r}, "sizes", 1), _int({"sizes": n}, "sizes", 1)) for r, n in value)


def parse_spec(spec: Mapping[str, Any]) -> SimulationSpec:
    """Check a parsed experiment file of kind ``simulation`` and fill in the defaults.

    Raises:
        SimulationError: a key is missing, unknown, of the wrong type or out of range; the
            message names it.
    """
    if spec.get("kind") != "simulation":
        msg = f'kind must be "simulation", got {spec.get("kind")!r}'
        raise _fail(msg)
    unknown = sorted(set(spec) - _TOP)
    if unknown:
        msg = f"unknown top-level key {unknown[0]!r}; expected {sorted(_TOP)}"
        raise _fail(msg)
    for key in ("name", "description"):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            msg = f"{key} must be a non-empty string, got {spec.get(key)!r}"
            raise _fail(msg)
    table = spec.get("simulation")
    if not isinstance(table, Mapping):
        msg = f"[simulation] must be a table, got {table!r}"
        raise _fail(msg)
    study = table.get("study")
    if study not in STUDIES:
        msg = f"simulation.study must be one of {list(STUDIES)}, got {study!r}"
        raise _fail(msg)
    unknown = sorted(set(table) - _KEYS[study])
    if unknown:
        allowed = sorted(_KEYS[study])
        msg = f"unknown key simulation.{unknown[0]} for study {study!r}; expected {allowed}"
        raise _fail(msg)
    limit = table.get("time_limit_s", 10.0)
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
        msg = f"simulation.time_limit_s must be a number > 0, got {limit!r}"
        raise _fail(msg)
    capacity = table.get("iterative_capacity", True)
    if not isinstance(capacity, bool):
        msg = f"simulation.iterative_capacity must be true or false, got {capacity!r}"
        raise _fail(msg)
    common: dict[str, Any] = {
        "name": spec["name"],
        "description": spec["description"],
        "study": study,
        "seed": _int(table, "seed", 0, least=0),
        "time_limit_s": float(limit),
    }
    requests: tuple[int, ...]
    nodes: tuple[int, ...]
    if study == "requests":
        requests, nodes = _ints(table, "requests"), (_int(table, "nodes", 10),)
        return SimulationSpec(
            **common, repeats=_int(table, "repeats", 20), requests=requests, nodes=nodes,
            iterative_capacity=capacity,
        )  # fmt: skip
    if study == "nodes":
        requests, nodes = (_int(table, "requests", 25),), _ints(table, "nodes")
        return SimulationSpec(
            **common, repeats=_int(table, "repeats", 20), requests=requests, nodes=nodes,
            iterative_capacity=capacity,
        )  # fmt: skip
    if study == "solver-time":
        return SimulationSpec(**common, repeats=_int(table, "repeats", 20), sizes=_sizes(table))
    return SimulationSpec(
        **common, repeats=_int(table, "repeats", 2000), dummies=_int(table, "dummies", 20, 0)
    )
