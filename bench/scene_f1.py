"""F1 and time per frame of the Haar detector on generated scenes, per camera quality.

For each seed, renders frames of a generated scene (tierflow.operators.vision.scene) every ``--dt``
seconds, resizes each to every quality (the detector input is that size), runs HaarDetector and
matches against the scene's truth (tierflow.operators.vision.accuracy, faces only unless other
cascades are on). Prints one line per quality: F1, TP/FP/FN and milliseconds per frame of
``detect``.

    .venv/bin/python bench/scene_f1.py --seeds 0 1 2 --frames 40
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import cv2

from tierflow.operators.vision.accuracy import F1Score
from tierflow.operators.vision.detectors.haar import HaarDetector
from tierflow.operators.vision.scene import Scene, SceneConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=40, help="frames per seed")
    parser.add_argument("--dt", type=float, default=0.5, help="seconds between frames")
    parser.add_argument("--qualities", type=int, nargs="+", default=[512, 416, 320])
    parser.add_argument("--cascades", nargs="+", default=["face"])
    parser.add_argument("--scale-factor", type=float, default=None)
    parser.add_argument("--min-neighbors", type=int, default=None)
    parser.add_argument("--min-size", type=int, default=None, help="pixels")
    parser.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--face-px", type=float, nargs=2, default=None, help="pixels @size")
    parser.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads")
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)

    tuning: dict[str, float | int | bool] = {}
    if args.equalize is not None:
        tuning["equalize"] = args.equalize
    if args.scale_factor is not None:
        tuning["scale_factor"] = args.scale_factor
    if args.min_neighbors is not None:
        tuning["min_neighbors"] = args.min_neighbors
    if args.min_size is not None:
        tuning["min_size_px"] = args.min_size
    base = SceneConfig()
    if args.face_px:
        base = dataclasses.replace(base, face_px=(args.face_px[0], args.face_px[1]))
    scenes = [Scene(dataclasses.replace(base, seed=seed)) for seed in args.seeds]
    times = [i * args.dt for i in range(args.frames)]
    print(f"{len(scenes)} seeds x {args.frames} frames, cv2 threads {cv2.getNumThreads()}")
    print(f"{'quality':>7} {'F1':>6} {'TP':>5} {'FP':>5} {'FN':>5} {'ms/frame':>9}")
    for quality in args.qualities:
        detector = HaarDetector(quality, args.cascades, **tuning)  # type: ignore[arg-type]
        score = F1Score(labels=detector.labels)
        elapsed = 0.0
        for scene in scenes:
            for t_s in times:
                frame, truth = scene.render_at(t_s, quality)
                start = time.perf_counter()
                (found,) = detector.detect([frame])
                elapsed += time.perf_counter() - start
                score.update(found, truth)
        tp, fp, fn = score.counts
        ms = 1000 * elapsed / (len(scenes) * len(times))
        print(f"{quality:>7} {score.compute():>6.3f} {tp:>5} {fp:>5} {fn:>5} {ms:>9.1f}")


if __name__ == "__main__":
    main()
