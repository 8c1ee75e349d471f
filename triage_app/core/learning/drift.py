"""Drift per flight: does this flight look like the footage the labels came from?

The reference is the labelled flights (sources with at least one standing decision); a
labelled flight is compared with the *other* labelled flights, so it is never its own
reference (a project's only labelled flight is the reference and gets no score). Without
labels anywhere, each flight is compared with all the others.

The statistic is the population stability index (PSI) with the reference's quantiles as
bins (a small floor on empty bins):

    PSI = sum_b (q_b - p_b) * ln(q_b / p_b)

where p and q are the reference's and the flight's shares per bin. Two small-sample guards:
at most ``drift.bins`` bins and at least ten frames per bin on the smaller side, and the PSI
that pure sampling noise gives on average, (B - 1) (1/n + 1/m), is subtracted (floored at 0),
so a short flight is not flagged for being short. It is computed for each member's frame
scores and for each of the top principal components (``drift.components``, fitted on the
reference) of the pooled frame embeddings, the components' PSIs averaged with their share of
explained variance as weights. A flight's **drift score** is the largest of the member PSIs
and the embedding PSI; past ``drift.alert_psi`` (default 0.25, the usual mark of a
significant shift) the flight is flagged. Reported beside it, not part of the score: the
cosine distance between the flight's and the reference's mean embedding, the quality-flag
rate and the analysts' accept rate, each with the reference's value.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from triage_app.core.model.errors import TriageError
from triage_app.core.model.records import Source
from triage_app.core.store import Workspace

_FLOOR = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` (quantile bins of the
    reference; NaN when either side is empty)."""
    ref = np.asarray(reference, np.float64)
    cur = np.asarray(current, np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    return _psi(ref, cur, bins)[0]


def corrected_psi(reference: np.ndarray, current: np.ndarray, max_bins: int = 10) -> float:
    """PSI with the small-sample guards: bins limited so the smaller side has ten frames per
    bin, and the expected PSI of two samples of one distribution subtracted."""
    ref = np.asarray(reference, np.float64)
    cur = np.asarray(current, np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    bins = int(min(max_bins, max(2, min(len(ref), len(cur)) // 10)))
    value, used = _psi(ref, cur, bins)
    return max(0.0, value - (used - 1) * (1.0 / len(ref) + 1.0 / len(cur)))


def _psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[float, int]:
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    if len(edges) == 2:  # a constant reference: one bin at its value, one either side
        v = ref[0]
        edges = np.array([-np.inf, v - 1e-12, v + 1e-12, np.inf])
    p = np.histogram(ref, edges)[0] / len(ref)
    q = np.histogram(cur, edges)[0] / len(cur)
    p, q = np.maximum(p, _FLOOR), np.maximum(q, _FLOOR)
    return float(np.sum((q - p) * np.log(q / p))), len(edges) - 1


@dataclass
class FlightDrift:
    source_id: int
    name: str
    frames: int
    scored: int
    labelled: bool
    reference: str  # which flights it was compared with
    drift: float | None
    alert: bool
    member_psi: dict[str, float] = field(default_factory=dict)
    embedding_psi: float | None = None
    centroid_distance: float | None = None
    flag_rate: float = 0.0
    reference_flag_rate: float | None = None
    accept_rate: float | None = None
    reference_accept_rate: float | None = None
    decisions: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reasons(self) -> list[str]:
        parts = [(f"{m} scores", v) for m, v in self.member_psi.items()]
        if self.embedding_psi is not None:
            parts.append(("embeddings", self.embedding_psi))
        return [f"{what} PSI {v:.2f}" for what, v in sorted(parts, key=lambda x: -x[1]) if v == v]


def _embeddings(ws: Workspace) -> tuple[np.ndarray, np.ndarray] | None:
    cards = ws.cards
    backbones = [c.backbone for c in cards.values() if c.kind == "head" and c.backbone] or \
        [n for n, c in cards.items() if c.kind != "head"]
    for b in backbones:
        try:
            ids, vectors, _ = ws.embeddings.pooled(b)
        except TriageError:
            continue
        if len(ids):
            return ids, vectors
    return None


def _pca_psi(ref: np.ndarray, cur: np.ndarray, components: int, bins: int) -> float:
    from sklearn.decomposition import PCA

    k = min(components, ref.shape[1], len(ref) - 1)
    if k < 1:
        return float("nan")
    pca = PCA(n_components=k, random_state=0).fit(ref)
    a, b = pca.transform(ref), pca.transform(cur)
    w = pca.explained_variance_ratio_
    return float(sum(w[j] * corrected_psi(a[:, j], b[:, j], bins) for j in range(k)) / max(w.sum(), 1e-12))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    den = float(np.linalg.norm(ma) * np.linalg.norm(mb))
    return float(1.0 - ma @ mb / den) if den > 0 else float("nan")


_cache: dict[str, tuple[tuple[Any, ...], list[FlightDrift]]] = {}
_cache_lock = threading.Lock()


def flight_drift(ws: Workspace) -> list[FlightDrift]:
    """The drift of every flight (source) against the labelled flights; computed again only
    when something it depends on has changed (the supervisor view asks on every refresh)."""
    key = (*ws.change_marks(), ws.settings.drift.model_dump_json(), tuple(sorted(ws.cards)))
    where = str(ws.root)
    with _cache_lock:
        hit = _cache.get(where)
    if hit is not None and hit[0] == key:
        return copy.deepcopy(hit[1])
    result = _flight_drift(ws)
    with _cache_lock:
        _cache[where] = (key, copy.deepcopy(result))
    return result


def _flight_drift(ws: Workspace) -> list[FlightDrift]:
    cfg = ws.settings.drift
    rng = np.random.default_rng(0)
    sources = ws.frames.source_summaries()
    source_of = ws.frames.frame_sources()
    flagged = {int(s["id"]): int(s["flagged"]) for s in sources}
    counts = {int(s["id"]): int(s["frames"]) for s in sources}
    standing = ws.decisions.current()
    accepts: dict[int, list[int]] = {}
    for d in standing:
        if d.label.target is not None:
            accepts.setdefault(source_of[d.frame_id], []).append(d.label.target)
    decided_sources = {source_of[d.frame_id] for d in standing}

    ids, names, mat, _ = ws.scores.score_table()
    mat = ws.scores.with_oof(ids, names, mat, {d.frame_id for d in standing if d.label.target is not None})
    score_src = np.array([source_of.get(int(f), -1) for f in ids], dtype=np.int64)
    emb = _embeddings(ws)
    if emb is not None:
        emb_ids, vectors = emb
        emb_src = np.array([source_of.get(int(f), -1) for f in emb_ids], dtype=np.int64)

    def sample_rows(mask: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(mask)
        if len(rows) > cfg.sample:
            rows = np.sort(rng.choice(rows, cfg.sample, replace=False))
        return rows

    emb_rows = None
    if emb is not None:
        emb_rows = (emb_src, vectors)
    return [_one_flight(s, sources, decided_sources, accepts, flagged, counts, score_src, names, mat, emb_rows,
                        sample_rows, cfg) for s in sources]


def _one_flight(s: Source, sources: list[Source], decided_sources: set[int], accepts: dict[int, list[int]],
                flagged: dict[int, int], counts: dict[int, int], score_src: np.ndarray, names: list[str], mat: np.ndarray,
                emb: tuple[np.ndarray, np.ndarray] | None, sample_rows: Any, cfg: Any) -> FlightDrift:
    """One flight's drift against its reference (the labelled flights, else all the others)."""
    sid = int(s["id"])
    labelled = sid in decided_sources
    others_labelled = decided_sources - {sid}
    if others_labelled:
        ref_ids, ref_text = others_labelled, "labelled flights" + (" (others)" if labelled else "")
    elif labelled:
        ref_ids, ref_text = set(), "itself: the only labelled flight is the reference"
    else:
        ref_ids, ref_text = {int(x["id"]) for x in sources} - {sid}, "all other flights (no labels yet)"
    in_ref = np.isin(score_src, list(ref_ids))
    mine = score_src == sid
    fd = FlightDrift(source_id=sid, name=str(s["name"]), frames=counts[sid], scored=int(mine.sum()), labelled=labelled,
                     reference=ref_text, drift=None, alert=False,
                     flag_rate=flagged[sid] / counts[sid] if counts[sid] else 0.0)
    ref_frames = sum(counts[r] for r in ref_ids)
    fd.reference_flag_rate = sum(flagged[r] for r in ref_ids) / ref_frames if ref_frames else None
    own = accepts.get(sid, [])
    fd.decisions = len(own)
    fd.accept_rate = float(np.mean(own)) if own else None
    ref_acc = [v for r in ref_ids for v in accepts.get(r, [])]
    fd.reference_accept_rate = float(np.mean(ref_acc)) if ref_acc else None
    if not ref_ids:
        fd.note = "the reference itself" if labelled else "no other flight to compare with"
        return fd
    if fd.scored < cfg.min_frames or int(in_ref.sum()) < cfg.min_frames:
        fd.note = f"too few scored frames (this flight {fd.scored}, reference {int(in_ref.sum())}; need {cfg.min_frames})"
        return fd
    for j, m in enumerate(names):
        v = corrected_psi(mat[in_ref, j], mat[mine, j], cfg.bins)
        if v == v:
            fd.member_psi[m] = round(v, 4)
    if emb is not None:
        emb_src, vectors = emb
        ra, ca = sample_rows(np.isin(emb_src, list(ref_ids))), sample_rows(emb_src == sid)
        if len(ra) >= cfg.min_frames and len(ca) >= cfg.min_frames:
            ref_v = np.asarray(vectors[ra], np.float32)
            cur_v = np.asarray(vectors[ca], np.float32)
            fd.embedding_psi = round(_pca_psi(ref_v, cur_v, cfg.components, cfg.bins), 4)
            fd.centroid_distance = round(_cosine(ref_v, cur_v), 5)
    parts = list(fd.member_psi.values()) + ([fd.embedding_psi] if fd.embedding_psi is not None else [])
    parts = [p for p in parts if p == p]
    if parts:
        fd.drift = round(max(parts), 4)
        fd.alert = fd.drift > cfg.alert_psi
    return fd
