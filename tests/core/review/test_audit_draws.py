"""The audit draws at random: a seeded generator, not a lattice. A golden-ratio sequence
over consecutive frame ids takes every 13th, 21st or 34th frame; these checks fail it."""

from __future__ import annotations

import numpy as np
from scipy import stats

from triage_app.core.review.audit import seeded_uniform


def runs_z(u: np.ndarray) -> float:
    """Wald-Wolfowitz runs test of values above and below the median, in order: the z score."""
    above = u > np.median(u)
    n1, n2 = int(above.sum()), int((~above).sum())
    runs = 1 + int((above[1:] != above[:-1]).sum())
    mu = 2 * n1 * n2 / (n1 + n2) + 1
    var = 2 * n1 * n2 * (2 * n1 * n2 - n1 - n2) / ((n1 + n2) ** 2 * (n1 + n2 - 1))
    return (runs - mu) / np.sqrt(var)


def _sample_gaps(u: np.ndarray, share: float) -> np.ndarray:
    return np.diff(np.flatnonzero(u < share))


def test_the_audit_draws_pass_a_runs_test_and_their_gaps_are_geometric() -> None:
    ids = np.arange(1, 20_001)
    u = seeded_uniform(ids, seed=0)
    assert abs(runs_z(u)) < 3
    assert stats.kstest(u, "uniform").pvalue > 0.01
    gaps = _sample_gaps(u, 0.05)
    # Gaps between sampled frames of a random 5 % sample are geometric (mean 20, many sizes).
    assert len(np.unique(gaps)) > 40
    assert stats.kstest(gaps - 0.5, stats.geom(0.05).cdf).pvalue > 0.001
    # The same check rejects a golden-ratio sequence outright.
    golden = (ids * 0.6180339887498949) % 1.0
    assert len(np.unique(_sample_gaps(golden, 0.05))) <= 3
    assert abs(runs_z(golden)) > 3


def test_the_same_seed_gives_the_same_draws_and_another_seed_others() -> None:
    ids = np.arange(500)
    a, b, c = seeded_uniform(ids, 1), seeded_uniform(ids, 1), seeded_uniform(ids, 2)
    assert np.array_equal(a, b)
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.15
    # A frame's draw does not depend on which other frames are considered with it.
    assert np.array_equal(seeded_uniform(ids[::7], 1), a[::7])
