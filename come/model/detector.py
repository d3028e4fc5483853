"""The DINO detector with a pluggable FFN slot: builders for the model, criterion, post-process.

    model = build_detector(cfg: Config)
    out = model(images [B, 3, H, W] (normalised), pad_mask [B, H, W] bool (True = padding),
                source_ids [B] long, targets list[dict] | None, shared dict | None)
    criterion = build_criterion(cfg); losses = criterion(out, targets)   # "loss" = total
    dets = postprocess(out, orig_sizes [B, 2] (h, w), num_select)

targets: {"labels": long[n] 0-based, "boxes": [n, 4] cxcywh normalised to the unpadded image};
they are used for contrastive denoising only in training mode. `out` holds:
  pred_logits [B, Q, C], pred_boxes [B, Q, 4] (last decoder layer, sigmoid cxcywh);
  aux_outputs: list (dec_layers - 1) of {pred_logits, pred_boxes} of the earlier layers;
  interm_outputs: {pred_logits, pred_boxes} of the selected encoder proposals (two-stage);
  dn_outputs: {pred_logits, pred_boxes, aux_outputs} of the dn queries, dn_meta (or None);
  aux_ffn: dict of FFN auxiliary losses averaged over the layers (already weighted).
C = 1 for data.class_mode "lesion", 2 for "pathology". Parameter names: `backbone.*` for the
backbone, `*sampling_offsets*` for the deformable offsets (engine lr multipliers).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from come.config.schema import Config

from .backbone import build_backbone
from .decoder import DeformableDecoder
from .denoising import prepare_cdn
from .encoder import DeformableEncoder
from .ffn import merge_aux
from .layers import MLP, inverse_sigmoid
from .losses import SetCriterion
from .matcher import HungarianMatcher
from .neck import MultiScaleNeck
from .postprocess import postprocess
from .two_stage import QuerySelector, prior_bias

__all__ = ["DINO", "build_detector", "build_criterion", "postprocess", "num_classes_of"]


def num_classes_of(cfg: Config) -> int:
    return 1 if cfg.data.class_mode == "lesion" else 2


class DINO(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        d = m.hidden_dim
        self.cfg = m
        self.num_classes = num_classes_of(cfg)
        self.num_queries = m.num_queries
        self.backbone = build_backbone(m.backbone)
        self.neck = MultiScaleNeck(self.backbone.channels, d, m.num_feature_levels, m.pos_temperature)
        self.encoder = DeformableEncoder(m)
        self.decoder = DeformableDecoder(m)
        self.class_embed = nn.Linear(d, self.num_classes)        # shared by every decoder layer
        self.bbox_embed = MLP(d, d, 4, 3)                         # shared by every decoder layer
        nn.init.constant_(self.class_embed.bias, prior_bias())
        nn.init.zeros_(self.bbox_embed.layers[-1].weight)
        nn.init.zeros_(self.bbox_embed.layers[-1].bias)
        self.tgt_embed = nn.Embedding(m.num_queries, d)           # learned content queries
        nn.init.normal_(self.tgt_embed.weight)
        if m.two_stage:
            self.selector = QuerySelector(d, self.num_classes)
        else:
            self.refpoint_embed = nn.Embedding(m.num_queries, 4)  # learned anchors (unsigmoided)
        self.label_enc = nn.Embedding(self.num_classes + 1, d)   # dn label embeddings

    def _check_inputs(self, images: Tensor, pad_mask: Tensor, source_ids: Tensor,
                      targets: Optional[list[dict]]) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"DINO: images must be [B, 3, H, W], got {tuple(images.shape)}")
        b, _, h, w = images.shape
        if pad_mask.shape != (b, h, w) or pad_mask.dtype != torch.bool:
            raise ValueError(f"DINO: pad_mask must be bool [{b}, {h}, {w}], got {pad_mask.dtype} "
                             f"{tuple(pad_mask.shape)}")
        if source_ids.shape != (b,):
            raise ValueError(f"DINO: source_ids must be [{b}], got {tuple(source_ids.shape)}")
        if targets is not None:
            if len(targets) != b:
                raise ValueError(f"DINO: {len(targets)} targets for a batch of {b}")
            for i, t in enumerate(targets):
                n = t["labels"].numel()
                if t["boxes"].shape != (n, 4):
                    raise ValueError(f"DINO: targets[{i}] boxes shape {tuple(t['boxes'].shape)} != ({n}, 4)")
                if n and (int(t["labels"].min()) < 0 or int(t["labels"].max()) >= self.num_classes):
                    raise ValueError(f"DINO: targets[{i}] labels outside [0, {self.num_classes})")
                if n and not (torch.isfinite(t["boxes"]).all() and (t["boxes"][:, 2:] >= 0).all()):
                    raise ValueError(f"DINO: targets[{i}] boxes must be finite cxcywh with w, h >= 0")

    def _queries(self, memory: Tensor, tokens) -> tuple[Tensor, Tensor, Optional[dict]]:
        """-> (content queries [B, Q, D], anchors unsig [B, Q, 4], interm outputs or None)."""
        b = memory.shape[0]
        tgt = self.tgt_embed.weight[None].expand(b, -1, -1)
        if not self.cfg.two_stage:
            return tgt, self.refpoint_embed.weight[None].expand(b, -1, -1), None
        sel = self.selector(memory, tokens, self.num_queries)
        return tgt, sel.ref_unsig, {"pred_logits": sel.interm_logits, "pred_boxes": sel.interm_boxes}

    # hooks a subclass may override (come.baselines.grounding: text fusion, contrastive head)
    def encode(self, tokens, source_ids: Tensor, shared: Optional[dict[str, Tensor]]):
        """-> (memory [B, N, D], aux list)."""
        return self.encoder(tokens, source_ids, shared)

    def classify(self, hs: Tensor) -> Tensor:
        """Decoder states [B, Q, D] -> class logits [B, Q, C]."""
        return self.class_embed(hs)

    def forward(self, images: Tensor, pad_mask: Tensor, source_ids: Tensor,
                targets: Optional[list[dict]] = None, shared: Optional[dict[str, Tensor]] = None) -> dict:
        self._check_inputs(images, pad_mask, source_ids, targets)
        tokens = self.neck(self.backbone(images), pad_mask)
        memory, enc_aux = self.encode(tokens, source_ids, shared)
        tgt, ref_unsig, interm = self._queries(memory, tokens)

        cdn = None
        if self.training and targets is not None:
            cdn = prepare_cdn(targets, self.cfg.dn_number, self.cfg.dn_label_noise_ratio,
                              self.cfg.dn_box_noise_scale, self.num_classes, self.num_queries, self.label_enc)
        attn_mask = None
        if cdn is not None:
            tgt = torch.cat([cdn.label_queries.to(tgt.dtype), tgt], 1)
            ref_unsig = torch.cat([cdn.box_queries.to(ref_unsig.dtype), ref_unsig], 1)
            attn_mask = cdn.attn_mask

        pad = cdn.meta["pad_size"] if cdn is not None else 0
        hs, refs, dec_aux = self.decoder(tgt, ref_unsig, memory, tokens, self.bbox_embed, attn_mask,
                                         source_ids, shared, num_dn=pad)
        # look forward twice: layer i's box refines layer i-1's undetached prediction
        boxes = [(self.bbox_embed(h) + inverse_sigmoid(r)).sigmoid() for h, r in zip(hs, refs[:-1])]
        logits = [self.classify(h) for h in hs]
        out = self._pack([l[:, pad:] for l in logits], [b[:, pad:] for b in boxes])
        out["interm_outputs"] = interm
        out["dn_meta"] = cdn.meta if cdn is not None else None
        out["dn_outputs"] = None
        if cdn is not None:
            out["dn_outputs"] = self._pack([l[:, :pad] for l in logits], [b[:, :pad] for b in boxes])
        out["aux_ffn"] = merge_aux(enc_aux + dec_aux)
        return out

    @staticmethod
    def _pack(logits: list[Tensor], boxes: list[Tensor]) -> dict:
        return {"pred_logits": logits[-1], "pred_boxes": boxes[-1],
                "aux_outputs": [{"pred_logits": l, "pred_boxes": b} for l, b in zip(logits[:-1], boxes[:-1])]}


def build_detector(cfg: Config) -> DINO:
    """The DINO detector of `cfg.model` (num_classes from `cfg.data.class_mode`)."""
    cfg.model.validate()
    model = DINO(cfg)
    if cfg.model.ffn.type in ("moe", "damex", "come"):
        from .moe import set_trace_sources      # routing targets per training source
        set_trace_sources(model, list(cfg.run.train_datasets))
    return model


def build_criterion(cfg: Config) -> SetCriterion:
    """DINO's set criterion with the matcher/loss weights of `cfg.model`."""
    m = cfg.model
    matcher = HungarianMatcher(m.cost_class, m.cost_bbox, m.cost_giou, alpha=m.focal_alpha)
    weights = {"loss_ce": m.loss_class, "loss_bbox": m.loss_bbox, "loss_giou": m.loss_giou}
    return SetCriterion(num_classes_of(cfg), matcher, weights, focal_alpha=m.focal_alpha)
