"""YOLO-family detectors on ultralytics modules: YOLOv10 and CerberusDet.

`MultiHeadYolo(variant, nc, heads)` builds ultralytics' `DetectionModel` from the model yaml
its wheel ships (e.g. `yolov10n.yaml`, no download), keeps every layer but the last as the
shared trunk (backbone + neck) and clones the last layer (the Detect head) once per head.

- YOLOv10 = one head: the model is exactly ultralytics' YOLOv10 (`v10Detect`, dual one-to-many /
  one-to-one assignment in training, the NMS-free one-to-one branch at inference).
- CerberusDet = one head per training dataset on a shared YOLOv8 trunk; `forward(img, head=k)`
  routes a batch through head k only.

Shapes: img [B, 3, H, W] float in [0, 1], H and W multiples of the largest stride (32).
Training: forward returns the head's raw prediction dict (the criterion's input). Inference:
`detect(img, head)` -> [B, K, 6] rows (x0, y0, x1, y1, score, class) in input pixels.
"""
from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn


class _CriterionView(nn.Module):
    """What ultralytics' loss constructors read from a model: parameters, args, model[-1]."""

    def __init__(self, owner: "MultiHeadYolo"):
        super().__init__()
        self.args = owner.args
        self.model = [owner.heads[0]]
        self._param = nn.Parameter(torch.zeros(0, device=owner.stride.device), requires_grad=False)


class MultiHeadYolo(nn.Module):
    def __init__(self, variant: str, nc: int = 1, heads: int = 1, args: Any = None,
                 pretrained: str = ""):
        super().__init__()
        from ultralytics.nn.tasks import DetectionModel

        from come.baselines.ultra_env import restore_pillow
        restore_pillow()
        try:
            base = DetectionModel(f"{variant}.yaml", nc=nc, verbose=False)
        except FileNotFoundError as exc:
            raise ValueError(f"baselines: unknown ultralytics model {variant!r} (no {variant}.yaml in the "
                             "installed ultralytics wheel)") from exc
        if pretrained:
            load_pretrained(base, pretrained)
        self.variant, self.nc = variant, nc
        self.trunk = nn.ModuleList(list(base.model)[:-1])
        self.heads = nn.ModuleList([copy.deepcopy(base.model[-1]) for _ in range(heads)])
        self.save = set(base.save)
        self.register_buffer("stride", base.stride.clone(), persistent=False)
        self.args = args if args is not None else SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, epochs=1)
        self.end2end = getattr(self.heads[0], "one2one_cv2", None) is not None

    # ------------------------------------------------------------------ forward
    def features(self, img: Tensor) -> list[Tensor]:
        """Trunk outputs the head reads (one map per detection level)."""
        outs: list[Any] = []
        x: Any = img
        for m in self.trunk:
            if m.f != -1:
                x = outs[m.f] if isinstance(m.f, int) else [x if j == -1 else outs[j] for j in m.f]
            x = m(x)
            outs.append(x if m.i in self.save else None)
        f = self.heads[0].f
        return [x if j == -1 else outs[j] for j in f] if isinstance(f, list) else [outs[f]]

    def forward(self, img: Tensor, head: int = 0) -> Any:
        if not 0 <= head < len(self.heads):
            raise IndexError(f"head {head} out of range (model has {len(self.heads)} heads)")
        return self.heads[head](self.features(img))

    @torch.no_grad()
    def detect(self, img: Tensor, head: int = 0, max_det: int = 100, iou: float = 0.7) -> Tensor:
        """[B, K, 6] (x0, y0, x1, y1, score, class) px. YOLOv10: top-k of the one-to-one branch,
        no NMS; a YOLOv8 head (CerberusDet): class-aware NMS at `iou`."""
        m = self.heads[head]
        m.max_det = max_det
        if self.end2end:
            m.end2end = True
            return m(self.features(img))[0]
        from ultralytics.utils.nms import non_max_suppression

        y = m(self.features(img))[0]
        dets = non_max_suppression(y, conf_thres=0.001, iou_thres=iou, max_det=max_det)
        k = max([len(d) for d in dets] + [1])
        out = img.new_zeros(len(dets), k, 6)
        out[:, :, 4] = -1.0                                 # padding rows: score -1, dropped later
        for i, d in enumerate(dets):
            out[i, :len(d)] = d[:, :6]
        return out

    def criterion(self) -> Any:
        """ultralytics' loss for this head type: E2ELoss (YOLOv10) or v8DetectionLoss."""
        from ultralytics.utils.loss import E2ELoss, v8DetectionLoss

        view = _CriterionView(self)
        return E2ELoss(view) if self.end2end else v8DetectionLoss(view)


def load_pretrained(model: nn.Module, path: str) -> None:
    """Load a local state_dict (`torch.load(..., weights_only=True)`, like every checkpoint of
    the package) into `model`, keeping tensors whose name and shape match (class layers differ
    in nc). A pickled ultralytics `.pt` is refused: convert it once with
    `torch.save(YOLO("yolov10x.pt").model.state_dict(), "yolov10x_state.pt")`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"baselines.yolo.pretrained: {p} does not exist (a local checkpoint; "
                                "no download is attempted)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:   # pickled modules are not loadable with weights_only
        raise ValueError(f"{p}: not a plain state_dict ({type(exc).__name__}); convert an ultralytics .pt "
                         "with torch.save(YOLO(path).model.state_dict(), out)") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{p}: not a state_dict")
    own = model.state_dict()
    keep = {k: v.float() for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not keep:
        raise ValueError(f"{p}: no tensor matches the {type(model).__name__} being built (wrong variant?)")
    model.load_state_dict(keep, strict=False)


def count_parameters(variant: str, nc: int = 1) -> int:
    """Parameters of a one-head model of `variant` (paper.yaml picks the variant by this)."""
    return sum(p.numel() for p in MultiHeadYolo(variant, nc).parameters())
