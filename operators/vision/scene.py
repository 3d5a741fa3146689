"""Generated camera scenes with ground truth, for measuring detection accuracy (F1, paper §IV-B).

A scene pastes real photographs that scikit-image ships (no network needed) onto a slowly
panning photographic background: tight face crops from Labeled Faces in the Wild and the
head-and-shoulders figure of NASA's astronaut portrait, each moving on its own bouncing path
at its own scale. Everything is drawn from a seeded generator at construction, so a frame and
its truth are a pure function of (config, t): the same seed and time give identical pixels.

The truth is meant to agree with how a detector boxes the objects, so that F1 measures the
detector and not the labelling:

* ``face`` boxes follow OpenCV's frontal-face Haar cascade: on LFW crops upscaled to 100 px
  its box sits at ``(-0.04, -0.01)`` of the crop side from the crop's corner with a side of
  ``0.93`` crop sides (medians over the 100 faces; spread about 0.05); on the astronaut it
  finds ``x=177, y=66, w=h=95`` (mirrored when the figure is flipped).
* ``person`` boxes cover the visible person of the figure (hair to the cut-off chest, shoulder
  to shoulder), the box a COCO detector labels ``person``. OpenCV's upper-body cascade does not
  find this figure at any scale we tried, so the Haar detector does not report it by default.

Objects nearer the camera (larger faces) are drawn over farther ones; a true box more than
``max_occluded`` covered by nearer objects is left out of the truth, and so is nothing else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from tierflow.operators.vision.codec import Image
from tierflow.operators.vision.detections import Detections

FACE = "face"
PERSON = "person"

# Where the Haar frontal-face cascade boxes an LFW crop, in crop sides (see module docstring).
_LFW_FACE_BOX = (-0.04, -0.01, 0.93)
_LFW_FACES = 100  # lfw_subset(): the first 100 images are faces, the rest are not

# Astronaut portrait (512 x 512): the head-and-shoulders crop, excluding the helmet and the
# shuttle model, and the face and person boxes in portrait pixels (x1, y1, x2, y2).
_ASTRONAUT_CROP = (10, 0, 365, 340)
_ASTRONAUT_FACE = (177.0, 66.0, 272.0, 161.0)
_ASTRONAUT_PERSON = (28.0, 14.0, 362.0, 340.0)

# Backgrounds with no faces or people in them (camera() and astronaut() have one).
_BACKGROUNDS = (
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "moon",
)


@dataclass(frozen=True)
class SceneConfig:
    """What a generated scene contains; every choice below it is drawn from ``seed``.

    Attributes:
        seed: seed of every random choice (background, sprites, scales, paths).
        size: side in pixels of the square canonical frame.
        faces: number of LFW face crops.
        people: number of astronaut head-and-shoulders figures (each has a face too).
        face_px: (min, max) side in pixels of a pasted face crop. Sides are spread
            log-uniformly, one per equal slice of the range, so every scene has the same share
            of faces too small for a detector once the frame is downscaled.
        person_px: (min, max) height in pixels of a pasted figure.
        speed_px_s: (min, max) speed of an object in pixels per second.
        pan_px_s: speed of the background pan in pixels per second.
        pan_margin_px: how far in pixels the background can pan from its start.
        max_occluded: a true box more than this fraction covered by nearer objects is dropped.
    """

    seed: int = 0
    size: int = 1024
    faces: int = 7
    people: int = 1
    face_px: tuple[float, float] = (44.0, 112.0)
    person_px: tuple[float, float] = (260.0, 440.0)
    speed_px_s: tuple[float, float] = (20.0, 80.0)
    pan_px_s: float = 6.0
    pan_margin_px: int = 48
    max_occluded: float = 0.25

    @classmethod
    def for_size(cls, seed: int, size: int) -> SceneConfig:
        """The default scene drawn at ``size`` pixels: object sizes scale with the frame."""
        k = size / 1024
        return cls(
            seed=seed,
            size=size,
            face_px=(cls.face_px[0] * k, cls.face_px[1] * k),
            person_px=(cls.person_px[0] * k, cls.person_px[1] * k),
            speed_px_s=(cls.speed_px_s[0] * k, cls.speed_px_s[1] * k),
        )

    def __post_init__(self) -> None:
        problems = []
        if self.size < 256:
            problems.append(f"size must be >= 256 pixels, got {self.size}")
        if self.faces < 0 or self.people < 0:
            problems.append(f"object counts must be >= 0, got {self.faces=}, {self.people=}")
        for name in ("face_px", "person_px", "speed_px_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                problems.append(
                    f"{name} must be (min, max) with 0 <= min <= max, got {(low, high)}"
                )
        if self.face_px[0] < 8 or self.face_px[1] > self.size / 2:
            problems.append(f"face_px must lie in [8, size/2] pixels, got {self.face_px}")
        if self.person_px[0] < 32 or self.person_px[1] > self.size * 0.9:
            problems.append(f"person_px must lie in [32, 0.9*size] pixels, got {self.person_px}")
        if self.pan_px_s < 0 or self.pan_margin_px < 0:
            problems.append("pan_px_s and pan_margin_px must be >= 0")
        if not 0 <= self.max_occluded <= 1:
            problems.append(f"max_occluded must be in [0, 1], got {self.max_occluded}")
        if problems:
            msg = "invalid SceneConfig: " + "; ".join(problems)
            raise ValueError(msg)


@dataclass(frozen=True)
class _Sprite:
    """A pasted picture and its true boxes in the picture's pixels."""

    pixels: Image
    boxes: tuple[tuple[str, float, float, float, float], ...]
    depth: float  # face side in pixels: a larger face is nearer the camera


@dataclass(frozen=True)
class _Mover:
    """A sprite bouncing inside the frame: its extent (sprite and boxes) never leaves it."""

    sprite: _Sprite
    extent: tuple[float, float, float, float]  # union of sprite and boxes, sprite pixels
    start: tuple[float, float]  # extent's top-left at t=0, frame pixels
    velocity: tuple[float, float]  # pixels per second
    room: tuple[float, float]  # how far the extent's top-left can go in x and y, pixels

    def position(self, t_s: float) -> tuple[int, int]:
        """Top-left of the sprite in frame pixels at ``t_s`` seconds."""
        x = _bounce(self.start[0] + self.velocity[0] * t_s, self.room[0])
        y = _bounce(self.start[1] + self.velocity[1] * t_s, self.room[1])
        return round(x - self.extent[0]), round(y - self.extent[1])


def _bounce(p: float, room: float) -> float:
    """``p`` reflected into ``[0, room]``: a path that bounces off both ends."""
    if room <= 0:
        return 0.0
    m = p % (2 * room)
    return m if m <= room else 2 * room - m


class Scene:
    """A deterministic moving scene: ``render(t)`` gives a frame and its true boxes.

    Construction loads the photographs and precomputes the background and every sprite at
    its scale (tens of milliseconds); ``render`` only copies and pastes (a fraction of a
    millisecond for a 1024 px frame), and ``render_at`` does so at a camera's quality.
    """

    def __init__(self, config: SceneConfig | None = None) -> None:
        self.config = config if config is not None else SceneConfig()
        rng = np.random.default_rng(self.config.seed)
        self._background = _background(rng, self.config.size + 2 * self.config.pan_margin_px)
        self._pan_start = rng.uniform(0, 2 * self.config.pan_margin_px, 2)
        self._pan_velocity = _velocity(rng, self.config.pan_px_s, self.config.pan_px_s)
        sides = _stratified(rng, *self.config.face_px, self.config.faces)
        sprites = [_face_sprite(rng, side) for side in sides]
        sprites += [_person_sprite(rng, self.config.person_px) for _ in range(self.config.people)]
        # Nearer objects (larger faces) are pasted last, over the farther ones.
        sprites.sort(key=lambda s: s.depth)
        self._movers = [self._mover(rng, sprite) for sprite in sprites]
        self._layers: dict[int, _Layer] = {}

    def _mover(self, rng: np.random.Generator, sprite: _Sprite) -> _Mover:
        h, w = sprite.pixels.shape[:2]
        xs = [0.0, float(w)] + [x for _, x1, _, x2, _ in sprite.boxes for x in (x1, x2)]
        ys = [0.0, float(h)] + [y for _, _, y1, _, y2 in sprite.boxes for y in (y1, y2)]
        extent = (min(xs), min(ys), max(xs), max(ys))
        room = (
            max(0.0, self.config.size - (extent[2] - extent[0])),
            max(0.0, self.config.size - (extent[3] - extent[1])),
        )
        start = (rng.uniform(0, room[0]), rng.uniform(0, room[1]))
        return _Mover(sprite, extent, start, _velocity(rng, *self.config.speed_px_s), room)

    def render(self, t_s: float) -> tuple[Image, Detections]:
        """The frame at ``t_s`` seconds and its true boxes.

        Args:
            t_s: scene time in seconds (any float; paths bounce, the pan bounces).

        Returns:
            A BGR uint8 frame of ``size`` x ``size`` pixels, and its truth: boxes in pixels of
            that frame, confidence 1, labels ``face`` or ``person``.
        """
        return self.render_at(t_s, self.config.size)

    def render_at(self, t_s: float, quality: int) -> tuple[Image, Detections]:
        """The frame at ``t_s`` seconds as a camera of ``quality`` pixels sends it.

        Below the canonical size the background and every sprite are scaled once (area
        interpolation, cached per quality) and pasted at scaled positions, so a camera
        pays for a paste of its own size, not for a full-size render and a resize. The
        truth is laid out at the canonical size and scaled, like :func:`at_quality`.

        Raises:
            ValueError: ``quality`` is not a positive number of pixels.
        """
        if quality <= 0:
            msg = f"quality must be a positive side in pixels, got {quality}"
            raise ValueError(msg)
        size = self.config.size
        layer = self._layer(quality)
        k = quality / size
        origin, corners = self._layout(t_s)
        ox, oy = round(origin[0] * k), round(origin[1] * k)
        frame = layer.background[oy : oy + quality, ox : ox + quality].copy()
        for pixels, (x, y) in zip(layer.sprites, corners, strict=True):
            x, y = round(x * k), round(y * k)
            h, w = pixels.shape[:2]
            x1, y1 = max(x, 0), max(y, 0)
            x2, y2 = min(x + w, quality), min(y + h, quality)
            if x2 > x1 and y2 > y1:
                frame[y1:y2, x1:x2] = pixels[y1 - y : y2 - y, x1 - x : x2 - x]
        truth = self._truth(corners)
        return frame, truth if quality == size else truth.scaled_to((quality, quality))

    def truth_at(self, t_s: float, quality: int) -> Detections:
        """The true boxes of the frame at ``t_s`` at ``quality`` pixels, without its pixels."""
        truth = self._truth(self._layout(t_s)[1])
        return truth if quality == self.config.size else truth.scaled_to((quality, quality))

    def _layout(self, t_s: float) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """The pan offset and each sprite's top-left at ``t_s``, canonical pixels."""
        margin = 2 * self.config.pan_margin_px
        ox = round(_bounce(self._pan_start[0] + self._pan_velocity[0] * t_s, margin))
        oy = round(_bounce(self._pan_start[1] + self._pan_velocity[1] * t_s, margin))
        return (ox, oy), [mover.position(t_s) for mover in self._movers]

    def _truth(self, corners: list[tuple[int, int]]) -> Detections:
        """The visible true boxes for sprites at ``corners``, canonical pixels."""
        size = self.config.size
        placed: list[tuple[int, int, int, int]] = []  # sprite rectangles, far to near
        boxes: list[tuple[str, float, float, float, float]] = []
        owners: list[int] = []
        for k, (mover, (x, y)) in enumerate(zip(self._movers, corners, strict=True)):
            h, w = mover.sprite.pixels.shape[:2]
            placed.append((x, y, x + w, y + h))
            for label, bx1, by1, bx2, by2 in mover.sprite.boxes:
                boxes.append((label, x + bx1, y + by1, x + bx2, y + by2))
                owners.append(k)
        keep = [
            (label, x1, y1, x2, y2)
            for (label, x1, y1, x2, y2), k in zip(boxes, owners, strict=True)
            if _occluded((x1, y1, x2, y2), placed[k + 1 :]) <= self.config.max_occluded
        ]
        return Detections.from_lists(
            [[min(max(v, 0.0), size) for v in box[1:]] for box in keep],
            [box[0] for box in keep],
            (size, size),
        )

    def _layer(self, quality: int) -> _Layer:
        """Background and sprites at ``quality`` pixels (the canonical ones at full size)."""
        layer = self._layers.get(quality)
        if layer is None:
            k = quality / self.config.size
            bg = self._background
            side = round(bg.shape[0] * k)
            layer = _Layer(
                _resize(bg, side, side) if k != 1 else bg,
                tuple(
                    _resize(
                        m.sprite.pixels,
                        max(1, round(m.sprite.pixels.shape[1] * k)),
                        max(1, round(m.sprite.pixels.shape[0] * k)),
                    )
                    if k != 1
                    else m.sprite.pixels
                    for m in self._movers
                ),
            )
            self._layers[quality] = layer
        return layer


@dataclass(frozen=True)
class _Layer:
    """A scene's pictures at one quality: the panned background and the sprites."""

    background: Image
    sprites: tuple[Image, ...]


def at_quality(frame: Image, truth: Detections, quality: int) -> tuple[Image, Detections]:
    """A frame and its truth at camera quality ``quality``.

    Args:
        frame: BGR image of any size.
        truth: its boxes, in pixels of ``frame``.
        quality: side in pixels of the square output frame.

    Returns:
        The frame resized to ``quality`` x ``quality`` pixels with area interpolation, and the
        truth in pixels of that frame.
    """
    if quality <= 0:
        msg = f"quality must be a positive side in pixels, got {quality}"
        raise ValueError(msg)
    small = cv2.resize(frame, (quality, quality), interpolation=cv2.INTER_AREA)
    return small, truth.scaled_to((quality, quality))


def _occluded(
    box: tuple[float, float, float, float], nearer: list[tuple[int, int, int, int]]
) -> float:
    """Fraction of ``box`` (frame pixels) covered by the union of the ``nearer`` rectangles."""
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    if x2 <= x1 or y2 <= y1 or not nearer:
        return 0.0
    covered = np.zeros((y2 - y1, x2 - x1), np.bool_)
    for nx1, ny1, nx2, ny2 in nearer:
        covered[max(ny1 - y1, 0) : max(ny2 - y1, 0), max(nx1 - x1, 0) : max(nx2 - x1, 0)] = True
    return float(covered.mean())


def _velocity(rng: np.random.Generator, low: float, high: float) -> tuple[float, float]:
    """A velocity in pixels per second with a speed in [low, high] and a random direction."""
    speed = rng.uniform(low, high)
    angle = rng.uniform(0, 2 * np.pi)
    return float(speed * np.cos(angle)), float(speed * np.sin(angle))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _stratified(rng: np.random.Generator, low: float, high: float, n: int) -> list[int]:
    """``n`` sizes in pixels, one log-uniform draw from each of ``n`` equal slices of the range.

    Every scene then has the same spread of sizes, so F1 differs little between seeds.
    """
    edges = np.log(low) + (np.arange(n) + rng.uniform(0, 1, n)) / max(n, 1) * np.log(high / low)
    return [round(float(v)) for v in rng.permutation(np.exp(edges))]


def _resize(image: Image, width: int, height: int) -> Image:
    """``image`` at ``width`` x ``height`` pixels: area when shrinking, cubic when enlarging."""
    shrink = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _background(rng: np.random.Generator, side: int) -> Image:
    """A random square crop of a random background photograph, ``side`` x ``side`` pixels."""
    photo = _photo(_BACKGROUNDS[rng.integers(len(_BACKGROUNDS))])
    h, w = photo.shape[:2]
    crop = int(min(h, w) * rng.uniform(0.6, 1.0))
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    square = photo[y : y + crop, x : x + crop]
    if rng.random() < 0.5:
        square = square[:, ::-1]
    return np.ascontiguousarray(_resize(square, side, side))


def _face_sprite(rng: np.random.Generator, side: int) -> _Sprite:
    """A random LFW face crop scaled to ``side`` pixels, with its ``face`` box."""
    face = _lfw_faces()[rng.integers(_LFW_FACES)]
    dx, dy, ds = _LFW_FACE_BOX
    box = (FACE, dx * side, dy * side, (dx + ds) * side, (dy + ds) * side)
    return _Sprite(_resize(face, side, side), (box,), ds * side)


def _person_sprite(rng: np.random.Generator, person_px: tuple[float, float]) -> _Sprite:
    """The astronaut head-and-shoulders figure at a random height, maybe mirrored."""
    cx1, cy1, cx2, cy2 = _ASTRONAUT_CROP
    crop = _photo("astronaut")[cy1:cy2, cx1:cx2]
    height = round(_log_uniform(rng, *person_px))
    scale = height / (cy2 - cy1)
    width = round((cx2 - cx1) * scale)
    flip = bool(rng.random() < 0.5)

    def place(
        label: str, box: tuple[float, float, float, float]
    ) -> tuple[str, float, float, float, float]:
        x1, y1, x2, y2 = box[0] - cx1, box[1] - cy1, box[2] - cx1, box[3] - cy1
        if flip:
            x1, x2 = (cx2 - cx1) - x2, (cx2 - cx1) - x1
        return label, x1 * scale, y1 * scale, x2 * scale, y2 * scale

    pixels = _resize(crop[:, ::-1] if flip else crop, width, height)
    face = place(FACE, _ASTRONAUT_FACE)
    return _Sprite(pixels, (face, place(PERSON, _ASTRONAUT_PERSON)), face[3] - face[1])


@functools.cache
def _lfw_faces() -> npt.NDArray[np.uint8]:
    """The LFW face crops as (100, 25, 25, 3) BGR uint8 (grey in all three channels)."""
    from skimage import data

    faces: npt.NDArray[np.float64] = data.lfw_subset()  # type: ignore[no-untyped-call]  # untyped in skimage
    grey = (faces[:_LFW_FACES] * 255).round().astype(np.uint8)
    bgr = np.repeat(grey[..., None], 3, axis=-1)
    bgr.setflags(write=False)  # shared by every scene through the cache
    return bgr


@functools.cache
def _photo(name: str) -> Image:
    """A scikit-image sample photograph as BGR uint8; only files shipped in the wheel."""
    from skimage import data

    image: npt.NDArray[Any] = getattr(data, name)()
    code = cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR
    bgr = cv2.cvtColor(image if image.ndim == 2 else image[..., :3], code)
    bgr.setflags(write=False)  # shared by every scene through the cache
    return bgr
