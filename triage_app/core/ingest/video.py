"""Decoding a video's sampled frames and as few others as their pictures depend on (PyAV).

A full decode of 1080p30 to keep one frame a second spends nearly all its time on frames
nobody looks at. Reading the container's packets costs next to nothing (no pixels are
decoded): it gives every frame's presentation time, its place in decode order and whether it
is a keyframe. From that the frames a sampling keeps are known before any decoding, and the
decoder is given only what they need:

- the packets from the keyframe before a kept frame up to the kept frame (a segment), after
  a seek to that keyframe: the GOPs between kept frames are never read;
- within a segment, frames that no other frame refers to (non-reference B-frames) are
  dropped by the decoder unless they are kept frames themselves (``skip_frame``);
- segments that overlap are decoded as one.

A kept frame is the very picture a full decode gives (``tests/core/ingest/test_video.py``
checks it against one, with B-frames, open GOPs and a variable frame rate). Where the
container gives no usable timestamps (missing or repeated), :class:`PacketIndex.read`
returns ``None`` and the caller decodes every frame instead.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: A segment that starts at most this many packets past where the demuxer is goes on by
#: reading (and not decoding) the packets in between; further on, the demuxer seeks.
READ_ON_PACKETS = 48


def available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:  # pragma: no cover - PyAV is a dependency; a broken install falls back to OpenCV
        return False
    return True


@dataclass
class PacketIndex:
    """A video stream's packets in decode order, and its frames in presentation order."""

    pts: list[int]  # per packet, decode order
    dts: list[int | None]
    key: list[bool]
    time_base: Fraction
    order: list[int] = field(default_factory=list)  # presentation index -> decode position
    times: list[float] = field(default_factory=list)  # presentation index -> seconds since the first frame
    rank: list[int] = field(default_factory=list)  # decode position -> presentation index

    @classmethod
    def read(cls, path: str | Path) -> PacketIndex | None:
        """Demux the first video stream without decoding it. ``None`` where the timestamps
        cannot place every frame (then every frame must be decoded to know the order)."""
        import av

        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    return None
                stream = container.streams.video[0]
                pts: list[int] = []
                dts: list[int | None] = []
                key: list[bool] = []
                for packet in container.demux(stream):
                    if not packet.size:
                        continue
                    if packet.pts is None:
                        return None
                    pts.append(int(packet.pts))
                    dts.append(None if packet.dts is None else int(packet.dts))
                    key.append(bool(packet.is_keyframe))
                time_base = stream.time_base
        except (av.error.FFmpegError, OSError, UnicodeError) as exc:
            log.info("%s: packets not indexed (%s); every frame is decoded", path, exc)
            return None
        if not pts or not key[0] or len(set(pts)) != len(pts) or time_base is None:
            return None
        index = cls(pts, dts, key, Fraction(time_base))
        index.order = sorted(range(len(pts)), key=pts.__getitem__)
        index.rank = [0] * len(pts)
        for i, p in enumerate(index.order):
            index.rank[p] = i
        first = pts[index.order[0]]
        index.times = [float((pts[p] - first) * index.time_base) for p in index.order]
        return index

    def __len__(self) -> int:
        return len(self.pts)

    def segments(self, wanted: list[int]) -> list[Segment]:
        """The decode segments that give the frames ``wanted`` (presentation indices)."""
        keys = [p for p, k in enumerate(self.key) if k]
        spans: list[tuple[int, int]] = []
        for pos in (self.order[i] for i in wanted):
            k = bisect.bisect_right(keys, pos) - 1
            # A frame shown before the keyframe it follows in decode order (an open GOP's
            # leading frame) refers to the GOP before: start there.
            if self.pts[pos] < self.pts[keys[k]] and k > 0:
                k -= 1
            spans.append((keys[k], pos))
        out: list[Segment] = []
        for start, pos in sorted(spans):
            if out and start <= out[-1].end + 1:  # overlapping or contiguous: one decoding
                out[-1].end = max(out[-1].end, pos)
                out[-1].targets.add(pos)
            else:
                out.append(Segment(start, pos, {pos}))
        return out


@dataclass
class Segment:
    start: int  # decode position of its keyframe
    end: int  # decode position of its last kept frame
    targets: set[int]  # decode positions of the kept frames in it


class ReadError(Exception):
    """The container could not be opened, sought or demuxed (not one frame's data)."""


class PlannedDecoder:
    """Decodes the frames wanted of one video through :meth:`PacketIndex.segments`."""

    def __init__(self, path: str | Path, index: PacketIndex, threads: int = 0) -> None:
        self.path = str(path)
        self.index = index
        self.threads = threads
        self.decoded = 0  # pictures the decoder produced (kept or not)

    def read(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """(presentation index, BGR picture or None, why not) of each wanted frame, in
        presentation order; a frame the decoder could not give comes with the reason."""
        import av

        try:
            yield from self._read(wanted)
        except (av.error.FFmpegError, OSError) as exc:
            raise ReadError(str(exc)) from exc

    def _read(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        import av

        idx = self.index
        by_pts = {idx.pts[idx.order[i]]: i for i in wanted}
        with av.open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.threads:
                stream.thread_count = self.threads
            cc = stream.codec_context
            demux: Iterator[Any] | None = None
            pos = -1  # decode position of the packet the demuxer gives next
            for seg in idx.segments(wanted):
                if demux is None or not (pos <= seg.start <= pos + READ_ON_PACKETS):
                    demux, pos = self._seek(container, stream, seg.start), seg.start
                emitted: set[int] = set()
                errors: list[str] = []
                while pos <= seg.end:
                    packet = next(demux, None)
                    if packet is None:
                        break
                    if not packet.size:
                        continue
                    here, pos = pos, pos + 1
                    if here < seg.start:
                        continue
                    cc.skip_frame = "DEFAULT" if here in seg.targets else "NONREF"
                    yield from self._take(cc, packet, by_pts, emitted, errors)
                cc.skip_frame = "DEFAULT"
                yield from self._take(cc, None, by_pts, emitted, errors)  # what the decoder still holds
                cc.flush_buffers()
                missing = sorted(idx.rank[p] for p in seg.targets if idx.pts[p] not in emitted)
                for i in missing:
                    yield i, None, errors[-1] if errors else "frame data could not be decoded"

    def _take(self, cc: Any, packet: Any, by_pts: dict[int, int], emitted: set[int],
              errors: list[str]) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        import av

        try:
            frames = cc.decode(packet)
        except av.error.FFmpegError as exc:
            errors.append(f"frame data could not be decoded ({exc.__class__.__name__})")
            return
        for frame in frames:
            self.decoded += 1
            i = by_pts.get(frame.pts)
            if i is not None and frame.pts not in emitted:
                emitted.add(frame.pts)
                yield i, frame.to_ndarray(format="bgr24"), None

    def _seek(self, container: Any, stream: Any, start: int) -> Iterator[Any]:
        """Packets from decode position ``start`` on: a seek to its keyframe, or (where the
        seek lands elsewhere) a reading from the first packet."""
        import av

        idx = self.index
        target = (idx.pts[start], idx.dts[start])
        if start > 0:
            try:
                container.seek(idx.pts[start], stream=stream, backward=True, any_frame=False)
                demux = container.demux(stream)
                for packet in demux:
                    if not packet.size:
                        continue
                    here = (packet.pts, packet.dts)
                    if here == target:
                        return _chain(packet, demux)
                    if packet.dts is not None and target[1] is not None and packet.dts > target[1]:
                        break  # the seek landed past it
            except av.error.FFmpegError as exc:
                log.info("%s: seek failed (%s); reading from the start", self.path, exc)
            container.seek(min(idx.pts), stream=stream, backward=True, any_frame=False)  # raises if even that fails
        demux = container.demux(stream)
        skipped = 0
        for packet in demux:
            if not packet.size:
                continue
            if skipped == start:
                return _chain(packet, demux)
            skipped += 1
        return iter(())


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
