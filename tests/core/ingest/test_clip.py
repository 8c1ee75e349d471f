"""The seconds around a frame for the player: the very pictures a full decode gives, at the
container's times, about ten a second, the frame asked about among them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.core.ingest.test_video import CLIPS, _clip, full_decode
from triage_app.core.ingest.clip import clip_around
from triage_app.core.ingest.video import PacketIndex
from triage_app.core.model.errors import SourceError


@pytest.mark.parametrize("name", ["b-frames", "variable rate"])
def test_the_clip_holds_the_pictures_of_a_full_decode_around_the_frame(tmp_path: Path, ortho: np.ndarray, name: str) -> None:
    codec, options, steps = CLIPS[name]
    path = tmp_path / "clip.mp4"
    _clip(path, ortho, codec, options, steps)
    every = full_decode(path)
    times = PacketIndex.read(path).times
    t = times[60]
    clip = clip_around(str(path), t, before_s=1.0, after_s=1.0, fps=10.0)
    assert clip.times == sorted(clip.times) and clip.times[0] >= t - 1.0 - 1e-9 and clip.times[-1] <= t + 1.0 + 1e-9
    assert clip.times[clip.centre] == pytest.approx(t)
    assert 15 <= len(clip.images) <= 25  # about ten a second over two seconds
    for when, image in zip(clip.times, clip.images, strict=True):
        assert np.array_equal(image, every[times.index(when)])  # 320x240: not shrunk


def test_a_large_frame_is_shrunk_and_a_video_without_frames_there_is_named(tmp_path: Path, ortho: np.ndarray) -> None:
    codec, options, steps = CLIPS["keyframe a second"]
    path = tmp_path / "clip.mp4"
    _clip(path, ortho, codec, options, steps)
    clip = clip_around(str(path), 2.0, max_side=160)
    assert all(max(im.shape[:2]) == 160 for im in clip.images)
    with pytest.raises(SourceError, match="has no frame near 99.00 s"):
        clip_around(str(path), 99.0)
    (tmp_path / "empty.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="empty.mp4: gives no frame timestamps"):
        clip_around(str(tmp_path / "empty.mp4"), 1.0)
