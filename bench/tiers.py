"""Emulated tiers measured against their model: transfer per pair of hosts, CPU per host.

Brings up the continuum of SCENARIO (``docs/scenarios/grid5000.toml`` by default: Table
II's links, Table I's cores scaled to this machine) unless one is up, then for each pair
``SRC:DST`` sends 512 px JPEG frames one at a time from SRC to a reader on DST and compares
the median send-to-receive time with ``d_src + 8S/w_src + d_dst + 8S/w_dst``; then runs a
Haar detector for ``--seconds`` on each ``--cpu`` host at once and prints frames/s per host
beside its quota. One JSON line. Needs root. Takes the continuum down again if it brought
it up.

    sudo .venv/bin/python bench/tiers.py
    sudo .venv/bin/python bench/tiers.py --pairs edge0:cloud edge0:fog --cpu edge0 fog
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tierflow.infra.tiers.continuum import Continuum
from tierflow.infra.tiers.probe import throughput, transfer
from tierflow.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario", nargs="?", type=Path, default=ROOT / "docs/scenarios/grid5000.toml"
    )
    parser.add_argument("--pairs", nargs="+", default=["edge0:cloud", "edge0:fog", "fog:cloud"])
    parser.add_argument("--cpu", nargs="+", default=["edge0", "fog"], help="hosts to load at once")
    parser.add_argument("--frames", type=int, default=8, help="frames per pair (first left out)")
    parser.add_argument("--seconds", type=float, default=4.0, help="detector run per host")
    args = parser.parse_args()
    continuum = Continuum(load_settings())
    ours = continuum.plan() is None
    plan = continuum.up(args.scenario) if ours else continuum.plan()
    assert plan is not None
    try:
        transfers = []
        for pair in args.pairs:
            src, dst = pair.split(":")
            t = transfer(continuum, src, dst, frames=args.frames)
            transfers.append(
                {
                    "pair": pair,
                    "frame_bytes": t.frame_bytes,
                    "measured_ms": round(t.measured_s * 1000, 1),
                    "model_ms": round(t.expected_s * 1000, 1),
                    "ratio": round(t.ratio, 2),
                }
            )
        with ThreadPoolExecutor(len(args.cpu)) as pool:
            runs = {h: pool.submit(throughput, continuum, h, args.seconds) for h in args.cpu}
            cpu = {
                h: {"cores": plan.host(h).cores, "fps": round(run.result(), 2)}
                for h, run in runs.items()
            }
    finally:
        if ours:
            continuum.down()
    # The continuum measured: one already up is measured as it is, whatever SCENARIO says.
    line = {"bench": "tiers", "scenario": str(plan.scenario), "brought_up": ours}
    print(json.dumps({**line, "transfer": transfers, "cpu": cpu}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
