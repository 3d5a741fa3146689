"""YOLO detector on a remote KServe-v2 inference server: NVIDIA Triton, MLServer, KServe.

Pre- and post-processing run here (``yolo.py``); the server only runs the network. Input and
output names, datatypes and shapes come from the server's model metadata, so any v2 server
with a YOLO model works without configuration beyond its address and the model name.

Binary tensors: Triton's HTTP endpoint takes tensors as raw bytes next to the JSON
(the ``binary_tensor_data`` extension); plain KServe servers such as MLServer take only JSON
lists of numbers. With ``binary_data=None`` (the default) the HTTP client uses binary tensors
exactly when the server lists that extension in its metadata; gRPC always carries raw bytes.

Threads: the gRPC client is thread-safe and shared; the HTTP client runs on gevent, whose
connections belong to the thread that made them, so each calling thread gets its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from tierflow.operators.vision.detectors.base import DetectorError
from tierflow.operators.vision.detectors.yolo import (
    Batch,
    ChunkedYolo,
    YoloDecoder,
    YoloLayout,
)

TransportName = Literal["grpc", "http"]

_CLIENT_ERRORS = (InferenceServerException, OSError)
"""What tritonclient raises: its own exception, or socket errors from the HTTP transport."""


class _Transport(Protocol):
    def live(self) -> bool: ...
    def model_ready(self, model: str, version: str) -> bool: ...
    def server_metadata(self) -> dict[str, Any]: ...
    def model_metadata(self, model: str, version: str) -> dict[str, Any]: ...
    def max_batch_size(self, model: str, version: str) -> int | None: ...
    def infer(
        self, model: str, version: str, tensor: _Tensor, batch: Batch
    ) -> npt.NDArray[Any]: ...
    def close(self) -> None: ...


class _Tensor:
    """Names and datatype of the model's image input and detection output."""

    def __init__(self, input_name: str, datatype: str, output_name: str) -> None:
        self.input_name = input_name
        self.datatype = datatype
        self.output_name = output_name
        self.dtype = np.dtype(triton_to_np_dtype(datatype))


class _Grpc:
    def __init__(self, url: str, timeout_s: float) -> None:
        # Imported here: each protocol pulls in its own stack (grpc, or gevent for HTTP).
        import tritonclient.grpc as grpcclient

        self._module = grpcclient
        self._client = grpcclient.InferenceServerClient(url)
        self._timeout_s = timeout_s

    def live(self) -> bool:
        return bool(self._client.is_server_live(client_timeout=self._timeout_s))

    def model_ready(self, model: str, version: str) -> bool:
        return bool(self._client.is_model_ready(model, version, client_timeout=self._timeout_s))

    def server_metadata(self) -> dict[str, Any]:
        meta = self._client.get_server_metadata(as_json=True, client_timeout=self._timeout_s)
        return dict(meta)

    def model_metadata(self, model: str, version: str) -> dict[str, Any]:
        meta = self._client.get_model_metadata(
            model, version, as_json=True, client_timeout=self._timeout_s
        )
        return dict(meta)

    def max_batch_size(self, model: str, version: str) -> int | None:
        try:
            config = self._client.get_model_config(
                model, version, as_json=True, client_timeout=self._timeout_s
            )
        except InferenceServerException:
            return None  # not Triton: KServe servers have no model configuration endpoint
        return int(config.get("config", {}).get("max_batch_size", 0)) or None

    def infer(self, model: str, version: str, tensor: _Tensor, batch: Batch) -> npt.NDArray[Any]:
        image = self._module.InferInput(tensor.input_name, list(batch.shape), tensor.datatype)
        image.set_data_from_numpy(batch)
        result = self._client.infer(
            model,
            [image],
            model_version=version,
            outputs=[self._module.InferRequestedOutput(tensor.output_name)],
            client_timeout=self._timeout_s,
        )
        return _output(result, tensor.output_name)

    def close(self) -> None:
        self._client.close()


class _Http:
    def __init__(self, url: str, timeout_s: float) -> None:
        import tritonclient.http as httpclient

        self._module = httpclient
        self._url = url
        self._timeout_s = timeout_s
        self.binary_data = True
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._module.InferenceServerClient(
                self._url, connection_timeout=self._timeout_s, network_timeout=self._timeout_s
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def live(self) -> bool:
        return bool(self._client().is_server_live())

    def model_ready(self, model: str, version: str) -> bool:
        return bool(self._client().is_model_ready(model, version))

    def server_metadata(self) -> dict[str, Any]:
        return dict(self._client().get_server_metadata())

    def model_metadata(self, model: str, version: str) -> dict[str, Any]:
        return dict(self._client().get_model_metadata(model, version))

    def max_batch_size(self, model: str, version: str) -> int | None:
        try:
            config = self._client().get_model_config(model, version)
        except InferenceServerException:
            return None  # not Triton: KServe servers have no model configuration endpoint
        return int(config.get("max_batch_size", 0)) or None

    def infer(self, model: str, version: str, tensor: _Tensor, batch: Batch) -> npt.NDArray[Any]:
        image = self._module.InferInput(tensor.input_name, list(batch.shape), tensor.datatype)
        image.set_data_from_numpy(batch, binary_data=self.binary_data)
        output = self._module.InferRequestedOutput(tensor.output_name, binary_data=self.binary_data)
        result = self._client().infer(model, [image], model_version=version, outputs=[output])
        return _output(result, tensor.output_name)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def _output(result: Any, name: str) -> npt.NDArray[Any]:
    array = result.as_numpy(name)
    if not isinstance(array, np.ndarray):
        msg = f"the response has no output {name!r}"
        raise DetectorError(msg)
    return array


class TritonDetector(ChunkedYolo):
    """A YOLO model served by Triton or another KServe-v2 server, over gRPC or HTTP.

    Args:
        url: ``host:port`` without scheme (Triton listens on 8001 for gRPC, 8000 for HTTP).
        model: the model's name on the server.
        protocol: ``grpc`` or ``http``.
        version: model version; empty for the server's choice.
        input_size: side in pixels of the model input; needed only if the server reports a
            dynamic height and width.
        labels: class names by class id; default COCO's 80.
        layout: output layout (``auto``, ``v5``, ``v8``, ``v8-transposed``; ``yolo11`` = ``v8``).
        conf_threshold: minimum confidence in [0, 1].
        iou_threshold: NMS IoU threshold in [0, 1].
        max_detections: at most this many detections per image.
        binary_data: HTTP only: send and receive tensors as binary (Triton's extension) or as
            JSON (plain KServe servers such as MLServer); None asks the server.
        timeout_s: seconds to wait for connecting and for each request.
        max_batch: at most this many images per request; default the model's Triton
            ``max_batch_size``, else unlimited.
        input_name: the image input, when the model has several inputs.
        output_name: the detection output; default the model's first output.

    Attributes:
        name: ``triton:<model>@<protocol>``.
        input_size: side in pixels of the images ``detect`` expects.
        labels: the class names.
        binary_data: whether tensors travel as raw bytes (always true over gRPC).

    Raises:
        DetectorError: the server is unreachable, the model is not ready, or its input/output
            is not a YOLO one.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        protocol: TransportName = "grpc",
        version: str = "",
        input_size: int | None = None,
        labels: Sequence[str] | None = None,
        layout: YoloLayout | str = YoloLayout.AUTO,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int = 300,
        binary_data: bool | None = None,
        timeout_s: float = 10.0,
        max_batch: int | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        if protocol not in ("grpc", "http"):
            msg = f"protocol must be 'grpc' or 'http', got {protocol!r}"
            raise ValueError(msg)
        self.url = url
        self.name = f"triton:{model}@{protocol}"
        self._model, self._version = model, version
        self._where = f"{protocol}://{self.url} model {model!r}" + (
            f" v{version}" if version else ""
        )
        self._decoder = YoloDecoder(labels, layout, conf_threshold, iou_threshold, max_detections)
        self.labels: tuple[str, ...] = self._decoder.labels
        transport: _Grpc | _Http = (
            _Grpc(self.url, timeout_s) if protocol == "grpc" else _Http(self.url, timeout_s)
        )
        self._transport: _Transport | None = transport
        try:
            self._check_ready(transport)
            metadata = transport.model_metadata(model, version)
            self.binary_data = True
            if isinstance(transport, _Http):
                if binary_data is None:
                    binary_data = _speaks_binary(transport)
                self.binary_data = transport.binary_data = binary_data
            self._tensor, shape = self._pick_tensors(metadata, input_name, output_name)
            self._dtype = self._tensor.dtype
            self.input_size = self._input_side(shape, input_size)
            fixed = shape[0] if shape[0] > 0 else None
            self._fixed_batch = fixed
            self._max_batch = fixed or max_batch or transport.max_batch_size(model, version)
        except _CLIENT_ERRORS as exc:
            transport.close()
            msg = f"{self._where}: cannot read the model's metadata: {exc}"
            raise DetectorError(msg) from exc
        except DetectorError:
            transport.close()
            raise

    def _check_ready(self, transport: _Transport) -> None:
        try:
            live = transport.live()
        except _CLIENT_ERRORS as exc:
            msg = f"inference server at {self._where} is unreachable: {exc}"
            raise DetectorError(msg) from exc
        if not live:
            msg = f"inference server at {self._where} answers but is not live"
            raise DetectorError(msg)
        try:
            ready = transport.model_ready(self._model, self._version)
        except _CLIENT_ERRORS as exc:  # gRPC servers answer an unknown model with an error
            msg = f"{self._where} is not ready: {exc}"
            raise DetectorError(msg) from exc
        if not ready:
            msg = f"{self._where} is not ready (not loaded, still loading, or unknown)"
            raise DetectorError(msg)

    def _pick_tensors(
        self, metadata: dict[str, Any], input_name: str | None, output_name: str | None
    ) -> tuple[_Tensor, list[int]]:
        inputs = {t["name"]: t for t in metadata.get("inputs", [])}
        outputs = {t["name"]: t for t in metadata.get("outputs", [])}
        if input_name is None and len(inputs) == 1:
            input_name = next(iter(inputs))
        if input_name is None or input_name not in inputs:
            msg = f"{self._where}: pick the image input (input_name) among {sorted(inputs)}"
            raise DetectorError(msg)
        if not outputs or (output_name is not None and output_name not in outputs):
            msg = f"{self._where}: no output {output_name or ''!r} among {sorted(outputs)}"
            raise DetectorError(msg)
        output_name = output_name or next(iter(outputs))
        image = inputs[input_name]
        # gRPC metadata as JSON carries int64 dimensions as strings.
        shape = [int(d) for d in image.get("shape", [])]
        datatype = str(image.get("datatype", ""))
        if datatype not in ("FP32", "FP16"):
            msg = f"{self._where}: input {input_name!r} is {datatype}, expected FP32 or FP16"
            raise DetectorError(msg)
        out_shape = [int(d) for d in outputs[output_name].get("shape", [])]
        try:
            self._decoder.check_output_shape([d if d >= 0 else None for d in out_shape])
        except DetectorError as exc:
            msg = f"{self._where}: output {output_name!r}: {exc}"
            raise DetectorError(msg) from None
        return _Tensor(input_name, datatype, output_name), shape

    def _input_side(self, shape: list[int], requested: int | None) -> int:
        if len(shape) != 4 or shape[1] not in (3, -1):
            msg = f"{self._where}: expected an image input (N, 3, S, S), got {shape}"
            raise DetectorError(msg)
        height, width = shape[2], shape[3]
        if height > 0 and width > 0:
            if height != width:
                msg = f"{self._where}: input is {width}x{height} pixels; only square is supported"
                raise DetectorError(msg)
            if requested is not None and requested != height:
                msg = f"{self._where}: input_size={requested} but the model takes {height} pixels"
                raise DetectorError(msg)
            return height
        if requested is None:
            msg = f"{self._where}: the input {shape} has a dynamic size; pass input_size (pixels)"
            raise DetectorError(msg)
        return requested

    def _runner(self) -> Callable[[Batch], npt.NDArray[np.generic]]:
        transport = self._transport
        if transport is None:
            msg = f"{self.name} is closed"
            raise DetectorError(msg)

        def run(chunk: Batch) -> npt.NDArray[np.generic]:
            try:
                return transport.infer(self._model, self._version, self._tensor, chunk)
            except _CLIENT_ERRORS as exc:
                msg = f"inference on a batch of shape {chunk.shape} failed: {exc}"
                raise DetectorError(msg) from exc

        return run

    def _context(self) -> str:
        return self._where

    def close(self) -> None:
        """Close the connections; ``detect`` fails afterwards."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


def _speaks_binary(transport: _Http) -> bool:
    extensions = transport.server_metadata().get("extensions", [])
    return "binary_tensor_data" in extensions
