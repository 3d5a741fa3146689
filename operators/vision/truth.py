"""Ground truth for a user's own frames: COCO instances files and MOT ``gt.txt``.

Both map a frame of a source to its true objects (:class:`Detections` in the pixels of the
source's own frames), so F1 (seed paper §IV-B) can be measured on the user's data as on
generated scenes.

* **COCO** (``instances_*.json``): labels an image folder by file name. Boxes are
  ``[x, y, width, height]`` in the image's pixels; the label is the category's ``name``.
  ``iscrowd`` regions are left out (COCO's evaluation ignores them rather than counting
  them as objects to find; leaving them out is the nearest a per-box F1 gets). An image
  the file lists without annotations has no objects; one it does not list is unlabelled
  (no F1 for that frame).
* **MOT** (``gt.txt``, MOTChallenge): labels a video, or a sequence's image folder
  (``img1/``), by frame number, 1 for the first frame. Rows are ``frame, id, left, top,
  width, height, conf, class, visibility``; a row with ``conf`` 0 is not an object to find
  (MOT's "ignore" flag), and only class 1 (pedestrian) counts when the file has a class
  column (MOT16/17/20: other classes are vehicles, distractors, reflections). MOT15's
  files put -1 there, which counts. The label is ``person`` (the COCO name). Frames up to
  the last the file mentions, or ``frames`` when given (``seqLength`` of ``seqinfo.ini``),
  are labelled; a frame with no row has no objects.
"""

from __future__ import annotations

import configparser
import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tierflow.errors import TierflowError
from tierflow.operators.vision.detections import Detections

MOT_LABEL = "person"
MOT_PEDESTRIAN = 1


class TruthError(TierflowError):
    """A ground-truth file cannot be read."""


class Truth(Protocol):
    """The true objects of a source's frames."""

    description: str

    def for_frame(self, index: int, name: str | None, size: tuple[int, int]) -> Detections | None:
        """The objects of frame ``index`` (0 for the first; ``name`` its file, if any).

        Args:
            index: position of the frame in the source, from 0.
            name: the frame's file name, for sources that are folders of images.
            size: (width, height) of the frame in pixels, what the boxes refer to.

        Returns:
            The objects, or None when the file does not label this frame.
        """
        ...


@dataclass(frozen=True)
class _Labelled:
    boxes: npt.NDArray[np.float32]
    labels: tuple[str, ...]
    size: tuple[int, int] | None


def _detections(found: _Labelled, size: tuple[int, int]) -> Detections:
    if not found.labels:
        return Detections.empty(size)
    detections = Detections.from_lists(found.boxes.tolist(), list(found.labels), found.size or size)
    return detections.scaled_to(size) if detections.image_size != size else detections


class CocoTruth:
    """An image folder's truth from a COCO instances file, by file name."""

    def __init__(self, path: Path) -> None:
        self.description = f"COCO {path.name}"
        try:
            data = json.loads(path.read_text())
            categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
            images = {int(i["id"]): i for i in data["images"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = f"{path} is not a COCO instances file (images, annotations, categories): {exc}"
            raise TruthError(msg) from None
        boxes: dict[int, list[list[float]]] = defaultdict(list)
        labels: dict[int, list[str]] = defaultdict(list)
        for n, annotation in enumerate(data.get("annotations", [])):
            try:
                if annotation.get("iscrowd", 0):
                    continue
                image_id = int(annotation["image_id"])
                x, y, w, h = (float(v) for v in annotation["bbox"])
                label = categories[int(annotation["category_id"])]
            except (KeyError, TypeError, ValueError) as exc:
                msg = f"{path}: annotation {n} has no valid image_id, bbox or category: {exc}"
                raise TruthError(msg) from None
            if image_id not in images:
                msg = f"{path}: annotation {n} refers to image {image_id}, which is not listed"
                raise TruthError(msg)
            boxes[image_id].append([x, y, x + w, y + h])
            labels[image_id].append(label)
        self.by_name: dict[str, _Labelled] = {}
        for image_id, image in images.items():
            size = (int(image["width"]), int(image["height"])) if "width" in image else None
            found = np.asarray(boxes[image_id], np.float32).reshape(-1, 4)
            name = Path(str(image["file_name"])).name
            self.by_name[name] = _Labelled(found, tuple(labels[image_id]), size)
        self.labels = sorted(set(categories.values()))

    def for_frame(self, index: int, name: str | None, size: tuple[int, int]) -> Detections | None:
        """The objects of the image called ``name``; None when the file does not list it."""
        found = self.by_name.get(Path(name).name) if name is not None else None
        return None if found is None else _detections(found, size)


class MotTruth:
    """A video's (or an image sequence's) truth from a MOTChallenge ``gt.txt``, by frame."""

    def __init__(self, path: Path, frames: int | None = None, label: str = MOT_LABEL) -> None:
        self.description = f"MOT {path.name}"
        rows: dict[int, list[list[float]]] = defaultdict(list)
        try:
            with path.open(newline="") as f:
                for line, row in enumerate(csv.reader(f), 1):
                    if not row or not "".join(row).strip():
                        continue
                    if len(row) < 6:
                        msg = f"{path}:{line}: a MOT row needs frame,id,left,top,width,height"
                        raise TruthError(msg)
                    values = [float(v) for v in row]
                    if len(values) >= 7 and values[6] == 0:
                        continue  # MOT's ignore flag
                    if len(values) >= 8 and values[7] not in (MOT_PEDESTRIAN, -1):
                        continue
                    left, top, width, height = values[2:6]
                    rows[int(values[0])].append([left, top, left + width, top + height])
        except OSError as exc:
            msg = f"cannot read {path}: {exc}"
            raise TruthError(msg) from None
        except ValueError as exc:
            msg = f"{path}: a MOT row holds something that is not a number: {exc}"
            raise TruthError(msg) from None
        self.frames = frames if frames is not None else max(rows, default=0)
        self.by_frame = {
            frame: _Labelled(np.asarray(boxes, np.float32), (label,) * len(boxes), None)
            for frame, boxes in rows.items()
        }
        self.labels = [label]

    def for_frame(self, index: int, name: str | None, size: tuple[int, int]) -> Detections | None:
        """The objects of frame ``index + 1`` (MOT counts from 1); None past the sequence."""
        frame = index + 1
        if frame > self.frames:
            return None
        found = self.by_frame.get(frame)
        return Detections.empty(size) if found is None else _detections(found, size)


def seqinfo_frames(gt: Path) -> int | None:
    """``seqLength`` of the ``seqinfo.ini`` of a MOT sequence whose ``gt/gt.txt`` is ``gt``."""
    ini = gt.parent.parent / "seqinfo.ini"
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser()
    parser.read(ini)
    length = parser.get("Sequence", "seqLength", fallback=None)
    return int(length) if length is not None and length.isdigit() else None


def load_truth(path: Path, label: str = MOT_LABEL) -> CocoTruth | MotTruth:
    """The truth in ``path``: a ``.json`` is COCO instances, anything else MOT ``gt.txt``.

    ``label`` names the objects of a MOT file (COCO files name their own categories).

    Raises:
        TruthError: the file is missing or malformed.
    """
    if not path.is_file():
        msg = f"truth file {path} does not exist"
        raise TruthError(msg)
    if path.suffix.lower() == ".json":
        return CocoTruth(path)
    return MotTruth(path, seqinfo_frames(path), label)
