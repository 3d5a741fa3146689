"""YOLO detector on onnxruntime's CPU provider (a local ONNX file, e.g. an Ultralytics export).

The input name, batch size and side come from the model; class names from its metadata
(Ultralytics' ``names``) unless given; the output layout (v5, v8/11, or YOLOv4's two
outputs) is read from the output shapes. A model with a fixed batch (often 1) is fed that
many images per run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]

from tierflow.operators.vision.detectors.base import DetectorError
from tierflow.operators.vision.detectors.yolo import (
    Batch,
    ChunkedYolo,
    YoloDecoder,
    YoloLayout,
    image_size_from_metadata,
    names_from_metadata,
    v4_rows,
)

_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxDetector(ChunkedYolo):
    """A YOLO ONNX model run in-process with onnxruntime (CPU).

    Args:
        model_path: the ``.onnx`` file.
        input_size: side in pixels of the model input; required only when the model's input
            height and width are dynamic and its metadata has no ``imgsz``.
        labels: class names by class id; default: the model's ``names`` metadata, else COCO.
        layout: output layout (``auto``, ``v5``, ``v8``, ``v8-transposed``; ``yolo11`` = ``v8``).
        conf_threshold: minimum confidence in [0, 1].
        iou_threshold: NMS IoU threshold in [0, 1].
        max_detections: at most this many detections per image.
        intra_op_threads: onnxruntime threads for one run; default all cores.
        max_batch: at most this many images per run for a dynamic-batch model (None: all).

    Attributes:
        name: ``onnx:<file stem>``.
        input_size: side in pixels of the images ``detect`` expects.
        labels: the class names.

    Raises:
        DetectorError: the file is missing or not a loadable ONNX model, or its input/output
            shape is not a YOLO one.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        input_size: int | None = None,
        labels: Sequence[str] | None = None,
        layout: YoloLayout | str = YoloLayout.AUTO,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int = 300,
        intra_op_threads: int | None = None,
        max_batch: int | None = None,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            msg = f"ONNX model {path} does not exist or is not a file"
            raise DetectorError(msg)
        self._session: ort.InferenceSession | None = _open_session(path, intra_op_threads)
        self.name = f"onnx:{path.stem}"
        metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self._decoder = YoloDecoder(
            labels if labels is not None else names_from_metadata(metadata),
            layout,
            conf_threshold,
            iou_threshold,
            max_detections,
        )
        self.labels: tuple[str, ...] = self._decoder.labels

        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            msg = f"{path}: a YOLO model takes one image input, this one takes {names}"
            raise DetectorError(msg)
        image_input = inputs[0]
        self._input_name: str = image_input.name
        self._output_names: list[str] = [outputs[0].name]
        output_shape = list(outputs[0].shape)
        if self._is_v4(outputs):
            # YOLOv4's boxes and confidences, joined into the v8-transposed layout per batch.
            self._output_names = [outputs[0].name, outputs[1].name]
            anchors, classes = outputs[0].shape[1], outputs[1].shape[2]
            width = 4 + classes if isinstance(classes, int) else None
            output_shape = [outputs[0].shape[0], anchors, width]
            self._decoder.layout = YoloLayout.V8_TRANSPOSED
        if image_input.type not in _INPUT_TYPES:
            msg = f"{path}: input {image_input.name!r} is {image_input.type}, expected float/fp16"
            raise DetectorError(msg)
        self._dtype = _INPUT_TYPES[image_input.type]
        self.input_size = _input_side(path, image_input.shape, input_size, metadata)
        batch = image_input.shape[0]
        self._fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None
        self._max_batch = self._fixed_batch or max_batch
        try:
            self._decoder.check_output_shape(output_shape)
        except DetectorError as exc:
            msg = f"{path}: output {outputs[0].name!r}: {exc}"
            raise DetectorError(msg) from None

    def _is_v4(self, outputs: Sequence[ort.NodeArg]) -> bool:
        """Two outputs shaped (N, A, 1, 4) and (N, A, C), or the layout says v4."""
        shapes = [list(o.shape) for o in outputs]
        looks = len(shapes) == 2 and len(shapes[0]) == 4 and len(shapes[1]) == 3
        if self._decoder.layout is YoloLayout.V4 and not looks:
            msg = f"layout v4 needs outputs (N, A, 1, 4) and (N, A, C), got {shapes}"
            raise DetectorError(msg)
        return looks and self._decoder.layout in (YoloLayout.AUTO, YoloLayout.V4)

    def _runner(self) -> Callable[[Batch], npt.NDArray[np.generic]]:
        session = self._session
        if session is None:
            msg = "the detector is closed"
            raise DetectorError(msg)
        return lambda chunk: self._run(session, chunk)

    def _run(self, session: ort.InferenceSession, chunk: Batch) -> npt.NDArray[np.generic]:
        try:
            outputs = session.run(self._output_names, {self._input_name: chunk})
        # onnxruntime's errors derive from Exception directly (Fail, InvalidArgument...).
        except Exception as exc:
            msg = f"onnxruntime failed on a batch of shape {chunk.shape}: {exc}"
            raise DetectorError(msg) from exc
        arrays: list[npt.NDArray[np.generic]] = []
        for name, value in zip(self._output_names, outputs, strict=True):
            if not isinstance(value, np.ndarray):
                msg = f"output {name!r} is {type(value).__name__}"
                raise DetectorError(msg)
            arrays.append(value)
        if len(arrays) == 2:
            return v4_rows(arrays[0], arrays[1], self.input_size)
        return arrays[0]

    def close(self) -> None:
        """Release the onnxruntime session; ``detect`` fails afterwards."""
        self._session = None


def _open_session(path: Path, intra_op_threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or os.cpu_count() or 1
    # One graph runs at a time; inter-op parallelism only adds threads competing for cores.
    options.inter_op_num_threads = 1
    # Idle threads spinning for work would steal the cores that resize and the JPEG codec
    # share with inference in the pipeline.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # onnxruntime raises its own Exception subclasses (InvalidProtobuf, Fail, InvalidGraph...).
    except Exception as exc:
        msg = f"cannot load ONNX model {path}: {exc}"
        raise DetectorError(msg) from exc


def _input_side(
    path: Path,
    shape: Sequence[int | str | None],
    requested: int | None,
    metadata: dict[str, str],
) -> int:
    channels_ok = shape[1] == 3 or not isinstance(shape[1], int) if len(shape) == 4 else False
    if not channels_ok:
        msg = f"{path}: expected an image input (N, 3, S, S), got {list(shape)}"
        raise DetectorError(msg)
    height, width = shape[2], shape[3]
    if isinstance(height, int) and isinstance(width, int):
        if height != width:
            msg = f"{path}: input is {width}x{height} pixels; only square inputs are supported"
            raise DetectorError(msg)
        if requested is not None and requested != height:
            msg = f"{path}: input_size={requested} but the model takes {height}x{height} pixels"
            raise DetectorError(msg)
        return height
    side = requested or image_size_from_metadata(metadata)
    if side is None:
        msg = f"{path}: the input {list(shape)} has a dynamic size; pass input_size (pixels)"
        raise DetectorError(msg)
    return side
