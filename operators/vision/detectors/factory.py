"""Build the configured detector backend.

Imports stay lazy: a Haar worker never loads onnxruntime, an ONNX worker never loads
tritonclient.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from tierflow.operators.vision.detectors.base import Detector, DetectorError
from tierflow.settings import DetectorSettings


def _sized(
    build: Callable[[int | None], Detector], input_size: int | None, quality: int
) -> Detector:
    """A model's own fixed input size wins; a dynamic one takes ``quality``."""
    try:
        return build(input_size)
    except DetectorError:
        if input_size is not None:
            raise
        return build(quality)


def make_detector(
    settings: DetectorSettings, quality: int, input_size: int | None = None
) -> Detector:
    """The detector of ``settings.backend`` for frames of ``quality``.

    The detect service runs ``settings.threads`` inference calls at once, so local backends
    get ``cores / threads`` threads each: the cores are used without oversubscribing them,
    and a call's thread CPU time is its whole cost (what the control plane measures).

    Args:
        settings: the detector section of the settings.
        quality: the quality (pixels) the detect service serves.
        input_size: the model's input side in pixels when it differs from ``quality``;
            a model with a fixed input size brings its own.

    Raises:
        DetectorError: the backend cannot be built (missing model file, server down...).
    """
    inner = max(1, (os.cpu_count() or 1) // settings.threads)
    if settings.backend == "haar":
        import cv2

        from tierflow.operators.vision.detectors.haar import HaarDetector

        cv2.setNumThreads(inner)  # process-wide: the detect service is this process
        return HaarDetector(input_size or quality, settings.haar_cascades)
    if settings.backend == "null":
        from tierflow.operators.vision.detectors.null import NullDetector

        return NullDetector(input_size or quality)
    if settings.backend == "onnx":
        from tierflow.operators.vision.detectors.onnx import OnnxDetector

        model = settings.onnx_model
        if model is None:
            msg = "the onnx backend needs a model file (--model or TIERFLOW_DETECTOR__ONNX_MODEL)"
            raise DetectorError(msg)
        return _sized(
            lambda size: OnnxDetector(
                model,
                input_size=size,
                intra_op_threads=inner,
                conf_threshold=settings.conf_threshold,
                iou_threshold=settings.iou_threshold,
            ),
            input_size,
            quality,
        )
    from tierflow.operators.vision.detectors.triton import TritonDetector

    return _sized(
        lambda size: TritonDetector(
            settings.triton_url,
            settings.triton_model,
            protocol=settings.triton_protocol,
            input_size=size,
            conf_threshold=settings.conf_threshold,
            iou_threshold=settings.iou_threshold,
        ),
        input_size,
        quality,
    )
