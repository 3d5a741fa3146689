"""Milliseconds per image of OnnxDetector for batch sizes 1, 4, 8 on a generated YOLO-like model.

The model is built here with onnx.helper (no download): a small strided conv backbone and a
1x1 head giving a YOLOv8-layout output (N, 4 + C, (S/8)^2) with random weights, so its cost
grows with the image like a real detector's (its GFLOP per image is printed; YOLOv8n is
about 3.6 GFLOP at 416 pixels). ``detect`` is timed end to end (letterbox/pack, inference,
decode + NMS); ``run`` is onnxruntime alone on the packed batch.

    .venv/bin/python bench/onnx_batch.py --size 416 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
from onnx import TensorProto, helper, numpy_helper

from tierflow.operators.vision.detectors.onnx import OnnxDetector
from tierflow.operators.vision.detectors.yolo import COCO_NAMES, preprocess


def build_model(
    size: int, classes: int, width: int, seed: int = 0
) -> tuple[onnx.ModelProto, float]:
    """The model and its multiply-add count x 2 per image, in GFLOP."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    flops, side, channels, tensor = 0.0, size, 3, "images"
    layers = [(16 * width, 3, 2), (32 * width, 3, 2), (64 * width, 3, 2), (64 * width, 3, 1)]
    for i, (out, k, stride) in enumerate(layers):
        w = rng.normal(0, np.sqrt(2 / (channels * k * k)), (out, channels, k, k))
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{i}"))
        nodes.append(
            helper.make_node(
                "Conv", [tensor, f"w{i}"], [f"c{i}"], kernel_shape=[k, k],
                strides=[stride, stride], pads=[k // 2] * 4,
            )
        )  # fmt: skip
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        side //= stride
        flops += 2.0 * side * side * out * channels * k * k
        channels, tensor = out, f"r{i}"
    outputs = 4 + classes
    head = rng.normal(0, 0.15, (outputs, channels, 1, 1)).astype(np.float32)
    # Class logits centred on -3.25 (sigmoid 0.04): about ten boxes per image pass 0.25 and NMS.
    bias = np.r_[np.zeros(4), np.full(classes, -3.25)].astype(np.float32)
    scale = np.r_[[size, size, size / 4, size / 4], np.ones(classes)].astype(np.float32)
    inits += [
        numpy_helper.from_array(head, "head"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(scale.reshape(1, outputs, 1), "scale"),
        numpy_helper.from_array(np.array([0, outputs, -1], np.int64), "flat"),
    ]
    nodes += [
        helper.make_node("Conv", [tensor, "head", "bias"], ["logits"]),
        helper.make_node("Reshape", ["logits", "flat"], ["flat_logits"]),
        helper.make_node("Sigmoid", ["flat_logits"], ["unit"]),
        helper.make_node("Mul", ["unit", "scale"], ["output0"]),
    ]
    flops += 2.0 * side * side * outputs * channels
    graph = helper.make_graph(
        nodes,
        "bench_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", outputs, side**2])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model, flops / 1e9


def _best_ms(call: Callable[[], object], repeat: int) -> float:
    call()  # warm-up: first runs allocate arenas
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=416, help="input side in pixels")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--width", type=int, default=2, help="channel multiplier")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the best is kept")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    args = parser.parse_args()

    model, gflop = build_model(args.size, args.classes, args.width)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.onnx"
        onnx.save(model, str(path))
        labels = COCO_NAMES[: args.classes] if args.classes <= 80 else None
        detector = OnnxDetector(path, labels=labels, intra_op_threads=args.threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads or os.cpu_count() or 1
        # Idle onnxruntime threads spin-wait; two sessions timed in turn would steal each
        # other's cores, so this reference session's threads sleep when idle.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        threads = options.intra_op_num_threads
        print(
            f"model {args.size}px, {args.classes} classes, {gflop:.2f} GFLOP/image;"
            f" onnxruntime {ort.__version__}, {threads} intra-op threads, best of {args.repeat}"
        )
        print(
            f"{'batch':>5} {'detect ms/img':>14} {'run ms/img':>11} {'img/s':>7} {'boxes/img':>10}"
        )
        for n in args.batches:
            images = list(rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8))
            batch, _ = preprocess(images, args.size)
            run_ms = _best_ms(partial(session.run, None, {"images": batch}), args.repeat) / n
            found = detector.detect(images)
            detect_ms = _best_ms(partial(detector.detect, images), args.repeat) / n
            boxes = sum(len(d) for d in found) / n
            print(
                f"{n:>5} {detect_ms:>14.2f} {run_ms:>11.2f} {1000 / detect_ms:>7.1f} {boxes:>10.1f}"
            )
        detector.close()


if __name__ == "__main__":
    main()
