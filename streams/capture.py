"""Where a camera's frames come from: scene, video file, image folder, stream or device.

Every source yields :class:`Captured` frames (BGR pixels and, for generated scenes or
sources given a truth file, the true objects). Live sources (streams, devices) reconnect
with exponential backoff when the stream is lost; files end, or loop when asked.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np

from tierflow.errors import TierflowError
from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections
from tierflow.operators.vision.resize import Letterbox
from tierflow.operators.vision.scene import Scene, SceneConfig
from tierflow.operators.vision.truth import Truth

log = logging.getLogger(__name__)
_T = TypeVar("_T")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class CaptureError(TierflowError):
    """A frame source cannot be opened or named."""


@dataclass(frozen=True)
class Captured:
    """One captured frame.

    Attributes:
        image: BGR pixels at the source's native size.
        truth: the true objects in pixels of ``image``, when the source knows them.
        encoded: ``image`` already encoded in the contract's content type (a recording's
            message value): a camera sending it at its own size forwards these bytes
            instead of encoding again.
        origin: (width, height) of the source's own frames when ``image`` is not at that
            size (a scene rendered at the quality, a recorded letterbox); None: ``image``'s.
    """

    image: Image
    truth: Detections | None = None
    encoded: bytes | None = None
    origin: tuple[int, int] | None = None


def framed(captured: Captured, side: int) -> tuple[Image, Detections | None, tuple[int, int]]:
    """The square frame a camera sends at quality ``side``: pixels, truth, and the origin.

    The image is letterboxed (scaled by its longer side and padded, never squashed) and the
    truth mapped into the frame's pixels the same way.
    """
    height, width = captured.image.shape[:2]
    box = Letterbox.of((width, height), side)
    truth = box.to_frame(captured.truth) if captured.truth is not None else None
    return box.apply(captured.image), truth, captured.origin or (width, height)


def _in_frame(truth: Detections | None, size: tuple[int, int], side: int) -> Detections | None:
    """``truth`` of a ``size`` (width, height) image in the pixels of its ``side`` frame."""
    return None if truth is None else Letterbox.of(size, side).to_frame(truth)


@dataclass(frozen=True)
class Skipped:
    """A frame passed over at the camera's assigned rate: its truth, when the source knows it.

    Attributes:
        truth: the true objects, in pixels of the frame the camera would have sent.
    """

    truth: Detections | None = None


class FrameSource(Protocol):
    """A camera's input."""

    description: str
    live: bool
    """True for streams and devices: a failure means reconnect, not end of input."""

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured | None:
        """The frame at ``index`` (``t_s`` seconds into the stream); None at end of input.

        Args:
            index: frame number of the camera's clock.
            t_s: seconds into the stream.
            quality: the side the camera will send, in pixels: a source that can render at
                that size does (the camera resizes whatever else it gets).

        Raises:
            CaptureError: a live source failed (the caller reconnects).
        """
        ...

    def skip(self, index: int, t_s: float, quality: int) -> Skipped | None:
        """Pass over the frame at ``index`` without decoding it; None at end of input.

        Raises:
            CaptureError: a live source failed (the caller reconnects).
        """
        ...

    def close(self) -> None:
        """Release the device or file."""
        ...


class SceneSource:
    """Frames of a generated scene with ground truth; deterministic by seed."""

    live = False

    def __init__(self, seed: int, size: int = 1024) -> None:
        self.scene = Scene(SceneConfig.for_size(seed, size))
        self.description = f"scene:{seed}"

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured:
        """Render the scene at ``t_s`` seconds (time matters, not the index), at ``quality``."""
        size = self.scene.config.size
        image, truth = self.scene.render_at(t_s, quality or size)
        return Captured(image, truth, origin=(size, size))

    def skip(self, index: int, t_s: float, quality: int) -> Skipped:
        """The truth at ``t_s`` seconds; nothing is drawn."""
        return Skipped(self.scene.truth_at(t_s, quality))

    def close(self) -> None:
        """Nothing to release."""


class FolderSource:
    """The images of a folder in name order, optionally looping, with their truth if given."""

    live = False

    def __init__(self, folder: Path, loop: bool = False, truth: Truth | None = None) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            msg = f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            raise CaptureError(msg)
        self.loop = loop
        self.truth = truth
        self.description = f"folder:{folder}" + (f" ({truth.description})" if truth else "")
        self._size: tuple[int, int] | None = None
        """(width, height) of the last image read: a skipped frame's truth refers to it."""

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured | None:
        """The ``index``-th image; unreadable files are skipped with a warning."""
        if index >= len(self.files) and not self.loop:
            return None
        at = index % len(self.files)
        path = self.files[at]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable image %s", path)
            return self.read(index + 1, t_s) if index + 1 < len(self.files) or self.loop else None
        self._size = (image.shape[1], image.shape[0])
        truth = self.truth.for_frame(at, path.name, self._size) if self.truth else None
        return Captured(image, truth)

    def skip(self, index: int, t_s: float, quality: int) -> Skipped | None:
        """Pass over the ``index``-th image (read only for its size, once, if it has truth)."""
        if index >= len(self.files) and not self.loop:
            return None
        if self.truth is None:
            return Skipped()
        at = index % len(self.files)
        if self._size is None:
            first = cv2.imread(str(self.files[at]), cv2.IMREAD_COLOR)
            if first is None:
                return Skipped()
            self._size = (first.shape[1], first.shape[0])
        truth = self.truth.for_frame(at, self.files[at].name, self._size)
        return Skipped(_in_frame(truth, self._size, quality))

    def close(self) -> None:
        """Nothing to release."""


class VideoSource:
    """A video file, an RTSP/HTTP URL or a V4L2 device through OpenCV's VideoCapture.

    With ``truth``, frame ``n`` of the file (counted from 0, again from 0 after a loop's
    rewind) gets the objects the truth file gives that frame.
    """

    def __init__(
        self, target: str | int, live: bool, loop: bool = False, truth: Truth | None = None
    ) -> None:
        self.target = target
        self.live = live
        self.loop = loop
        self.truth = truth
        self.description = f"video:{target}" + (f" ({truth.description})" if truth else "")
        self._capture: cv2.VideoCapture | None = None
        self._position = 0
        """Index of the next frame the capture returns."""
        self._open()

    def _open(self) -> None:
        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            msg = f"cannot open {self.target!r} with OpenCV"
            raise CaptureError(msg)
        self._capture = capture
        self._position = 0
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._size = (width, height) if width > 0 and height > 0 else None

    def _truth(self, size: tuple[int, int] | None) -> Detections | None:
        """The truth of the frame just taken (``_position`` was advanced past it)."""
        if self.truth is None or size is None:
            return None
        return self.truth.for_frame(self._position - 1, None, size)

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured | None:
        """The next frame; None at the end of a file; CaptureError when a live stream fails."""
        image = self._next(decode=True)
        if image is None:
            return None
        return Captured(image, self._truth((image.shape[1], image.shape[0])))

    def skip(self, index: int, t_s: float, quality: int) -> Skipped | None:
        """Pass over the next frame (grabbed, not decoded), so the stream keeps its pace."""
        if self._next(decode=False) is None:
            return None
        size = self._size
        return Skipped(_in_frame(self._truth(size), size, quality) if size else None)

    def _next(self, decode: bool) -> Image | None:
        """The next frame (an empty array when not decoded); None at the end of a file."""
        if self._capture is None:
            self._open()
        capture = self._capture
        if capture is None:  # pragma: no cover - _open sets it or raises
            return None
        for attempt in range(2):  # a looping file gets one rewind
            if decode:
                ok, image = capture.read()
            else:
                ok, image = capture.grab(), np.zeros(0, np.uint8)
            if ok:
                self._position += 1
                return image
            if self.live:
                self.close()
                msg = f"lost {self.target!r}"
                raise CaptureError(msg)
            if not self.loop or attempt:
                return None
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._position = 0
        return None

    def close(self) -> None:
        """Release the capture."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None


STREAM = r"(rtsp|rtmp|https?)://"
DEVICE = r"(?:device:|/dev/video)(\d+)"


def is_live(spec: str) -> bool:
    """Whether ``spec`` names a live source (a stream or a device): one that may come up later."""
    return bool(re.match(STREAM, spec) or re.fullmatch(DEVICE, spec))


def open_source(
    spec: str, loop: bool = False, scene_size: int = 1024, truth: Truth | None = None
) -> FrameSource:
    """A frame source from a user's spec.

    ``scene:SEED`` (generated scene), ``rtsp://...``/``http(s)://...`` (stream),
    ``/dev/videoN`` or ``device:N`` (V4L2), a folder of images, or a video file.
    ``truth`` labels a folder or a file (a scene has its own; a stream has none to match).

    Raises:
        CaptureError: the spec names nothing that exists or can be opened, or ``truth``
            was given for a source it cannot label.
    """
    live_or_scene = re.fullmatch(r"scene:(\d+)", spec) or is_live(spec)
    if truth is not None and live_or_scene:
        msg = f"{spec!r} cannot take a truth file (only a video file or an image folder can)"
        raise CaptureError(msg)
    if m := re.fullmatch(r"scene:(\d+)", spec):
        return SceneSource(int(m.group(1)), scene_size)
    if re.match(STREAM, spec):
        return VideoSource(spec, live=True)
    if m := re.fullmatch(DEVICE, spec):
        return VideoSource(int(m.group(1)), live=True)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, loop, truth)
    if path.is_file():
        return VideoSource(str(path), live=False, loop=loop, truth=truth)
    msg = (
        f"camera source {spec!r} is neither scene:SEED, a URL, a device (/dev/videoN, "
        "device:N), a folder nor a file"
    )
    raise CaptureError(msg)


class Reconnecting:
    """Wraps a live source: on failure, reopen it with exponential backoff.

    The delay starts at ``initial_backoff_s`` (0.5 s) and doubles up to ``max_backoff_s``,
    until the source works again or ``stop`` is set. With ``live``, a first open that fails
    (a stream or device not up yet) is retried the same way instead of raising.

    Raises:
        CaptureError: the first open failed and the source is not ``live``.
    """

    def __init__(
        self,
        opener: Callable[[], FrameSource],
        stop: threading.Event,
        max_backoff_s: float = 30.0,
        initial_backoff_s: float = 0.5,
        live: bool = False,
    ) -> None:
        self.opener = opener
        self.stop = stop
        self.max_backoff_s = max_backoff_s
        self.initial_backoff_s = initial_backoff_s
        self.reconnects = 0
        self.source: FrameSource | None = None
        self.description = "a live source, not up yet"
        self.live = live
        self._ever_opened = False
        try:
            self._opened(opener())
        except CaptureError as exc:
            if not live:
                raise
            log.warning("%s; not up yet, retrying in %.1f s", exc, initial_backoff_s)

    def _opened(self, source: FrameSource) -> None:
        if self._ever_opened:
            self.reconnects += 1
            log.info("reconnected to %s", source.description)
        self._ever_opened = True
        self.source = source
        self.description = source.description
        self.live = source.live

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured | None:
        """Read, reconnecting live sources as long as it takes (or until stopped)."""
        return self._retrying(lambda source: source.read(index, t_s, quality))

    def skip(self, index: int, t_s: float, quality: int) -> Skipped | None:
        """Pass over a frame, reconnecting live sources like :meth:`read`."""
        return self._retrying(lambda source: source.skip(index, t_s, quality))

    def _retrying(self, step: Callable[[FrameSource], _T | None]) -> _T | None:
        backoff = self.initial_backoff_s
        while not self.stop.is_set():
            if self.source is not None:
                try:
                    return step(self.source)
                except CaptureError as exc:
                    if not self.source.live:
                        raise
                    log.warning("%s; reconnecting in %.1f s", exc, backoff)
                self.source = None
            # else the last failed open already said when it retries
            if self.stop.wait(backoff):
                return None
            following = min(backoff * 2, self.max_backoff_s)
            try:
                self._opened(self.opener())
            except CaptureError as exc:
                log.warning("reconnect failed: %s; retrying in %.1f s", exc, following)
            backoff = following
        return None

    def close(self) -> None:
        """Close the current source."""
        if self.source is not None:
            self.source.close()
