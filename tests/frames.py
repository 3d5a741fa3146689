"""Frames the tests build: sizes and contents chosen to stress the envelope and the limits."""

from __future__ import annotations

import time

import numpy as np

from tierflow.operators.vision.codec import ContentType
from tierflow.topics.envelope import FrameCodec, FrameMeta, Headers


def noise(height: int, width: int, seed: int) -> np.ndarray:
    """Random BGR pixels: the worst case for JPEG size."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def build_frames(codec: FrameCodec, source: str) -> list[tuple[bytes, Headers]]:
    """A small JPEG, a 1080p JPEG of noise at quality 100, a PNG and a raw 1080p array."""
    cases = [
        (noise(64, 64, 0), ContentType.JPEG, codec),
        (
            noise(1080, 1920, 1),
            ContentType.JPEG,
            FrameCodec(ContentType.JPEG, 100, codec.max_bytes),
        ),
        (noise(120, 160, 2), ContentType.PNG, codec),
        (noise(1080, 1920, 3), ContentType.RAW, codec),
    ]
    out = []
    for seq, (image, content, c) in enumerate(cases):
        meta = FrameMeta(
            source,
            seq,
            time.time_ns(),
            512,
            epoch=seq,
            content_type=content,
            stamps={"camera.out": time.time_ns()},
            extra={"x-binary": bytes(range(256))},
        )
        out.append(c.encode(image, meta))
    return out
