"""Synthetic YOLO ONNX models and a real KServe-v2 inference server (MLServer) for the tests.

The models are built with ``onnx.helper``: their output is a constant table of predictions
plus a term proportional to the image's mean brightness, so a test knows exactly which boxes
decoding and NMS must return, and that each image of a batch is run on its own pixels.

MLServer serves them through ``OnnxRuntimeModel``, a custom runtime running the same
file with onnxruntime, in a child process speaking HTTP and gRPC on free ports.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parent.parent

NAMES = ("person", "car", "dog")
"""Class names of the synthetic models (stored in their metadata like Ultralytics does)."""

SIDE = 64
"""Input side in pixels of the synthetic models."""


@dataclass(frozen=True)
class Anchor:
    """One prediction of a synthetic model.

    Attributes:
        xyxy: the box in model-input pixels.
        scores: class scores (before objectness).
        objectness: v5's objectness; v8 models get ``objectness * scores`` as class scores,
            so every layout decodes to the same confidences.
        brightness_gain: per class, added to ``scores`` times the image mean in [0, 1];
            empty for none.
    """

    xyxy: tuple[float, float, float, float]
    scores: tuple[float, ...]
    objectness: float = 1.0
    brightness_gain: tuple[float, ...] = ()


DEMO_ANCHORS = (
    Anchor((8, 8, 32, 32), (0.9, 0.0, 0.0)),  # person 0.9
    Anchor((10, 10, 34, 34), (0.8, 0.0, 0.0)),  # person, IoU 0.72 with the first: suppressed
    Anchor((10, 10, 34, 34), (0.0, 0.7, 0.0)),  # car on the same spot: kept, another class
    Anchor((40, 40, 60, 60), (0.0, 0.0, 0.1)),  # dog under the threshold
    Anchor((40, 40, 60, 60), (0.9, 0.0, 0.0), objectness=0.2),  # 0.18 after objectness
    Anchor((40, 8, 60, 28), (0.0, 0.0, 0.1), brightness_gain=(0.0, 0.0, 0.75)),  # bright only
    Anchor((8, 40, 28, 60), (0.3, 0.6, 0.0)),  # car (its best class)
    Anchor((0, 0, 0, 0), (0.0, 0.0, 0.0)),  # nothing
)
"""With conf 0.25 / IoU 0.45, a black image gives person (8, 8, 32, 32) 0.9, car (10, 10, 34,
34) 0.7 and car (8, 40, 28, 60) 0.6; a white one adds dog (40, 8, 60, 28) 0.85."""


def yolo_tables(anchors: Sequence[Anchor], layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(base, gain) of shape (1, ., .) in ``layout``: the output is ``base + gain * mean``.

    ``layout`` is ``v8`` (N, 4+C, A), ``v8-transposed`` (N, A, 4+C) or ``v5`` (N, A, 5+C).
    """
    rows, gains = [], []
    for a in anchors:
        x1, y1, x2, y2 = a.xyxy
        box = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        gain = a.brightness_gain or (0.0,) * len(a.scores)
        if layout == "v5":
            rows.append([*box, a.objectness, *a.scores])
            gains.append([0.0] * 5 + list(gain))
        else:
            rows.append([*box, *(a.objectness * s for s in a.scores)])
            gains.append([0.0] * 4 + [a.objectness * g for g in gain])
    base, gains_ = np.asarray(rows, np.float32)[None], np.asarray(gains, np.float32)[None]
    if layout == "v8":
        return base.transpose(0, 2, 1), gains_.transpose(0, 2, 1)
    return base, gains_


def yolo_model(
    anchors: Sequence[Anchor] = DEMO_ANCHORS,
    *,
    layout: str = "v8",
    side: int | None = SIDE,
    batch: int | None = None,
    names: Sequence[str] | None = NAMES,
    input_shape: Sequence[int | str] | None = None,
) -> onnx.ModelProto:
    """A YOLO-shaped ONNX model whose output is known in advance: see :func:`yolo_tables`.

    Args:
        anchors: the predictions; all with the same number of classes.
        layout: ``v8``, ``v8-transposed`` or ``v5``.
        side: input side in pixels, or None for a dynamic height and width.
        batch: a fixed batch size, or None for a dynamic one.
        names: class names for the metadata (Ultralytics' ``names`` dict literal and
            ``imgsz``), or None for no metadata.
        input_shape: overrides the declared input shape (to build invalid models).
    """
    base, gain = yolo_tables(anchors, layout)
    n: int | str = batch if batch is not None else "batch"
    declared = input_shape or [n, 3, side or "height", side or "width"]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["mean", "to_n11"], ["mean_n11"]),
            helper.make_node("Mul", ["mean_n11", "gain"], ["brightness"]),
            helper.make_node("Add", ["brightness", "base"], ["output0"]),
        ],
        "synthetic_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(declared))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [n, *base.shape[1:]])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "to_n11"),
            numpy_helper.from_array(gain, "gain"),
            numpy_helper.from_array(base, "base"),
        ],
    )
    # Opset 17 / IR 8: what onnxruntime releases of the last years all load.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if names is not None:
        meta = {"names": repr(dict(enumerate(names))), "imgsz": repr([side or SIDE] * 2)}
        helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path`` and return the path."""
    onnx.save(model, str(path))
    return path


RUNTIME = "OnnxRuntimeModel"
"""The MLServer runtime's attribute name here (``implementation`` of its model settings)."""


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any name imported here

    def __getattr__(name: str) -> type:
        # mlserver and tritonclient.grpc each register the KServe protobuf messages
        # (inference.*) in protobuf's default pool, so a process importing both fails with
        # "duplicate symbol". Only the MLServer child process asks for the runtime: the test
        # process never imports mlserver.
        if name == RUNTIME:
            return _onnx_runtime_class()
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)


@functools.cache
def _onnx_runtime_class() -> type:
    from mlserver import MLModel  # type: ignore[import-untyped]
    from mlserver.codecs import NumpyCodec  # type: ignore[import-untyped]
    from mlserver.types import (  # type: ignore[import-untyped]
        InferenceRequest,
        InferenceResponse,
        MetadataTensor,
    )
    from mlserver.utils import get_model_uri  # type: ignore[import-untyped]

    class OnnxRuntimeModel(MLModel):  # type: ignore[misc]  # mlserver is untyped: MLModel is Any
        """MLServer runtime running an ONNX file (``parameters.uri``) with onnxruntime.

        Its metadata (input/output names, datatypes, shapes) is read from the model, as
        Triton's ONNX backend does, so clients can discover them.
        """

        async def load(self) -> bool:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            uri = await get_model_uri(self.settings)
            self._session = ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])

            def tensors(args: Sequence[ort.NodeArg]) -> list[MetadataTensor]:
                return [
                    MetadataTensor(
                        name=a.name,
                        datatype="FP32",
                        shape=[d if isinstance(d, int) else -1 for d in a.shape],
                    )
                    for a in args
                ]

            self.inputs = tensors(self._session.get_inputs())
            self.outputs = tensors(self._session.get_outputs())
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
            names = [o.name for o in self._session.get_outputs()]
            values = self._session.run(names, feeds)
            outputs = [NumpyCodec.encode_output(n, v) for n, v in zip(names, values, strict=True)]
            return InferenceResponse(
                model_name=self.name, model_version=self.version, outputs=outputs
            )

    OnnxRuntimeModel.__qualname__ = RUNTIME
    return OnnxRuntimeModel


@dataclass(frozen=True)
class InferenceServer:
    """A running server: ``host:port`` addresses without scheme, as tritonclient wants them."""

    http_url: str
    grpc_url: str
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def mlserver(
    root: Path, models: Mapping[str, Path], timeout_s: float = 60.0
) -> Iterator[InferenceServer]:
    """Run MLServer on free ports serving ``models`` (name -> ONNX file) until the block ends.

    Ready when every model's ``/v2/models/<name>/ready`` answers 200 on HTTP and the gRPC port
    accepts connections; stopped with SIGTERM (then SIGKILL after 10 s) on exit.

    Raises:
        RuntimeError: the server exited or was not ready within ``timeout_s`` seconds; the
            message carries the end of its log.
    """
    http_port, grpc_port = free_port(), free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,  # no third port to collide on
        # Worker processes die here with "There is no current event loop": serve in-process.
        "parallel_workers": 0,
        "debug": False,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(json.dumps(settings))
    for name, path in models.items():
        (root / name).mkdir(exist_ok=True)
        model_settings = {
            "name": name,
            "implementation": f"{__name__}.{RUNTIME}",
            "parameters": {"uri": str(path.resolve())},
        }
        (root / name / "model-settings.json").write_text(json.dumps(model_settings))
    log = root / "mlserver.log"
    # MLSERVER_* variables would override settings.json: the test server ignores the caller's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # The CLI's entry point run by this interpreter: no reliance on a console script on PATH.
    cli = "from mlserver.cli.main import main; main()"
    command = [sys.executable, "-c", cli, "start", str(root)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, http_port, grpc_port, models, log, timeout_s)
        yield InferenceServer(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(
    process: subprocess.Popen[bytes],
    http_port: int,
    grpc_port: int,
    models: Mapping[str, Path],
    log: Path,
    timeout_s: float,
) -> None:
    urls = [f"http://127.0.0.1:{http_port}/v2/models/{name}/ready" for name in models]
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            msg = f"MLServer exited with {process.returncode}:\n{_tail(log)}"
            raise RuntimeError(msg)
        if all(_ready(url) for url in urls) and _accepts(grpc_port):
            return
        if time.monotonic() >= deadline:
            msg = f"MLServer not ready within {timeout_s} s:\n{_tail(log)}"
            raise RuntimeError(msg)
        time.sleep(0.1)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
