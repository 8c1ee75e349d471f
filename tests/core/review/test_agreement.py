from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from tests.conftest import scored_project
from triage_app.cli import main
from triage_app.core.model.settings import load_settings
from triage_app.core.review.agreement import RESOLVE, agreement, disagreements
from triage_app.core.review.queue import build_queue
from triage_app.core.store import Workspace


def _decide(p: Workspace, frame_id: int, label: str, reviewer: str, kind: str = "candidate") -> None:
    p.decisions.record([dict(frame_id=frame_id, label=label, reviewer=reviewer, seconds_spent=1.0, policy="p",
                                  member_scores="{}", sample_kind=kind)])


def test_second_review_kappa_and_resolve_queue(tmp_path: Path, ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    root = scored_project(tmp_path, ortho, members=("imagenet",))
    with Workspace(root) as p:
        p.settings = load_settings(root, overrides={"review": {"second_review_share": 0.5, "reviewer": "ann"}})
        ids = [f["id"] for f in p.frames.frame_rows()]
        first = ["accept" if k % 3 == 0 else "reject" for k in range(len(ids))]
        for fid, label in zip(ids, first, strict=True):
            _decide(p, fid, label, "ann")
        # Ann's own queue never shows her frames again; Bob's shows about half of them, blind.
        ann_q, _ = build_queue(p)
        assert not {c.frame_id for c in ann_q.items} & set(ids)
        bob_q, _ = build_queue(p, reviewer="bob")
        second = [c.frame_id for c in bob_q.items if c.kind == "second"]
        assert 2 <= len(second) <= len(ids) - 2
        again, _ = build_queue(p, reviewer="bob")
        assert [c.frame_id for c in again.items if c.kind == "second"] == second  # stable choice
        # Bob flips every other label he sees.
        bob_labels = {}
        for k, fid in enumerate(second):
            lab = first[ids.index(fid)]
            bob_labels[fid] = lab if k % 2 else ("reject" if lab == "accept" else "accept")
            _decide(p, fid, bob_labels[fid], "bob", "second")
        pair = agreement(p)[0]
        a = [first[ids.index(f)] for f in second]
        b = [bob_labels[f] for f in second]
        assert pair["reviewers"] == ("ann", "bob") and pair["frames"] == len(second)
        assert pair["kappa"] == pytest.approx(cohen_kappa_score(a, b))
        disputed = [f for f in second if bob_labels[f] != first[ids.index(f)]]
        assert disagreements(p) == sorted(disputed)
        resolve_q, _ = build_queue(p, resolve=True)
        assert {c.frame_id for c in resolve_q.items} == set(disputed) and {c.kind for c in resolve_q.items} == {"resolve"}
        # The supervisor settles one: it leaves the resolve queue, and its label is the standing one.
        _decide(p, disputed[0], "accept", "sue", RESOLVE)
        assert disagreements(p) == sorted(disputed[1:])
        standing = {d.frame_id: d.label for d in p.decisions.current()}
        assert standing[disputed[0]] == "accept"
    assert main(["agreement", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pairs"][0]["frames"] == len(second) and len(out["disagreements"]) == len(disputed) - 1
    assert main(["agreement", str(root)]) == 0
    assert "Cohen's kappa" in capsys.readouterr().out
