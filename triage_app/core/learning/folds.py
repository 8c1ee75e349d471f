"""Cross-validation folds that keep near duplicates together: each event (the frames of one
source within a few seconds of each other) stays on one side of every fold, so that no
model is judged on a frame after learning from its neighbour a fraction of a second away."""

from __future__ import annotations

import numpy as np

from triage_app.core.model.records import event_groups
from triage_app.core.store import Workspace


def fold_groups(ws: Workspace, frame_ids: np.ndarray) -> np.ndarray:
    """The event group of each frame (see :func:`event_groups`)."""
    frames = ws.frames.frames_by_id([int(f) for f in frame_ids.tolist()])
    group_of = event_groups(list(frames.values()), ws.settings.review.event_gap_s)
    return np.array([group_of.get(int(f), -1 - i) for i, f in enumerate(frame_ids.tolist())], dtype=np.int64)


def grouped_folds(y: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs, stratified by label, each group on one side: as many folds
    as ``folds``, the smaller class and the groups allow (none when fewer than two)."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y)
    k = int(min(folds, y.sum(), len(y) - y.sum(), len(np.unique(groups))))
    if k < 2:
        return []
    splits = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups)
    return [(train, test) for train, test in splits if 0 < y[train].sum() < len(train)]
