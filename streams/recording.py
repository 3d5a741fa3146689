"""Recordings: frame messages on disk, exactly as they travel on ``frames.raw.<quality>``.

A recording is a folder of three files::

    manifest.json   what it holds: sources, qualities, frame counts, time span, sha256
    index.jsonl     one JSON object per frame, in recording order:
                    {"source", "sequence", "quality", "capture_ns", "offset", "length",
                     "headers": {name: base64}}
    frames.bin      the message values (JPEG, PNG or raw bytes), back to back

Why this format: it is plain files any language reads (``jq`` on the index, a seek into
``frames.bin`` for a frame), it is appended to while recording with nothing held in memory,
and values and headers are the Kafka message's own bytes, so a replay sends what was
recorded without decoding and re-encoding it. The content hash (``sha256``) is over
``index.jsonl`` then ``frames.bin``: two recordings with the same hash hold the same frames.

Generated cameras are recorded without a broker (:func:`record_cameras`), on a nominal clock
(frame ``i`` captured at ``i / fps`` s), so one seed always gives the same recording, byte for
byte. :func:`record_topics` records what a running prefix's cameras publish.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mmap
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from tierflow.errors import TierflowError
from tierflow.streams.capture import Captured, FrameSource, Skipped, framed
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, decode_meta

FORMAT = "tierflow-recording"
VERSION = 1
MANIFEST, INDEX, DATA = "manifest.json", "index.jsonl", "frames.bin"


class RecordingError(TierflowError):
    """A recording cannot be written or read: missing files, wrong format, altered content."""


@dataclass(frozen=True)
class RecordedFrame:
    """One frame of a recording's index.

    Attributes:
        source: camera id (the Kafka key).
        sequence: the frame number the camera gave it.
        quality: side in pixels the frame was sent at.
        capture_ns: capture time, ns since the Unix epoch (nominal for generated cameras).
        offset: where its value starts in ``frames.bin``, bytes.
        length: value size, bytes.
        headers: the message's headers, names to raw bytes.
    """

    source: str
    sequence: int
    quality: int
    capture_ns: int
    offset: int
    length: int
    headers: Mapping[str, bytes]

    def to_json(self) -> str:
        """The index line of this frame (no trailing newline)."""
        encoded = {k: base64.b64encode(v).decode() for k, v in self.headers.items()}
        line = {
            "source": self.source,
            "sequence": self.sequence,
            "quality": self.quality,
            "capture_ns": self.capture_ns,
            "offset": self.offset,
            "length": self.length,
            "headers": encoded,
        }
        return json.dumps(line, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> RecordedFrame:
        """Parse an index line.

        Raises:
            RecordingError: the line is not a frame entry.
        """
        try:
            raw = json.loads(line)
            headers = {k: base64.b64decode(v) for k, v in raw["headers"].items()}
            return cls(
                str(raw["source"]),
                int(raw["sequence"]),
                int(raw["quality"]),
                int(raw["capture_ns"]),
                int(raw["offset"]),
                int(raw["length"]),
                headers,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"bad index line {line[:80]!r}: {exc}"
            raise RecordingError(msg) from exc


@dataclass
class _SourceStats:
    frames: int = 0
    qualities: Counter[int] = field(default_factory=Counter)
    first_ns: int | None = None
    last_ns: int | None = None
    captures_ns: list[int] = field(default_factory=list)

    def add(self, frame: RecordedFrame) -> None:
        self.frames += 1
        self.qualities[frame.quality] += 1
        t = frame.capture_ns  # 0 for a generated camera's first frame: not "unset"
        self.first_ns = t if self.first_ns is None else min(self.first_ns, t)
        self.last_ns = t if self.last_ns is None else max(self.last_ns, t)
        self.captures_ns.append(frame.capture_ns)

    def manifest(self) -> dict[str, Any]:
        steps = np.diff(np.sort(np.array(self.captures_ns, np.int64)))
        steps = steps[steps > 0]  # a frame recorded twice (a producer's retry) is no interval
        fps = round(1e9 / float(np.median(steps)), 3) if steps.size else None
        return {
            "frames": self.frames,
            "qualities": {str(q): n for q, n in sorted(self.qualities.items())},
            "first_capture_ns": self.first_ns,
            "last_capture_ns": self.last_ns,
            "fps": fps,
        }


class _Closing:
    """``with`` support for a class with ``close()``."""

    def close(self) -> object:
        """Release what the object holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RecordingWriter(_Closing):
    """Appends frames to a new recording folder; :meth:`close` writes the manifest.

    Leaving its ``with`` block by an exception (an error, Ctrl-C during a generated
    recording) removes what was written instead: a folder without a manifest would look
    like a recording, and one with a manifest would look complete. (A live ``--topics``
    recording ended by Ctrl-C ends normally: it holds what arrived until then.)

    Args:
        folder: where to write; must not hold a recording already.
        origin: what was recorded, for the manifest (``cameras``, ``topics:<prefix>``).
    """

    def __init__(self, folder: Path, origin: str) -> None:
        if (folder / MANIFEST).exists() or (folder / INDEX).exists():
            msg = f"{folder} already holds a recording; choose another folder"
            raise RecordingError(msg)
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.origin = origin
        self._index = (folder / INDEX).open("w", encoding="utf-8")
        self._data = (folder / DATA).open("wb")
        self._index_hash = hashlib.sha256()
        self._data_hash = hashlib.sha256()
        self._offset = 0
        self._sources: dict[str, _SourceStats] = {}
        self.manifest: dict[str, Any] | None = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        self._index.close()
        self._data.close()
        for name in (INDEX, DATA):
            (self.folder / name).unlink(missing_ok=True)

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return sum(s.frames for s in self._sources.values())

    def add(self, value: bytes, headers: Mapping[str, bytes]) -> RecordedFrame:
        """Append one frame message; its source, sequence, quality and time come from headers.

        Raises:
            FrameFormatError: the headers are not a frame's (missing or bad ``tf-*``).
        """
        meta = decode_meta(dict(headers))
        frame = RecordedFrame(
            meta.source,
            meta.sequence,
            meta.quality,
            meta.capture_ns,
            self._offset,
            len(value),
            dict(headers),
        )
        line = (frame.to_json() + "\n").encode()
        self._index.write(line.decode())
        self._index_hash.update(line)
        self._data.write(value)
        self._data_hash.update(value)
        self._offset += len(value)
        self._sources.setdefault(frame.source, _SourceStats()).add(frame)
        return frame

    def close(self) -> dict[str, Any]:
        """Flush the files and write ``manifest.json``; returns the manifest."""
        if self.manifest is not None:
            return self.manifest
        self._index.close()
        self._data.close()
        digest = hashlib.sha256(self._index_hash.digest() + self._data_hash.digest())
        firsts = [s.first_ns for s in self._sources.values() if s.first_ns is not None]
        lasts = [s.last_ns for s in self._sources.values() if s.last_ns is not None]
        qualities: Counter[int] = sum((s.qualities for s in self._sources.values()), Counter())
        self.manifest = {
            "format": FORMAT,
            "version": VERSION,
            "origin": self.origin,
            "created_ns": time.time_ns(),
            "frames": self.frames,
            "bytes": self._offset,
            "span_s": round((max(lasts) - min(firsts)) / 1e9, 6) if firsts else 0.0,
            "qualities": {str(q): n for q, n in sorted(qualities.items())},
            "sources": {k: s.manifest() for k, s in sorted(self._sources.items())},
            "sha256": digest.hexdigest(),
        }
        text = json.dumps(self.manifest, indent=2, sort_keys=True) + "\n"
        (self.folder / MANIFEST).write_text(text, encoding="utf-8")
        return self.manifest


def content_hash(folder: Path) -> str:
    """The sha256 a manifest states, computed again from ``index.jsonl`` and ``frames.bin``."""
    digests = []
    for name in (INDEX, DATA):
        h = hashlib.sha256()
        with (folder / name).open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digests.append(h.digest())
    return hashlib.sha256(b"".join(digests)).hexdigest()


class Recording(_Closing):
    """A recording opened for reading: the manifest, the index by source, values on demand.

    Args:
        folder: a folder written by :class:`RecordingWriter`.
        verify: recompute the content hash and refuse a recording that does not match.

    Raises:
        RecordingError: files missing, another format or version, a hash mismatch.
    """

    def __init__(self, folder: Path, verify: bool = True) -> None:
        self.folder = folder
        try:
            self.manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text("utf-8"))
        except FileNotFoundError as exc:
            msg = f"{folder} is not a recording: no {MANIFEST} (make one with tierflow record)"
            raise RecordingError(msg) from exc
        except ValueError as exc:
            msg = f"{folder / MANIFEST} is not JSON: {exc}"
            raise RecordingError(msg) from exc
        if not isinstance(self.manifest, dict):
            msg = f"{folder / MANIFEST} is not a recording's manifest"
            raise RecordingError(msg)
        if self.manifest.get("format") != FORMAT or self.manifest.get("version") != VERSION:
            found = f"{self.manifest.get('format')} v{self.manifest.get('version')}"
            msg = f"{folder} holds {found}, not {FORMAT} v{VERSION}"
            raise RecordingError(msg)
        missing = [n for n in (INDEX, DATA) if not (folder / n).is_file()]
        if missing or not isinstance(self.manifest.get("sha256"), str):
            msg = f"{folder} is an incomplete recording (missing: {missing or ['sha256']})"
            raise RecordingError(msg)
        if verify and (actual := content_hash(folder)) != self.manifest["sha256"]:
            msg = f"{folder} was altered: sha256 {actual} != manifest {self.manifest['sha256']}"
            raise RecordingError(msg)
        with (folder / INDEX).open(encoding="utf-8") as f:
            self.frames = [RecordedFrame.from_json(line) for line in f if line.strip()]
        self.by_source: dict[str, list[RecordedFrame]] = {}
        for frame in self.frames:
            self.by_source.setdefault(frame.source, []).append(frame)
        for frames in self.by_source.values():
            frames.sort(key=lambda f: f.capture_ns)  # stable: recording order breaks ties
        self._file = (folder / DATA).open("rb")
        size = (folder / DATA).stat().st_size
        self._data = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    @property
    def sha256(self) -> str:
        """The content hash of the manifest."""
        return str(self.manifest["sha256"])

    def fps(self, source: str) -> float:
        """The source's frame rate from its capture times (25 when it has one frame)."""
        fps = self.manifest["sources"][source]["fps"]
        return float(fps) if fps else 25.0

    def value(self, frame: RecordedFrame) -> bytes:
        """The message value of ``frame``."""
        return bytes(self._data[frame.offset : frame.offset + frame.length])

    @property
    def start_ns(self) -> int:
        """The capture time of the recording's first frame, any source, ns."""
        return min(frames[0].capture_ns for frames in self.by_source.values())

    def offsets_s(self, source: str) -> list[float]:
        """Seconds from the recording's first frame (any source) to each frame of ``source``.

        One origin for every source keeps their relative timing: a camera that joined a
        recorded run 10 s late joins its replay 10 s late.
        """
        start = self.start_ns
        return [(f.capture_ns - start) / 1e9 for f in self.by_source[source]]

    def span_s(self) -> float:
        """Seconds of one lap of a looping replay: first to last frame, plus one frame period."""
        end = max(frames[-1].capture_ns for frames in self.by_source.values())
        return (end - self.start_ns) / 1e9 + 1.0 / max(self.fps(s) for s in self.by_source)

    def close(self) -> None:
        """Release the data file."""
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        self._file.close()


class RecordingSource:
    """One recorded source as a camera's input: frame ``index`` is its ``index``-th frame.

    The camera follows its assignments as with any source: a frame asked for at the size it
    was recorded is forwarded as recorded (:attr:`Captured.encoded`), at another size it is
    decoded and resized (upscaling a frame recorded smaller adds no detail). Truth travels
    in pixels of the recorded frame; the camera scales it to what it sends.

    Args:
        recording: the open recording.
        source: which of its sources.
        contract: decodes the frames.
        loop: start again after the last frame (index wraps).
    """

    live = False

    def __init__(
        self, recording: Recording, source: str, contract: Contract, loop: bool = False
    ) -> None:
        if source not in recording.by_source:
            known = ", ".join(sorted(recording.by_source))
            msg = f"{recording.folder} has no source {source!r} (it has {known})"
            raise RecordingError(msg)
        self.recording = recording
        self.frames = recording.by_source[source]
        self.contract = contract
        self.loop = loop
        self.description = f"recording:{recording.folder}#{source}"

    def _frame(self, index: int) -> tuple[RecordedFrame, FrameMeta] | None:
        if index >= len(self.frames) and not self.loop:
            return None
        frame = self.frames[index % len(self.frames)]
        return frame, decode_meta(dict(frame.headers))

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured | None:
        """The ``index``-th recorded frame, decoded; None past the end (unless looping)."""
        found = self._frame(index)
        if found is None:
            return None
        frame, meta = found
        value = self.recording.value(frame)
        image = self.contract.codec.decode_pixels(value, meta)
        same = meta.content_type is self.contract.codec.content_type
        return Captured(image, meta.truth, encoded=value if same else None, origin=meta.origin)

    def skip(self, index: int, t_s: float, quality: int) -> Skipped | None:
        """The ``index``-th frame's truth at ``quality`` (headers only, no pixels)."""
        found = self._frame(index)
        if found is None:
            return None
        truth = found[1].truth
        return Skipped(truth.scaled_to((quality, quality)) if truth is not None else None)

    def close(self) -> None:
        """Nothing to release (the recording is closed by its owner)."""


def record_cameras(
    folder: Path,
    contract: Contract,
    sources: Mapping[str, FrameSource],
    frames: int,
    fps: float,
    quality: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Record ``frames`` frames of each source at ``quality`` on a nominal ``fps`` clock.

    No broker is involved; frame ``i`` of every source is captured at ``i / fps`` seconds
    (``capture_ns`` counts from 0, so the recording depends on the sources alone).

    Returns:
        The manifest.
    """
    with RecordingWriter(folder, "cameras") as writer:
        for index in range(frames):
            t_s = index / fps
            for source_id, source in sources.items():
                captured = source.read(index, t_s, quality)
                if captured is None:
                    continue
                image, truth, origin = framed(captured, quality)
                meta = FrameMeta(
                    source=source_id,
                    sequence=index,
                    capture_ns=round(t_s * 1e9),
                    quality=quality,
                    content_type=contract.codec.content_type,
                    origin=origin,
                    truth=truth,
                )
                value, headers = contract.codec.encode(image, meta)
                writer.add(value, dict(headers))
            if progress is not None:
                progress(index + 1)
        return writer.close()
