"""Transfer learning proper, compared with the head: fine-tune the backbone's last blocks on
the decided frames and measure, on the same cross-validation folds, whether it beats the
head (a logistic regression on the cached pooled embeddings).

Each fold starts from the card's pretrained weights, freezes everything but the last
``blocks`` blocks and the final convolution, puts a fresh one-output layer on top and trains
it with class-balanced binary cross-entropy (Adam; 1e-3 for the new layer, 1e-4 for the
unfrozen blocks) on the whole frame at the card's input size, with the flips and quarter
turns under which nadir footage means the same thing. It runs on a GPU when one is there
(``scoring.device``), on the CPU otherwise (slowly: cap it with ``max_frames``).

The report says which the evidence favours (fine-tuning must win by more than 0.02 AUC).
With ``deploy`` (``auto``: when the evidence favours it; ``always``), the net is trained
once more on every decided frame and deployed into the project as the member
``finetuned``: its weights and card go to ``<project>/models/``, where every scoring run of
the project picks it up, and every frame is scored with it at once (its threshold is set
so that its out-of-fold scores keep the recall target). A later deployment replaces it and
re-scores; ``retire_finetuned`` takes it out again.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from triage_app.core.ingest.reader import FrameReader
from triage_app.core.learning.folds import fold_groups, grouped_folds
from triage_app.core.model.cards import ModelCard, load_card, project_models_dir
from triage_app.core.model.errors import TriageError
from triage_app.core.model.records import Source
from triage_app.core.model.settings import Settings
from triage_app.core.scoring.members.onnx_build import finetuned_net
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace

MARGIN = 0.02
MEMBER = "finetuned"
DEFAULT_TARGET_RECALL = 0.95


class FinetuneCancelled(TriageError):
    """The user stopped fine-tuning before anything was deployed."""


def _check(cancel: Any) -> None:
    if cancel is not None and cancel.is_set():
        raise FinetuneCancelled("fine-tuning stopped; nothing was deployed")


@dataclass
class FinetuneReport:
    frames: int
    positives: int
    negatives: int
    folds: int
    cv_auc_finetuned: float
    cv_auc_head: float
    favoured: str  # "fine-tuned backbone" or "head on cached embeddings"
    blocks: int
    epochs: int
    device: str
    seconds: float
    skipped: int = 0  # labelled frames whose pixels could not be read
    deployed: str = ""  # the deployed member's card, when one was deployed
    threshold: float | None = None  # its threshold (out-of-fold scores keep the recall target)
    target_recall: float | None = None
    rescored: int = 0  # frames scored with the deployed member
    rescore_seconds: float = 0.0
    rescore_stopped: bool = False  # stopped while scoring with the deployed member (a later run finishes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _device(settings: Settings) -> str:
    import torch

    want = settings.scoring.device
    if want in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _augment(x: "Any", rng: np.random.Generator) -> "Any":
    import torch

    k = int(rng.integers(4))
    x = torch.rot90(x, k, dims=(2, 3))
    if rng.random() < 0.5:
        x = torch.flip(x, dims=(3,))
    return x


def _labelled_images(ws: Workspace, card: ModelCard, chosen: list[int],
                     progress: Callable[[int, int | None], None] | None, total: int,
                     cancel: Any = None) -> tuple[list[np.ndarray], list[int]]:
    """Pixels of each labelled frame, whole, at the card's input size (RGB)."""
    reader = FrameReader(ws.root)
    sources: dict[int, Source] = {}
    images, keep = [], []
    try:
        for n, fid in enumerate(chosen):
            _check(cancel)
            frame = ws.frames.frame(fid)
            src = sources.setdefault(frame["source_id"], ws.frames.source(frame["source_id"]))
            try:
                bgr = reader.read(src, frame)
            except TriageError:
                continue
            rgb = cv2.cvtColor(cv2.resize(bgr, (card.input_size, card.input_size), interpolation=cv2.INTER_AREA),
                               cv2.COLOR_BGR2RGB)
            images.append(rgb)
            keep.append(fid)
            if progress:
                progress(n + 1, total)
    finally:
        reader.close()
    return images, keep


def _train(card: ModelCard, x_img: "Any", y: np.ndarray, train: np.ndarray, blocks: int, epochs: int, batch: int,
           device: str, rng: np.random.Generator, cancel: Any = None,
           epoch_done: Callable[[int], None] | None = None) -> "Any":
    """EfficientNet-Lite0 from the card's weights with a new one-output layer, its last
    ``blocks`` blocks and that layer trained on the frames ``train``."""
    import torch


    net = finetuned_net(card)
    for p in net.parameters():
        p.requires_grad = False
    tuned = [*list(net._blocks)[-blocks:], net._conv_head, net._bn1] if blocks > 0 else []
    for m in [*tuned, net._fc]:
        for p in m.parameters():
            p.requires_grad = True
    net.to(device)
    pos = int(y[train].sum())
    neg = len(train) - pos
    groups = [{"params": net._fc.parameters(), "lr": 1e-3}]
    if tuned:
        groups.append({"params": [p for m in tuned for p in m.parameters()], "lr": 1e-4})
    opt = torch.optim.Adam(groups)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([neg / max(pos, 1)], device=device))
    for epoch in range(epochs):
        net.eval()  # frozen batch norms keep their statistics
        for m in [*tuned, net._fc]:
            m.train()
        order = rng.permutation(train)
        for i in range(0, len(order), batch):
            _check(cancel)
            idx = order[i : i + batch]
            xb = _augment(x_img[idx], rng).to(device)
            yb = torch.from_numpy(y[idx].astype(np.float32)).to(device)
            opt.zero_grad()
            loss = loss_fn(net(xb).squeeze(1), yb)
            loss.backward()
            opt.step()
        if epoch_done:
            epoch_done(epoch + 1)
    net.eval()
    return net


def _logits(net: "Any", x: "Any", device: str) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = [net(x[i : i + 64].to(device)).squeeze(1).float().cpu().numpy() for i in range(0, len(x), 64)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def recall_threshold(scores: np.ndarray, positive: np.ndarray, target: float) -> float:
    """The highest threshold at which at least ``target`` of the positives score at or above it."""
    pos = np.sort(np.asarray(scores, np.float64)[np.asarray(positive, bool)])
    if len(pos) == 0:
        return 0.5
    k = int(np.floor((1.0 - target) * len(pos) + 1e-9))  # positives that may fall below
    return float(np.clip(pos[min(k, len(pos) - 1)], 0.01, 0.99))


def finetune_comparison(ws: Workspace, blocks: int = 2,
                        epochs: int = 6, folds: int = 5, max_frames: int = 1000, batch: int = 16, seed: int = 0,
                        progress: Callable[[int, int | None], None] | None = None,
                        deploy: str = "never", cancel: Any = None) -> FinetuneReport:
    """Compare fine-tuning with the head on the same folds; deploy the fine-tuned net as a
    member when ``deploy`` is ``always``, or ``auto`` and the evidence favours it."""
    try:
        import torch
    except ImportError as exc:
        raise TriageError(f"fine-tuning needs PyTorch, which is not installed here: pip install \"triage_app[models]\" "
                          f"({exc})") from exc
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler


    if deploy not in ("never", "auto", "always"):
        raise ValueError(f"deploy must be never, auto or always, not {deploy!r}")
    t0 = time.perf_counter()
    cards = ws.cards
    head = cards.get("head")
    if head is None or head.backbone not in cards:
        raise TriageError("fine-tuning needs the 'head' card and its backbone's card in the models folder")
    card = cards[head.backbone]
    if card.kind != "imagenet" or card.architecture != "efficientnet-lite0":
        raise TriageError(f"fine-tuning is built for the EfficientNet-Lite0 backbone; '{card.name}' is {card.architecture or card.kind}")
    frame_ids, feats, _ = ws.embeddings.pooled(card.name)
    labels = ws.decisions.labels()
    row_of = {int(f): i for i, f in enumerate(frame_ids.tolist())}
    chosen = [f for f in labels if f in row_of]
    rng = np.random.default_rng(seed)
    if len(chosen) > max_frames:
        chosen = sorted(rng.choice(chosen, max_frames, replace=False).tolist())
    steps = len(chosen) * (3 if deploy != "never" else 2)
    images, keep = _labelled_images(ws, card, chosen, progress, steps, cancel)
    y = np.array([labels[f] for f in keep], dtype=np.int64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    k = min(folds, pos, neg)
    if k < 2:
        raise TriageError(f"{ws.root}: fine-tuning needs at least 2 accepted and 2 rejected frames whose pixels "
                          f"can be read (has {pos} and {neg})")
    x_img = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(card.mean).view(1, 3, 1, 1)
    std = torch.tensor(card.std).view(1, 3, 1, 1)
    x_img = (x_img - mean) / std
    x_head = np.asarray(feats[[row_of[f] for f in keep]], dtype=np.float32)
    device = _device(ws.settings)
    torch.manual_seed(seed)
    cv = grouped_folds(y, fold_groups(ws, np.array(keep)), k, seed)  # an event on one side of every fold
    if len(cv) < 2:
        raise TriageError(f"{ws.root}: fine-tuning needs accepted and rejected frames from at least 2 events each")
    k = len(cv)
    ft_scores = np.zeros(len(y))
    head_scores = np.zeros(len(y))
    for fold, (train, test) in enumerate(cv):
        lr = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
        head_scores[test] = lr.fit(x_head[train], y[train]).predict_proba(x_head[test])[:, 1]

        def epoch_done(e: int, fold: int = fold) -> None:
            if progress:
                progress(len(chosen) + (fold * epochs + e) * len(chosen) // (k * epochs), steps)

        net = _train(card, x_img, y, train, blocks, epochs, batch, device, rng, cancel, epoch_done)
        ft_scores[test] = _logits(net, x_img[test], device)
    # Pooled over folds (each frame scored by the fold that did not see it), as one AUC each.
    ft_auc = float(roc_auc_score(y, ft_scores))
    head_auc = float(roc_auc_score(y, head_scores))
    favoured = "fine-tuned backbone" if ft_auc > head_auc + MARGIN else "head on cached embeddings"
    report = FinetuneReport(len(y), pos, neg, k, round(ft_auc, 4), round(head_auc, 4), favoured, blocks, epochs, device,
                            0.0, skipped=len(chosen) - len(keep))
    if deploy == "always" or (deploy == "auto" and favoured == "fine-tuned backbone"):
        saved = ws.policies.current()
        target = float(saved["target_recall"]) if saved and saved.get("target_recall") else DEFAULT_TARGET_RECALL
        probs = 1.0 / (1.0 + np.exp(-np.clip(ft_scores, -50, 50)))
        report.threshold = round(recall_threshold(probs, y == 1, target), 4)
        report.target_recall = target
        net = _train(card, x_img, y, np.arange(len(y)), blocks, epochs, batch, device, rng, cancel,
                     lambda e: progress(2 * len(chosen) + e * len(chosen) // epochs, steps) if progress else None)
        _check(cancel)
        if progress:
            progress(steps, steps)
        report.deployed = str(_deploy(ws, card, net, report))
        ws.scores.replace_oof(MEMBER, keep, probs.tolist())  # each decided frame, unseen by its fold's net
        t1 = time.perf_counter()
        report.rescored, report.rescore_stopped = _score_with(ws, progress, cancel)
        report.rescore_seconds = round(time.perf_counter() - t1, 1)
    report.seconds = round(time.perf_counter() - t0, 1)
    return report


def _deploy(ws: Workspace, base: ModelCard, net: "Any", report: FinetuneReport) -> Path:
    """Write the net's weights and its card into the project's models folder, atomically
    (card last, so a half-written deployment is never picked up)."""
    import torch

    folder = project_models_dir(ws.root)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    weights = folder / f"{MEMBER}-{stamp}.pt"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".pt.tmp")
    os.close(fd)
    try:
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp)
        os.replace(tmp, weights)
    finally:
        Path(tmp).unlink(missing_ok=True)
    desc = (f"EfficientNet-Lite0 from '{base.name}', last {report.blocks} blocks fine-tuned for {report.epochs} epochs "
            f"on {report.frames} decided frames ({report.positives} accepted) on {stamp}; cross-validated ROC AUC "
            f"{report.cv_auc_finetuned:.3f} against {report.cv_auc_head:.3f} for the head")
    text = "\n".join([
        "# Ensemble member deployed by 'triage finetune': the backbone fine-tuned on this project's decisions.",
        "# Score = sigmoid of its one output. Delete this file (or run 'triage finetune --retire') to take it out.",
        f'name = "{MEMBER}"',
        'kind = "finetuned"',
        f"description = {_toml_str(desc)}",
        'architecture = "efficientnet-lite0"',
        f"weights = {_toml_str(weights.name)}",
        f"backbone = {_toml_str(base.name)}",
        f"input_size = {base.input_size}",
        f"mean = [{', '.join(repr(float(v)) for v in base.mean)}]",
        f"std = [{', '.join(repr(float(v)) for v in base.std)}]",
        f"threshold = {report.threshold}",
        f"target = {_toml_str(base.target)}",
        "",
    ])
    card_path = folder / f"{MEMBER}.toml"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".toml.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    load_card(tmp)  # refuse to deploy a card that would not load
    os.replace(tmp, card_path)
    for old in folder.glob(f"{MEMBER}-*.pt"):
        if old != weights:
            old.unlink(missing_ok=True)
    return card_path


def _toml_str(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _score_with(ws: Workspace, progress: Callable[[int, int | None], None] | None,
                cancel: Any = None) -> tuple[int, bool]:
    """Score every frame with the deployed member (its embeddings are cached like any backbone's)."""
    ws.reload_cards()
    summary = score_project(ws, [MEMBER], progress=progress, cancel=cancel)
    if MEMBER in summary.unavailable:
        raise TriageError(f"{project_models_dir(ws.root) / (MEMBER + '.toml')}: the deployed member cannot be built: "
                          f"{summary.unavailable[MEMBER]}")
    return summary.frames_scored, summary.cancelled


def retire_finetuned(ws: Workspace) -> bool:
    """Take the deployed fine-tuned member out of the project: its card and weights move to
    ``models/retired/`` and its scores leave the score table. False if none was deployed."""
    folder = project_models_dir(ws.root)
    card = folder / f"{MEMBER}.toml"
    if not card.is_file():
        return False
    retired = folder / "retired"
    retired.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for path in [*folder.glob(f"{MEMBER}-*.pt"), card]:
        os.replace(path, retired / f"{path.stem}.{stamp}{path.suffix}")
    ws.scores.drop_member(MEMBER)
    ws.reload_cards()
    return True
