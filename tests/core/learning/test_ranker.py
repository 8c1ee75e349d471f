from __future__ import annotations

import numpy as np

from triage_app.core.learning.ranker import similarity_features


def test_similarity_to_the_nearest_decided_frames_never_counts_a_frame_as_its_own_neighbour() -> None:
    """Two tight clusters, one accepted and one rejected: a frame near the accepted ones is
    most like them; a decided frame's features come from the other decided frames only
    (leave one out), as an undecided frame's would."""
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0.0, 0.0]) + 0.05 * rng.normal(size=(6, 3))
    b = np.array([0.0, 1.0, 0.0]) + 0.05 * rng.normal(size=(6, 3))
    z = np.vstack([a, b, [[0.9, 0.1, 0.0]]])
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    ref = np.arange(12)
    y = np.array([1] * 6 + [0] * 6)
    out = similarity_features(zn, ref, y, np.arange(13), k=3)
    assert out[12, 0] > 0.95 and out[12, 1] < 0.3  # the undecided frame: like the accepted ones
    assert np.all(out[:6, 0] > out[:6, 1]) and np.all(out[6:12, 1] > out[6:12, 0])
    # Leave one out: with a single accepted frame, that frame has no accepted neighbour at all.
    lone = similarity_features(zn, ref, np.array([1] + [0] * 11), np.array([0, 1]), k=3)
    assert lone[0, 0] == 0.0 and lone[1, 0] > 0.9
    # In chunks the same as at once.
    assert np.allclose(similarity_features(zn, ref, y, np.arange(13), k=3, chunk=4), out)
