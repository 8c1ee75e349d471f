from __future__ import annotations

import numpy as np
import pytest

from triage_app.core.model.policy import fuse, normalised, parse_rule

S = np.array([
    [0.9, 0.1, 0.2],   # one member fires
    [0.6, 0.7, 0.2],   # two fire
    [0.8, 0.9, 0.95],  # all fire
    [0.1, 0.2, 0.3],   # none
    [0.9, np.nan, np.nan],  # only one member scored it: K-of-N scales to ceil(K/N)
])
T = np.array([0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    "rule, expected",
    [("any", [1, 1, 1, 0, 1]), ("2-of-3", [0, 1, 1, 0, 1]), ("all", [0, 0, 1, 0, 1]), ("3 of 3", [0, 0, 1, 0, 1])],
)
def test_voting_rules(rule: str, expected: list[int]) -> None:
    fused, cand = fuse(S, T, parse_rule(rule))
    assert cand.astype(int).tolist() == expected
    # The fused score crosses 1 exactly where the rule makes a candidate.
    assert ((fused >= 1) == cand).all()


def test_k_of_n_scales_to_the_members_that_voted() -> None:
    s = np.array([[0.9, 0.9, np.nan, np.nan], [0.9, 0.1, 0.1, np.nan]])
    _, cand = fuse(s, np.full(4, 0.5), parse_rule("2-of-4"))
    assert cand.tolist() == [True, False]  # 2 voters need 1; 3 voters need 2


def test_fused_score_orders_by_margin() -> None:
    fused, _ = fuse(S, T, parse_rule("any"))
    assert np.argmax(fused) == 2  # the 0.95 score is the clearest pass
    assert fused[3] < fused[1] < fused[0]


def test_per_member_thresholds() -> None:
    _, cand = fuse(S, np.array([0.95, 0.5, 0.5]), parse_rule("any"))
    assert cand.tolist() == [False, True, True, False, False]
    assert normalised(np.array([0.25, 0.5, 1.0]), np.array([0.5, 0.5, 0.5])).tolist() == [0.5, 1.0, 2.0]


def test_bad_rules_are_refused() -> None:
    for bad in ("most", "4-of-3", "0-of-2"):
        with pytest.raises(ValueError):
            parse_rule(bad)


def test_firing_tile_is_the_clearest_member_with_a_box() -> None:
    from triage_app.core.model.policy import firing_tile

    rows = {"imagenet": dict(score=0.30, x0=0, y0=0, x1=10, y1=10),  # 0.05 above a 0.25 threshold
            "clip": dict(score=0.90, x0=5, y0=5, x1=20, y1=20),  # just under its 0.95 threshold
            "head": dict(score=0.99, x0=None, y0=None, x1=None, y1=None)}  # no box: re-scored from the cache
    assert firing_tile(rows, {"imagenet": 0.25, "clip": 0.95, "head": 0.5}) == ("imagenet", (0, 0, 10, 10))
    assert firing_tile(rows, {"imagenet": 0.9, "clip": 0.5, "head": 0.5}) == ("clip", (5, 5, 20, 20))
    assert firing_tile({"head": rows["head"]}, {}) == ("head", None) and firing_tile({}, {}) == (None, None)
