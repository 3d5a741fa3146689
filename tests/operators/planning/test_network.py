"""eq. 2's node tree: routes through the fog and the size of a frame."""

from __future__ import annotations

import pytest

from tierflow.operators.planning.errors import ModelError
from tierflow.operators.planning.network import Node, frame_bits, route
from tierflow.operators.planning.workflow import Tier

# Table II of the paper: edge-fog 30 Mbit/s, fog-cloud 10 Gbit/s
NODES = {
    "e1": Node("e1", Tier.EDGE, "f1", 30.0, 0.004),
    "e2": Node("e2", Tier.EDGE, "f1", 30.0, 0.004),
    "f1": Node("f1", Tier.FOG, "c1", 10_000.0, 0.005),
    "c1": Node("c1", Tier.CLOUD),
}


def test_frame_size_is_gamma_times_side_squared() -> None:
    assert frame_bits(512, 2.0) == 2.0 * 512 * 512
    with pytest.raises(ModelError, match="must be > 0"):
        frame_bits(0, 2.0)


def test_edge_to_cloud_transfer_passes_through_the_fog() -> None:
    assert route(NODES, "e1", "c1") == ("e1", "f1")


def test_sideways_or_downward_route_is_not_a_path() -> None:
    assert route(NODES, "e1", "e2") is None
    assert route(NODES, "c1", "e1") is None
