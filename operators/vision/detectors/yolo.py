"""YOLO pre- and post-processing shared by the ONNX and Triton detector backends.

Pre-processing letterboxes BGR frames to the model's square input and packs them as a float32
NCHW RGB batch in [0, 1]. Post-processing decodes the output layouts in use:

- YOLOv5: ``(N, anchors, 5 + C)`` = cx, cy, w, h, objectness, C class scores;
- YOLOv8 / YOLO11: ``(N, 4 + C, anchors)`` = cx, cy, w, h, C class scores (no objectness);
- the same transposed, ``(N, anchors, 4 + C)``, as some exporters write it;
- YOLOv4 (the seed paper's model) as pytorch-YOLOv4's ``demo_darknet2onnx.py`` exports
  darknet weights: two outputs, boxes ``(N, anchors, 1, 4)`` = x1, y1, x2, y2 as fractions
  of the input side, and ``(N, anchors, C)`` class confidences (objectness already
  multiplied in); :func:`v4_rows` turns them into the transposed v8 layout.

Boxes are in pixels of the model input (as Ultralytics exports them). Each anchor keeps its
best class; candidates under the confidence threshold are dropped, then a greedy class-aware
NMS keeps at most ``max_detections``, and boxes are mapped back to the pixels of the image
given to ``detect`` (undoing the letterbox).
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Boxes, Detections, box_iou
from tierflow.operators.vision.detectors.base import DetectorError

COCO_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip
"""The 80 COCO class names in the order of the class ids of COCO-trained YOLO models."""

PAD_VALUE = 114
"""Grey of the letterbox border, the value Ultralytics trains with."""

Batch = npt.NDArray[np.float32]
"""(N, 3, S, S) float32 RGB in [0, 1]: the model input."""


class YoloLayout(enum.StrEnum):
    """How a YOLO model lays out its single output tensor."""

    AUTO = "auto"
    V5 = "v5"
    """(N, anchors, 5 + C): cx, cy, w, h, objectness, class scores."""
    V8 = "v8"
    """(N, 4 + C, anchors): cx, cy, w, h, class scores; YOLOv8 and YOLO11."""
    V8_TRANSPOSED = "v8-transposed"
    """(N, anchors, 4 + C): the v8 layout with anchors first."""
    V4 = "v4"
    """Two outputs (N, anchors, 1, 4) fractions x1y1x2y2 and (N, anchors, C): YOLOv4."""

    @classmethod
    def parse(cls, value: str | YoloLayout) -> YoloLayout:
        """The layout named by ``value``; accepts ``yolov5``, ``yolov8``, ``yolo11`` too."""
        aliases = {
            "yolov4": "v4",
            "yolov5": "v5",
            "yolov8": "v8",
            "yolo11": "v8",
            "yolov11": "v8",
            "v11": "v8",
        }
        text = str(value).lower()
        try:
            return cls(aliases.get(text, text))
        except ValueError:
            known = ", ".join([*(m.value for m in cls), *aliases])
            msg = f"unknown YOLO layout {value!r}; expected one of {known}"
            raise ValueError(msg) from None


def resolve_layout(
    shape: Sequence[int], num_classes: int, layout: YoloLayout = YoloLayout.AUTO
) -> YoloLayout:
    """The concrete layout of an output of ``shape`` for a model of ``num_classes`` classes.

    ``AUTO`` picks the one layout the shape fits; when two fit, the reading with more anchors
    wins (models have far more anchors than channels). An explicit layout is only checked.

    Raises:
        DetectorError: the shape fits no layout (or not the requested one), or is ambiguous.
    """
    if len(shape) != 3:
        msg = f"a YOLO output must have 3 dimensions (N, ., .), got shape {tuple(shape)}"
        raise DetectorError(msg)
    _, rows, cols = shape
    fits = {
        YoloLayout.V4: (False, 0),  # two outputs: v4_rows makes them v8-transposed first
        YoloLayout.V8: (rows == 4 + num_classes, cols),
        YoloLayout.V5: (cols == 5 + num_classes, rows),
        YoloLayout.V8_TRANSPOSED: (cols == 4 + num_classes, rows),
    }
    expected = (
        f"(N, {4 + num_classes}, anchors) for v8/11, (N, anchors, {5 + num_classes}) for v5"
        f" or (N, anchors, {4 + num_classes}) for transposed v8"
    )
    if layout is not YoloLayout.AUTO:
        if not fits[layout][0]:
            msg = (
                f"output shape {tuple(shape)} is not a {layout.value} layout for {num_classes}"
                f" classes; expected {expected}"
            )
            raise DetectorError(msg)
        return layout
    candidates = sorted(
        ((anchors, name) for name, (ok, anchors) in fits.items() if ok), reverse=True
    )
    if not candidates:
        msg = (
            f"output shape {tuple(shape)} fits no YOLO layout for {num_classes} classes;"
            f" expected {expected} (pass the model's class names if it has another class count)"
        )
        raise DetectorError(msg)
    if len(candidates) > 1 and candidates[0][0] == candidates[1][0]:
        msg = f"output shape {tuple(shape)} is ambiguous; pass the layout explicitly"
        raise DetectorError(msg)
    return candidates[0][1]


def v4_rows(
    boxes: npt.NDArray[np.generic], confs: npt.NDArray[np.generic], input_size: int
) -> npt.NDArray[np.float32]:
    """YOLOv4's two outputs as one (N, anchors, 4 + C) v8-transposed array, in input pixels.

    Args:
        boxes: (N, anchors, 1, 4) x1, y1, x2, y2 as fractions of the input side.
        confs: (N, anchors, C) class confidences in [0, 1].
        input_size: the model's input side, pixels.

    Raises:
        DetectorError: the shapes are not YOLOv4's or do not agree.
    """
    if boxes.ndim != 4 or boxes.shape[2:] != (1, 4) or confs.ndim != 3:
        msg = f"YOLOv4 outputs must be (N, A, 1, 4) and (N, A, C), got {boxes.shape}, {confs.shape}"
        raise DetectorError(msg)
    if boxes.shape[:2] != confs.shape[:2]:
        msg = f"YOLOv4 outputs disagree on (N, A): {boxes.shape[:2]} vs {confs.shape[:2]}"
        raise DetectorError(msg)
    xyxy = np.asarray(boxes[:, :, 0, :], np.float32) * np.float32(input_size)
    centre = (xyxy[..., :2] + xyxy[..., 2:]) / 2
    size = xyxy[..., 2:] - xyxy[..., :2]
    return np.concatenate([centre, size, np.asarray(confs, np.float32)], axis=-1)


def names_from_metadata(metadata: Mapping[str, str]) -> tuple[str, ...] | None:
    """Class names from model metadata, or None when it has no ``names`` entry.

    Ultralytics exports store ``names`` as a Python dict literal, ``{0: 'person', ...}``; a
    list literal is accepted too.

    Raises:
        DetectorError: ``names`` is present but is not such a literal.
    """
    raw = metadata.get("names")
    if raw is None:
        return None
    problem = "is not a dict {0: 'name', ...} or a list of names"
    try:
        # literal_eval evaluates literals only: model files are untrusted input.
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, dict):
        if sorted(value) != list(range(len(value))):
            problem = f"has class ids {sorted(value)!r}, not 0..{len(value) - 1}"
            value = None
        else:
            value = [value[i] for i in range(len(value))]
    if isinstance(value, list | tuple) and value and all(isinstance(n, str) for n in value):
        return tuple(value)
    msg = f"model metadata 'names' {problem}: {raw[:200]!r}"
    raise DetectorError(msg)


def image_size_from_metadata(metadata: Mapping[str, str]) -> int | None:
    """The square input side in pixels from Ultralytics' ``imgsz`` metadata, else None."""
    try:
        value = ast.literal_eval(metadata.get("imgsz", "None"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, list) and len(value) == 2 and value[0] == value[1]:
        side = value[0]
        return side if isinstance(side, int) and side > 0 else None
    return None


@dataclass(frozen=True)
class Letterbox:
    """How one image was fitted into the model input, to map boxes back.

    Attributes:
        image_size: (width, height) in pixels of the original image.
        scale: (x, y) model-input pixels per original pixel.
        offset: (left, top) padding in model-input pixels.
    """

    image_size: tuple[int, int]
    scale: tuple[float, float] = (1.0, 1.0)
    offset: tuple[int, int] = (0, 0)

    def to_image(self, boxes: Boxes) -> Boxes:
        """(N, 4) xyxy boxes in model-input pixels -> pixels of the original image, clipped."""
        sx, sy = self.scale
        left, top = self.offset
        shift = np.array([left, top, left, top], np.float32)
        scale = np.array([sx, sy, sx, sy], np.float32)
        out: Boxes = (boxes - shift) / scale
        w, h = self.image_size
        np.clip(out, 0, np.array([w, h, w, h], np.float32), out=out)
        return out


def _as_bgr(image: Image, index: int) -> Image:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image)
        msg = f"image {index} must be a non-empty uint8 BGR array, got {got}"
        raise DetectorError(msg)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    msg = f"image {index} must be (height, width[, 1|3|4]), got shape {image.shape}"
    raise DetectorError(msg)


def letterbox(image: Image, size: int) -> tuple[Image, Letterbox]:
    """Fit a BGR image into a ``size`` x ``size`` pixel square, keeping its aspect ratio.

    The image is resized so its longer side is ``size`` and centred on a grey border; an
    image already ``size`` x ``size`` is returned as is.
    """
    h, w = image.shape[:2]
    if (w, h) == (size, size):
        return image, Letterbox((w, h))
    ratio = min(size / w, size / h)
    new_w, new_h = max(1, round(w * ratio)), max(1, round(h * ratio))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox((w, h), (new_w / w, new_h / h), (left, top))


def preprocess(images: Sequence[Image], size: int) -> tuple[Batch, list[Letterbox]]:
    """BGR uint8 images of any size -> the (N, 3, size, size) float32 RGB batch in [0, 1].

    Args:
        images: BGR (or grey, or BGRA) uint8 arrays; normally already ``size`` x ``size``.
        size: side in pixels of the model input.

    Returns:
        The batch and, per image, the letterbox that maps boxes back to its pixels.

    Raises:
        DetectorError: an image is not a uint8 image array.
    """
    fitted, boxes = [], []
    for i, image in enumerate(images):
        square, box = letterbox(_as_bgr(image, i), size)
        fitted.append(square)
        boxes.append(box)
    if not fitted:
        return np.zeros((0, 3, size, size), np.float32), []
    stacked = np.stack(fitted)[..., ::-1].transpose(0, 3, 1, 2)
    batch = np.ascontiguousarray(stacked, dtype=np.float32)
    batch /= np.float32(255.0)
    return batch, boxes


def nms(
    boxes: Boxes,
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.intp],
    iou_threshold: float,
    max_detections: int,
) -> npt.NDArray[np.intp]:
    """Greedy class-aware non-maximum suppression.

    Args:
        boxes: (N, 4) xyxy boxes in pixels.
        scores: (N,) confidences.
        class_ids: (N,) class of each box; boxes of different classes never suppress each other.
        iou_threshold: a box is dropped when its IoU with a kept box of its class exceeds this.
        max_detections: at most this many indices are returned.

    Returns:
        Indices of the kept boxes, highest score first (ties keep the lower index first).
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        overlap = box_iou(boxes[best : best + 1], boxes[rest])[0]
        order = rest[(overlap <= iou_threshold) | (class_ids[rest] != class_ids[best])]
    return np.asarray(keep, dtype=np.intp)


class YoloDecoder:
    """Turns a YOLO output batch into one :class:`Detections` per image.

    Args:
        labels: class names by class id (COCO's 80 when None).
        layout: the output layout, or AUTO to infer it from each output's shape.
        conf_threshold: minimum confidence in [0, 1] (v5: objectness x class score).
        iou_threshold: NMS IoU in [0, 1] above which a lower-scored box of the same class goes.
        max_detections: at most this many detections per image.
    """

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        layout: YoloLayout | str = YoloLayout.AUTO,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int = 300,
    ) -> None:
        problems = []
        if labels is not None and not labels:
            problems.append("labels must not be empty")
        if not 0.0 <= conf_threshold <= 1.0:
            problems.append(f"conf_threshold must be in [0, 1], got {conf_threshold}")
        if not 0.0 <= iou_threshold <= 1.0:
            problems.append(f"iou_threshold must be in [0, 1], got {iou_threshold}")
        if max_detections < 1:
            problems.append(f"max_detections must be >= 1, got {max_detections}")
        if problems:
            msg = "invalid YOLO decoder settings: " + "; ".join(problems)
            raise ValueError(msg)
        self.labels: tuple[str, ...] = tuple(labels) if labels is not None else COCO_NAMES
        self.layout = YoloLayout.parse(layout)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self._names = np.asarray(self.labels, dtype=np.str_)

    def check_output_shape(self, shape: Sequence[int | str | None]) -> None:
        """Fail early on a model whose static output shape no layout fits.

        Dynamic dimensions (names or None) are checked when the first output arrives.

        Raises:
            DetectorError: the shape fits no layout for this decoder's classes.
        """
        if len(shape) != 3:
            msg = f"a YOLO output must have 3 dimensions (N, ., .), got {list(shape)}"
            raise DetectorError(msg)
        _, rows, cols = shape
        if isinstance(rows, int) and isinstance(cols, int):
            resolve_layout((1, rows, cols), len(self.labels), self.layout)

    def decode(
        self, output: npt.NDArray[np.generic], boxes: Sequence[Letterbox]
    ) -> list[Detections]:
        """Decode a raw output batch.

        Args:
            output: the model output, (N, ., .) as described by the layout.
            boxes: per image, how it was letterboxed (from :func:`preprocess`).

        Returns:
            One Detections per image, boxes in pixels of the original image.

        Raises:
            DetectorError: the output's shape fits no layout or does not match the batch.
        """
        if output.ndim != 3 or output.shape[0] != len(boxes):
            msg = f"expected a YOLO output (N={len(boxes)}, ., .), got shape {output.shape}"
            raise DetectorError(msg)
        layout = resolve_layout(output.shape, len(self.labels), self.layout)
        preds = np.asarray(output, dtype=np.float32)
        if layout is YoloLayout.V8:
            preds = preds.transpose(0, 2, 1)
        # v5 confidence is objectness x class score; v8/11 class scores stand alone.
        scores = preds[..., 5:] * preds[..., 4:5] if layout is YoloLayout.V5 else preds[..., 4:]
        class_ids = scores.argmax(axis=-1)
        confidence = np.take_along_axis(scores, class_ids[..., None], axis=-1)[..., 0]
        return [
            self._one_image(preds[i, :, :4], confidence[i], class_ids[i], box)
            for i, box in enumerate(boxes)
        ]

    def _one_image(
        self,
        cxcywh: npt.NDArray[np.float32],
        confidence: npt.NDArray[np.float32],
        class_ids: npt.NDArray[np.intp],
        box: Letterbox,
    ) -> Detections:
        candidates = np.flatnonzero(confidence >= self.conf_threshold)
        if candidates.size == 0:
            return Detections.empty(box.image_size)
        centre, half = cxcywh[candidates, :2], cxcywh[candidates, 2:] / 2
        xyxy = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
        scores, classes = confidence[candidates], class_ids[candidates]
        kept = nms(xyxy, scores, classes, self.iou_threshold, self.max_detections)
        return Detections(
            box.to_image(xyxy[kept]),
            scores[kept].astype(np.float32),
            self._names[classes[kept]],
            box.image_size,
        )


def batch_slices(count: int, batch_size: int | None) -> list[slice]:
    """Slices cutting ``count`` images into batches of at most ``batch_size`` (None: one)."""
    step = count if batch_size is None or batch_size <= 0 else batch_size
    return [slice(start, min(start + step, count)) for start in range(0, count, max(step, 1))]


def pad_batch(batch: Batch, size: int) -> Batch:
    """``batch`` padded with black images to exactly ``size`` images (fixed-batch models)."""
    if len(batch) == size:
        return batch
    padding = np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)
    return np.concatenate([batch, padding])


def detect_in_chunks(
    images: Sequence[Image],
    input_size: int,
    decoder: YoloDecoder,
    run: Callable[[Batch], npt.NDArray[np.generic]],
    *,
    dtype: npt.DTypeLike,
    max_batch: int | None,
    fixed_batch: int | None,
) -> list[Detections]:
    """Pre-process, run and decode ``images`` in model-sized chunks (ONNX and Triton alike).

    Args:
        images: BGR images; letterboxed to ``input_size`` pixels.
        input_size: the model's input side, pixels.
        decoder: turns raw outputs into detections in each image's pixels.
        run: one inference call on a (N, 3, S, S) batch; returns the raw output.
        dtype: the model's input element type.
        max_batch: most images per call (None: all at once).
        fixed_batch: a model's fixed batch size: chunks are padded up to it.
    """
    batch, boxes = preprocess(images, input_size)
    results: list[Detections] = []
    for part in batch_slices(len(batch), fixed_batch or max_batch):
        chunk = batch[part].astype(dtype, copy=False)
        if fixed_batch is not None:
            chunk = pad_batch(chunk, fixed_batch)
        output = run(chunk)[: part.stop - part.start]
        results.extend(decoder.decode(output, boxes[part]))
    return results


class ChunkedYolo:
    """What the ONNX and Triton backends share: letterbox, infer in model-sized chunks, decode.

    A subclass sets the attributes below and implements :meth:`_runner`.

    Attributes:
        name: backend and model.
        input_size: side in pixels of the images :meth:`detect` expects.
        labels: the class names.
    """

    name: str
    input_size: int
    labels: tuple[str, ...]
    _decoder: YoloDecoder
    _dtype: npt.DTypeLike
    _max_batch: int | None
    _fixed_batch: int | None

    def _runner(self) -> Callable[[Batch], npt.NDArray[np.generic]]:
        """One inference call on a (N, 3, S, S) batch; DetectorError when closed."""
        raise NotImplementedError

    def _context(self) -> str:
        """What an inference error is prefixed with (where the model runs)."""
        return self.name

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        """Detect objects in each image; blocking (one call per chunk).

        Args:
            images: BGR uint8 arrays, normally ``input_size`` x ``input_size`` pixels; other
                sizes are letterboxed.

        Returns:
            One Detections per image, boxes in pixels of that image.

        Raises:
            DetectorError: the detector is closed, an image is not an image, or the model
                failed, is unreachable or produced an output of an unexpected shape.
        """
        run = self._runner()
        try:
            return detect_in_chunks(
                images,
                self.input_size,
                self._decoder,
                run,
                dtype=self._dtype,
                max_batch=self._max_batch,
                fixed_batch=self._fixed_batch,
            )
        except DetectorError as exc:
            msg = f"{self._context()}: {exc}"
            raise DetectorError(msg) from exc
