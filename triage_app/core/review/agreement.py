"""Second reviews and agreement between reviewers.

A share of the decided frames (``review.second_review_share``, chosen per frame by a seeded
hash, so the choice is stable and blind) goes to a second reviewer, who sees it in the queue
without the first label. Agreement is Cohen's kappa (scikit-learn) per pair of reviewers on
the frames both decided. Frames where reviewers disagree wait in a resolve queue until a
supervisor records a decision with ``sample_kind = resolve``.
"""

from __future__ import annotations

import hashlib
from itertools import combinations
from typing import Any

from triage_app.core.model.records import Why
from triage_app.core.store import Workspace

RESOLVE = Why.RESOLVE.value


def selected_for_second_review(frame_id: int, share: float, seed: int = 0) -> bool:
    digest = hashlib.sha256(f"second:{seed}:{frame_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def second_review_frames(ws: Workspace, reviewer: str, share: float, seed: int = 0) -> set[int]:
    """Frames decided by one other reviewer only, chosen for a second look by ``reviewer``."""
    if share <= 0:
        return set()
    labels, _ = ws.decisions.by_reviewer()
    return {f for f, by in labels.items()
            if len(by) == 1 and reviewer not in by and selected_for_second_review(f, share, seed)}


def agreement(ws: Workspace) -> list[dict[str, Any]]:
    """Cohen's kappa for each pair of reviewers over the frames both decided."""
    from sklearn.metrics import cohen_kappa_score

    labels, _ = ws.decisions.by_reviewer()
    reviewers = sorted({r for by in labels.values() for r in by})
    out = []
    for a, b in combinations(reviewers, 2):
        both = [(by[a], by[b]) for by in labels.values() if a in by and b in by]
        if not both:
            continue
        la, lb = [x for x, _ in both], [y for _, y in both]
        agree = sum(x == y for x, y in both) / len(both)
        kappa = None if len(set(la) | set(lb)) < 2 else float(cohen_kappa_score(la, lb))
        out.append(dict(reviewers=(a, b), frames=len(both), agreement=agree, kappa=kappa))
    return out


def disagreements(ws: Workspace) -> list[int]:
    """Frames whose reviewers disagree and that no supervisor has resolved since."""
    labels, last_kind = ws.decisions.by_reviewer()
    return sorted(f for f, by in labels.items() if len(set(by.values())) > 1 and last_kind.get(f) != RESOLVE)
