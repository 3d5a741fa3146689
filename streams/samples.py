"""Sample user data made from generated scenes: a video with MOT truth, images with COCO.

``tierflow sources sample DIR`` writes what a newcomer would bring — a non-square video
file and its MOTChallenge ``gt.txt``, a folder of images and its COCO instances file, and
a sources file naming both — so the whole path of docs/sources.md can be tried without
data of one's own. The objects are the generated scenes' faces (what the bundled Haar
detector finds), placed in a wider frame with grey bands, so the letterbox and the
mapping back to source pixels are exercised too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tierflow.errors import TierflowError
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.scene import FACE, Scene, SceneConfig

WIDTH, HEIGHT = 768, 512
"""Pixels of the sample frames: a 3:2 frame around a square scene."""
BAND = (WIDTH - HEIGHT) // 2
GREY = 114


class SampleError(TierflowError):
    """The sample could not be written."""


@dataclass(frozen=True)
class Sample:
    """What :func:`write_sample` wrote, and the truth it wrote, by frame index."""

    folder: Path
    sources_file: Path
    video: Path
    mot: Path
    images: Path
    coco: Path
    truth: dict[int, Detections]
    """Faces of frame ``n`` (from 0) in pixels of the ``WIDTH`` x ``HEIGHT`` frames."""


def _frame(scene: Scene, t_s: float) -> tuple[np.ndarray, Detections]:
    image, found = scene.render(t_s)
    canvas = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
    canvas[:, BAND : BAND + HEIGHT] = image
    faces = found.with_labels([FACE])
    shifted = faces.xyxy + np.array([BAND, 0, BAND, 0], np.float32)
    return canvas, Detections(shifted, faces.confidence, faces.labels, (WIDTH, HEIGHT))


def write_sample(folder: Path, frames: int = 50, fps: float = 5.0, seed: int = 0) -> Sample:
    """Write the sample into ``folder`` (created): ``frames`` frames at ``fps``.

    Raises:
        SampleError: OpenCV cannot write the video here.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scene = Scene(SceneConfig.for_size(seed, HEIGHT))
    video, mot = folder / "lobby.avi", folder / "lobby-gt.txt"
    images, coco = folder / "shop", folder / "shop-instances.json"
    images.mkdir(exist_ok=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        msg = f"OpenCV cannot write an MJPG video to {video}"
        raise SampleError(msg)
    rows: list[str] = []
    truth: dict[int, Detections] = {}
    entries: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for n in range(frames):
        canvas, faces = _frame(scene, n / fps)
        writer.write(canvas)
        truth[n] = faces
        name = f"{n:06d}.jpg"
        cv2.imwrite(str(images / name), canvas)
        entries.append({"id": n + 1, "file_name": name, "width": WIDTH, "height": HEIGHT})
        for track, (x1, y1, x2, y2) in enumerate(faces.xyxy.tolist(), 1):
            w, h = x2 - x1, y2 - y1
            rows.append(f"{n + 1},{track},{x1:.1f},{y1:.1f},{w:.1f},{h:.1f},1,1,1")
            annotations.append({
                "id": len(annotations) + 1, "image_id": n + 1, "category_id": 1,
                "bbox": [round(x1, 1), round(y1, 1), round(w, 1), round(h, 1)],
                "area": round(w * h, 1), "iscrowd": 0,
            })  # fmt: skip
    writer.release()
    mot.write_text("\n".join(rows) + "\n")
    categories = [{"id": 1, "name": FACE}]
    coco.write_text(json.dumps({"images": entries, "annotations": annotations,
                                "categories": categories}))  # fmt: skip
    sources = folder / "sources.toml"
    sources.write_text(
        "# Written by `tierflow sources sample`: your own cameras look the same.\n"
        "[[sources]]\n"
        'id = "lobby"\n'
        'uri = "lobby.avi"          # a video file\n'
        f"fps = {fps:g}\n"
        'truth = "lobby-gt.txt"     # MOTChallenge gt.txt\n'
        'label = "face"             # what its boxes are (MOT files are people by default)\n'
        "\n"
        "[[sources]]\n"
        'id = "shop"\n'
        'uri = "shop"               # a folder of images, in name order\n'
        f"fps = {fps:g}\n"
        'truth = "shop-instances.json"  # COCO instances\n'
    )
    return Sample(folder, sources, video, mot, images, coco, truth)
