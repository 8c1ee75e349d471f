from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import scored_project
from triage_app.cli import main
from triage_app.core.store import Workspace


def test_retrain_needs_labels_then_trains_and_rescores(tmp_path: Path, ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    root = scored_project(tmp_path, ortho)
    assert main(["retrain", str(root)]) == 2
    assert "needs at least 2 accepted and 2 rejected" in capsys.readouterr().err
    with Workspace(root) as p:
        p.decisions.record([dict(frame_id=r["id"], label="accept" if r["idx"] < 12 else "reject", reviewer="t",
                                      seconds_spent=1.0, policy="p", member_scores="{}") for r in p.frames.frame_rows()])
    assert main(["retrain", str(root)]) == 0
    out = capsys.readouterr().out
    assert "trained on 6 accepted and 6 rejected frames" in out and "re-scored 12 frames" in out
    with Workspace(root) as p:

        head = p.heads.latest()
        assert head["n_pos"] == 6 and head["metrics"]["cv_auc"] is not None
        # Accepted frames are the first half of the flight: capture order alone separates them,
        # so the report with context features shows it.
        assert head["metrics"]["cv_auc_with_context"] >= 0.95
        assert "with context features (capture_order" in out
        # The features the head uses (pooled tiles) are compared with the whole frame alone.
        assert 0 <= head["metrics"]["cv_auc_whole_frame_only"] <= 1 and "whole-frame embedding alone" in out

        from triage_app.core.learning.head import CONTEXT_FEATURES, context_features

        frames = p.frames.frame_rows()
        ids = np.array([f["id"] for f in frames])
        ctx = context_features(p, ids)
        col = {n: i for i, n in enumerate(CONTEXT_FEATURES)}
        assert ctx.shape == (12, len(CONTEXT_FEATURES))
        assert ctx[0, col["capture_order"]] == 0 and ctx[-1, col["capture_order"]] == 1
        assert np.all(np.diff(ctx[:, col["capture_order"]]) > 0)
        scores = {f: s for f, s in zip(*p.scores.score_table(["imagenet"])[::2], strict=True)}
        assert ctx[3, col["prev_score"]] == pytest.approx(scores[ids[2]][0], abs=1e-6)
        assert ctx[3, col["next_score"]] == pytest.approx(scores[ids[4]][0], abs=1e-6)
        assert ctx[0, col["prev_score"]] == 0 and ctx[-1, col["next_score"]] == 0
        # No telemetry in this flight: altitude and pitch are flagged as missing.
        assert np.all(ctx[:, col["alt_missing"]] == 1) and np.all(ctx[:, col["pitch_missing"]] == 1)


def test_labels_command_flags_a_decision_against_the_evidence(tmp_path: Path, ortho: np.ndarray,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = scored_project(tmp_path, ortho, frames=48)
    with Workspace(root) as p:
        frames = p.frames.frame_rows()
        # The flight pans over the map: its first and last parts look different. One frame
        # of the first part is rejected although its neighbours are accepted.
        wrong = frames[3]["id"]
        p.decisions.record([dict(frame_id=r["id"], label="reject" if r["id"] == wrong or k >= 12 else "accept",
                                      reviewer="t", seconds_spent=1.0, policy="p", member_scores="{}")
                                 for k, r in enumerate(frames)])
    assert main(["labels", str(root), "--json"]) == 0
    import json

    found = json.loads(capsys.readouterr().out)
    assert found and found[0]["frame_id"] == wrong and found[0]["label"] == "reject"
    assert found[0]["label_probability"] < 0.5
    assert main(["labels", str(root)]) == 0
    assert "decisions look wrong" in capsys.readouterr().out

    # Re-review: the doubted frames come back to the queue, blind to the old label, and leave
    # it once decided again.
    from triage_app.core.review.queue import build_queue

    assert main(["labels", str(root), "--queue"]) == 0
    assert "back in the review queue" in capsys.readouterr().out
    with Workspace(root) as p:
        queue, _ = build_queue(p)
        back = {c.frame_id: c.kind for c in queue.items if c.kind == "rereview"}
        assert set(back) == {f["frame_id"] for f in found}
        p.decisions.record([dict(frame_id=wrong, label="accept", reviewer="s", seconds_spent=1.0, policy="p",
                                      member_scores="{}", sample_kind="rereview")])
        queue, _ = build_queue(p)
        assert wrong not in {c.frame_id for c in queue.items}


def test_the_head_reads_the_whole_frame_only_when_the_evidence_favours_it(
        tmp_path: Path, ortho: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from triage_app.core.learning import head as learning
    from triage_app.core.scoring.members.ensemble import HeadMember
    from triage_app.core.scoring.pipeline import load_head

    root = scored_project(tmp_path, ortho, frames=48)
    with Workspace(root) as p:
        frames = p.frames.frame_rows()
        labels = {r["id"]: r["idx"] % 4 == 0 for r in frames}  # a pattern the pooled tiles do not carry
        p.decisions.record([dict(frame_id=f, label="accept" if v else "reject", reviewer="t", seconds_spent=1.0,
                                      policy="p", member_scores="{}") for f, v in labels.items()])
        # First the real features: a tie or a loss for the whole frame keeps the pooled tiles.
        r = learning.retrain(p)
        assert r.features_used == "pooled" or r.cv_auc_whole_frame > r.cv_auc + learning.WHOLE_FRAME_MARGIN
        # Then whole-frame features that carry the labels outright: the head switches to them,
        # says so, and re-scores every frame from them.
        real = p.embeddings.whole_frame

        def telling(backbone, frame_ids):
            base = real(backbone, frame_ids)
            signal = np.array([3.0 if labels[int(f)] else -3.0 for f in frame_ids], np.float32)
            base[:, :200] = signal[:, None]
            return base

        monkeypatch.setattr(p.embeddings, "whole_frame", telling)
        r = learning.retrain(p)
        assert r.features_used == "whole_frame" and r.cv_auc_whole_frame > r.cv_auc, (r.cv_auc, r.cv_auc_whole_frame)
        head = p.heads.latest()
        assert head["metrics"]["features_used"] == "whole_frame" and head["dim"] == 1280
        ids, _, mat, _ = p.scores.score_table(["head"])
        assert all((mat[i, 0] > 0.5) == labels[int(f)] for i, f in enumerate(ids))
        # Live scoring reads the whole-frame tile (tile 0) and points at it.
        model = load_head(p)
        assert model.features == "whole_frame"
        member = HeadMember(p.cards["head"], model)
        tiles = np.random.default_rng(0).normal(size=(5, 1280)).astype(np.float32)
        score, tile = member.run_frame(tiles)
        assert tile == 0 and score == pytest.approx(float(model.score(tiles[:1])[0]))


def test_recall_estimates_read_out_of_fold_head_scores_for_decided_frames(tmp_path: Path, ortho: np.ndarray) -> None:
    """A label pattern the features do not carry: the head memorises the decided frames
    (its own scores separate them) but cannot predict them. Recall estimates must see the
    latter, or a positive found by the audit would be learned, leave the dropped frames, and
    the audit would stop seeing what the policy misses."""
    from sklearn.metrics import roc_auc_score

    from triage_app.core.learning import head as learning
    from triage_app.core.review.audit import snapshot

    root = scored_project(tmp_path, ortho, frames=48)
    with Workspace(root) as p:
        frames = p.frames.frame_rows()
        labels = {r["id"]: r["idx"] % 4 == 0 for r in frames}
        p.decisions.record([dict(frame_id=f, label="accept" if v else "reject", reviewer="t", seconds_spent=1.0,
                                      policy="p", member_scores="{}") for f, v in labels.items()])
        learning.retrain(p)
        store = p.scores
        oof = store.oof_scores()["head"]
        assert set(oof) == set(labels)  # every decided frame
        ids, _, own, _ = store.score_table(["head"])
        y = np.array([labels[int(f)] for f in ids])
        assert roc_auc_score(y, own[:, 0]) > 0.95  # memorised
        snap = snapshot(p)
        col = snap.names.index("head")
        seen = np.array([oof[int(f)] for f in snap.ids])
        assert np.allclose(snap.scores[:, col], seen)  # the estimates read the out-of-fold scores
        assert roc_auc_score(y, seen) < 0.85  # which do not pretend to know the labels
