"""The ensemble at run time: members built from their cards, scoring tiles on ONNX Runtime.

``build_members`` never raises for a member that cannot be had: it is left out with a plain
message (no CLIP weights offline, head not trained yet), and the others carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triage_app.core.model.cards import ModelCard
from triage_app.core.model.errors import ModelError
from triage_app.core.scoring.members import onnx_build as exporter  # torch itself is imported only on a cache miss
from triage_app.core.scoring.members.runtime import OnnxSession, gpu_will_run

log = logging.getLogger(__name__)


@dataclass
class TileOutput:
    scores: np.ndarray  # (n_tiles,)
    embedding: np.ndarray | None  # (n_tiles, dim): the feature map averaged over its cells
    peak: np.ndarray | None = None  # (n_tiles, peak_dim): the strongest cells of its maps, where the member has maps


class OnnxMember:
    """An ImageNet or CLIP member: an exported ONNX model plus its scoring rule."""

    def __init__(self, card: ModelCard, onnx_path: Path, meta: dict, session: OnnxSession) -> None:
        self.card = card
        self.name = card.name
        self.kind = card.kind
        self.input_size = card.input_size
        # The scores change with the exported model and, for an ImageNet member, with the
        # classes that stand for the target (chosen after the model runs).
        self.version_key = str(meta.get("key", "")) + (f"-{card.scoring_key()}" if card.scoring_key() else "")
        self.meta = meta
        self.session = session
        self.onnx_path = onnx_path
        if card.kind == "imagenet":
            self._targets = np.asarray(card.target_indices(), dtype=np.int64)
        elif card.kind == "clip":
            text = np.asarray(meta["text_embeddings"], dtype=np.float32)
            self._text = text
            self._scale = float(meta["logit_scale"])
            self._n_target = int(meta["n_target_prompts"])

    @property
    def provider(self) -> str:
        return self.session.provider

    def feature_dims(self) -> tuple[int, int]:
        """(width of a tile's embedding, of its peak): a frame's pooled features are as wide as
        both (the mean of the embeddings, the max of the peaks; without peaks, of the
        embeddings). Read from the export's metadata, else from one run on a blank tile."""
        dim, peak = int(self.meta.get("embedding_dim", 0)), int(self.meta.get("peak_dim", 0))
        has_peak = "peak" in self.session.output_names
        if dim and (peak or not has_peak):
            return dim, peak or dim
        size = self.input_size
        out = dict(zip(self.session.output_names, self.session.run(np.zeros((1, size, size, 3), np.uint8)), strict=True))
        return int(out["embedding"].shape[1]), int(out["peak" if has_peak else "embedding"].shape[1])

    def run(self, tiles: np.ndarray) -> TileOutput:
        named = dict(zip(self.session.output_names, self.session.run(tiles), strict=True))
        emb, peak = named.get("embedding"), named.get("peak")
        if emb is None:
            raise ModelError(self.onnx_path, f"has no output 'embedding' (its outputs: {', '.join(named)})")
        if self.kind == "imagenet":
            probs = named["probs"]
            if probs.ndim != 2 or (len(self._targets) and probs.shape[1] <= int(self._targets.max())):
                raise ModelError(self.onnx_path, f"output 'probs' has shape {probs.shape}, expected (N, 1000)")
            # No ImageNet class stands for the target: the member gives its embeddings and a score of 0.
            return TileOutput(probs[:, self._targets].sum(axis=1), emb, peak)
        if self.kind == "finetuned":
            probs = named["probs"]
            if probs.ndim != 2 or probs.shape[1] != 1:
                raise ModelError(self.onnx_path, f"output 'probs' has shape {probs.shape}, expected (N, 1)")
            return TileOutput(probs[:, 0], emb, peak)
        logits = self._scale * emb @ self._text.T
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return TileOutput(p[:, : self._n_target].sum(axis=1), emb)


def pool_tiles(embeddings: np.ndarray, peaks: np.ndarray | None = None) -> np.ndarray:
    """A frame's features from its tiles: the mean over tiles of their embeddings (the
    scene), and the max over tiles of their peaks (each tile's strongest cells per channel,
    in its last feature map and in finer ones: a small target lights one cell of one tile,
    and the max keeps it). A member without feature maps (CLIP) has no peaks: the max over
    tiles of the embeddings stands in."""
    e = np.asarray(embeddings, dtype=np.float32)
    p = e if peaks is None else np.asarray(peaks, dtype=np.float32)
    return np.concatenate([e.mean(axis=0), p.max(axis=0)])


@dataclass
class HeadModel:
    """A trained head: logistic regression on standardised pooled backbone embeddings."""

    id: int
    backbone: str
    coef: np.ndarray
    intercept: float
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    features: str = "pooled"  # or "whole_frame": the whole-frame tile's embedding alone

    def _folded(self) -> tuple[np.ndarray, float]:
        """Standardisation folded into the weights: z = x @ w + b on raw features."""
        w = np.asarray(self.coef, np.float32)
        b = float(self.intercept)
        if self.scale is not None:
            w = w / self.scale
        if self.mean is not None:
            b -= float(np.dot(self.mean.astype(np.float64), w.astype(np.float64)))
        return w.astype(np.float32), b

    def score(self, embeddings: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Probability of the target for each row of pooled features (float16 or 32),
        converted in small chunks so a memory-mapped cache is never copied whole."""
        w, b = self._folded()
        out = np.empty(len(embeddings), dtype=np.float32)
        for i in range(0, len(embeddings), chunk):
            z = np.asarray(embeddings[i : i + chunk], dtype=np.float32) @ w + b
            out[i : i + chunk] = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return out


class HeadMember:
    """The specialised head: reads the embeddings its backbone member produces."""

    kind = "head"

    def __init__(self, card: ModelCard, model: HeadModel) -> None:
        self.card = card
        self.name = card.name
        self.model = model
        self.backbone = card.backbone
        self.version_key = f"head-{model.id}"

    def run_frame(self, tile_embeddings: np.ndarray, tile_peaks: np.ndarray | None = None) -> tuple[float, int]:
        """(score, tile that contributes most through the max-pooled half) of one frame; a
        head on whole-frame features reads tile 0 (the whole frame) and points at it."""
        if self.model.features == "whole_frame":
            return float(self.model.score(np.asarray(tile_embeddings[:1]))[0]), 0
        feats = pool_tiles(tile_embeddings, tile_peaks)
        score = float(self.model.score(feats[None])[0])
        dim = tile_embeddings.shape[1]
        w = self.model.coef[dim:]
        if self.model.scale is not None:
            w = w / self.model.scale[dim:]
        maxed = tile_embeddings if tile_peaks is None else tile_peaks
        tile = int(np.argmax(np.asarray(maxed, np.float32) @ w))
        return score, tile


@dataclass
class Ensemble:
    members: list[OnnxMember | HeadMember] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    backbones: list[OnnxMember] = field(default_factory=list)  # every ONNX model that runs

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def provider(self) -> str:
        return self.backbones[0].provider if self.backbones else "none"

    @property
    def precisions(self) -> dict[str, str]:
        """The precision each ONNX member runs in (fp32, fp16, int8)."""
        return {m.name: str(m.meta.get("precision", "fp32")) for m in self.members if isinstance(m, OnnxMember)}

    def thresholds(self) -> dict[str, float]:
        return {m.name: m.card.threshold for m in self.members}


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` is fp16 where a CUDA device will run the members (its tensor cores halve the
    time) and fp32 on the CPU (where a member's card allows, :func:`member_precision` takes
    8 bits there instead)."""
    if precision != "auto":
        return precision
    return "fp16" if gpu_will_run(device) else "fp32"


def member_precision(precision: str, device: str, card: ModelCard, scored_keys: Sequence[str] = (),
                     int8_auto: bool = True) -> str:
    """The precision one member runs in. A named precision is taken as named. ``auto``: fp16
    on a CUDA device; on the CPU, the precision this member's stored scores in the project were
    made with, where it has scored any (a project is not scored over again because another
    machine or a new release would choose otherwise), else 8 bits where the member's card says
    its 8-bit model keeps the ranking (``cpu_int8``) and the CPU has 8-bit dot products, else
    fp32. Without ``int8_auto`` (a Ray cluster's CPU workers, whose CPUs the driver cannot see)
    a project not scored yet is scored in fp32."""
    from triage_app.core.scoring.members.quantize import INT8_MARK, cpu_has_int8_dot

    resolved = resolve_precision(precision, device)
    if precision != "auto" or resolved != "fp32":
        return resolved
    if scored_keys:
        return "int8" if INT8_MARK in scored_keys[0] else "fp32"
    return "int8" if int8_auto and card.cpu_int8 and cpu_has_int8_dot() else "fp32"


def _quantized(exported: exporter.ExportedModel, cache_dir: Path) -> exporter.ExportedModel:
    """The member's 8-bit model, or its float one (with a warning) where quantizing fails."""
    from triage_app.core.scoring.members.quantize import quantize_member

    try:
        return quantize_member(exported, cache_dir)
    except ModelError as exc:
        log.warning("%s; the member runs in fp32", exc)
        return exported


def _exported_session(card: ModelCard, cache_dir: Path, prec: str, device: str, batch: int,
                      cuda_graph: bool) -> tuple[exporter.ExportedModel, OnnxSession]:
    """The member's model in the cache (exported, and quantized for int8, on first use) and a
    session on it. A damaged file in the cache (disk trouble, a killed copy) is made again."""
    made: list[exporter.ExportedModel] = []

    def export() -> exporter.ExportedModel:  # an 8-bit member is quantized from its float export
        made.append(exporter.export_member(card, cache_dir, "fp32" if prec == "int8" else prec))
        return _quantized(made[-1], cache_dir) if prec == "int8" else made[-1]

    exported = export()
    try:
        return exported, OnnxSession(exported.path, card.input_size, device, batch, cache_dir, cuda_graph=cuda_graph)
    except ModelError as exc:
        log.warning("%s; exporting it again", exc)
        # An 8-bit model's float export may be the damaged one (its quantizing then failed): both go.
        for damaged in {exported.path, *(m.path for m in made)}:
            damaged.unlink(missing_ok=True)
            damaged.with_suffix(".json").unlink(missing_ok=True)
        exported = export()
        return exported, OnnxSession(exported.path, card.input_size, device, batch, cache_dir, cuda_graph=cuda_graph)


def build_members(
    names: list[str], cards: dict[str, ModelCard], cache_dir: Path, device: str = "auto", batch: int = 32,
    head: HeadModel | None = None, precision: str | None = None, cuda_graph: bool = True,
    scored_keys: Mapping[str, Sequence[str]] | None = None, int8_auto: bool = True,
) -> Ensemble:
    """Build the named members. Missing ones are listed in ``Ensemble.unavailable``.
    ``scored_keys``: per member, the version keys of the project's stored scores (see
    :func:`member_precision`)."""

    ens = Ensemble()
    onnx: dict[str, OnnxMember] = {}

    def onnx_member(name: str) -> OnnxMember | None:
        if name in onnx:
            return onnx[name]
        card = cards.get(name)
        if card is None:
            ens.unavailable[name] = f"no model card named '{name}' in the models folder"
            return None
        prec = member_precision(precision or "auto", device, card, (scored_keys or {}).get(name, ()), int8_auto)
        try:
            exported, session = _exported_session(card, cache_dir, prec, device, batch, cuda_graph)
        except (exporter.MemberUnavailable, ModelError) as exc:
            ens.unavailable[name] = str(exc)
            return None
        member = OnnxMember(card, exported.path, exported.meta, session)
        onnx[name] = member
        ens.backbones.append(member)
        return member

    for name in names:
        card = cards.get(name)
        if card is None:
            ens.unavailable[name] = f"no model card named '{name}' in the models folder"
            continue
        if card.kind == "head":
            if head is None:
                ens.unavailable[name] = "not trained yet: it joins the ensemble once analysts' decisions exist and a retrain has run"
                continue
            backbone = onnx_member(card.backbone)
            if backbone is None:
                ens.unavailable[name] = f"its backbone '{card.backbone}' is unavailable"
                continue
            dim, peak = backbone.feature_dims()
            width = dim + peak if head.features == "pooled" else dim
            if len(head.coef) != width:
                ens.unavailable[name] = (f"it was trained on {len(head.coef)} features a frame, and '{card.backbone}' now "
                                         f"gives {width} (a newer export): learn again (triage retrain) to train it anew")
                continue
            ens.members.append(HeadMember(card, head))
            continue
        member = onnx_member(name)
        if member is not None:
            ens.members.append(member)
    for name, why in ens.unavailable.items():
        log.info("member %s is left out: %s", name, why)
    return ens
