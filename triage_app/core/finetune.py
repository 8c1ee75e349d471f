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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from triage_app.core.errors import TriageError
from triage_app.core.members.cards import ModelCard
from triage_app.core.settings import Settings
from triage_app.core.sources import FrameReader
from triage_app.core.store import Project

MARGIN = 0.02


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


def finetune_comparison(project: Project, cards: dict[str, ModelCard], settings: Settings, blocks: int = 2,
                        epochs: int = 6, folds: int = 5, max_frames: int = 1000, batch: int = 16, seed: int = 0,
                        progress: Callable[[int, int | None], None] | None = None) -> FinetuneReport:
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from triage_app.core.learning import _labels, pooled_features
    from triage_app.core.members.export import _imagenet_backbone

    t0 = time.perf_counter()
    head = cards.get("head")
    if head is None or head.backbone not in cards:
        raise TriageError("fine-tuning needs the 'head' card and its backbone's card in the models folder")
    card = cards[head.backbone]
    if card.kind != "imagenet" or card.architecture != "efficientnet-lite0":
        raise TriageError(f"fine-tuning is built for the EfficientNet-Lite0 backbone; '{card.name}' is {card.architecture or card.kind}")
    frame_ids, feats, _ = pooled_features(project, card.name)
    labels = _labels(project)
    row_of = {int(f): i for i, f in enumerate(frame_ids.tolist())}
    chosen = [f for f in labels if f in row_of]
    rng = np.random.default_rng(seed)
    if len(chosen) > max_frames:
        chosen = sorted(rng.choice(chosen, max_frames, replace=False).tolist())
    # Pixels of each labelled frame, whole, at the card's input size.
    reader = FrameReader(project.root)
    sources: dict[int, dict[str, Any]] = {}
    images, keep = [], []
    try:
        for n, fid in enumerate(chosen):
            frame = project.frame(fid)
            src = sources.setdefault(frame["source_id"], project.source(frame["source_id"]))
            try:
                bgr = reader.read(src, frame)
            except TriageError:
                continue
            rgb = cv2.cvtColor(cv2.resize(bgr, (card.input_size, card.input_size), interpolation=cv2.INTER_AREA),
                               cv2.COLOR_BGR2RGB)
            images.append(rgb)
            keep.append(fid)
            if progress:
                progress(n + 1, len(chosen) * 2)
    finally:
        reader.close()
    y = np.array([labels[f] for f in keep], dtype=np.int64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    k = min(folds, pos, neg)
    if k < 2:
        raise TriageError(f"{project.root}: fine-tuning needs at least 2 accepted and 2 rejected frames whose pixels "
                          f"can be read (has {pos} and {neg})")
    x_img = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(card.mean).view(1, 3, 1, 1)
    std = torch.tensor(card.std).view(1, 3, 1, 1)
    x_img = (x_img - mean) / std
    x_head = np.asarray(feats[[row_of[f] for f in keep]], dtype=np.float32)
    device = _device(settings)
    torch.manual_seed(seed)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    ft_scores = np.zeros(len(y))
    head_scores = np.zeros(len(y))
    for fold, (train, test) in enumerate(cv.split(x_head, y)):
        lr = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
        head_scores[test] = lr.fit(x_head[train], y[train]).predict_proba(x_head[test])[:, 1]
        net, _features, fc = _imagenet_backbone(card)
        for p in net.parameters():
            p.requires_grad = False
        tuned = [*list(net._blocks)[-blocks:], net._conv_head, net._bn1] if blocks > 0 else []
        for m in tuned:
            for p in m.parameters():
                p.requires_grad = True
        net._fc = torch.nn.Linear(fc.in_features, 1)
        net.to(device)
        groups = [{"params": net._fc.parameters(), "lr": 1e-3}]
        if tuned:
            groups.append({"params": [p for m in tuned for p in m.parameters()], "lr": 1e-4})
        opt = torch.optim.Adam(groups)
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([neg / max(pos, 1)], device=device))
        for _epoch in range(epochs):
            net.eval()  # frozen batch norms keep their statistics
            for m in [*tuned, net._fc]:
                m.train()
            order = rng.permutation(train)
            for i in range(0, len(order), batch):
                idx = order[i : i + batch]
                xb = _augment(x_img[idx], rng).to(device)
                yb = torch.from_numpy(y[idx].astype(np.float32)).to(device)
                opt.zero_grad()
                loss = loss_fn(net(xb).squeeze(1), yb)
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            out = [net(x_img[test[i : i + 64]].to(device)).squeeze(1).float().cpu().numpy() for i in range(0, len(test), 64)]
        ft_scores[test] = np.concatenate(out)
        if progress:
            progress(len(chosen) + (fold + 1) * len(chosen) // k, len(chosen) * 2)
    # Pooled over folds (each frame scored by the fold that did not see it), as one AUC each.
    ft_auc = float(roc_auc_score(y, ft_scores))
    head_auc = float(roc_auc_score(y, head_scores))
    favoured = "fine-tuned backbone" if ft_auc > head_auc + MARGIN else "head on cached embeddings"
    return FinetuneReport(len(y), pos, neg, k, round(ft_auc, 4), round(head_auc, 4), favoured, blocks, epochs, device,
                          round(time.perf_counter() - t0, 1), skipped=len(chosen) - len(keep))
