"""Open-GroundingDINO on our DINO (`model.arch: grounding-dino`).

`GroundingDINO(cfg)` is our DINO (same backbone, neck, deformable encoder/decoder, denoising,
criterion, post-process) with Grounding DINO's parts (come/baselines/grounding/fusion.py):
the prompt is encoded once by the text encoder (frozen by default: its features are a buffer,
so checkpoints stay small, and cached in `<results>/cache/text/`) and mapped to D by `feat_map`; a feature-enhancer layer (image<->text
cross-attention, text self-attention) runs before each deformable encoder layer; the two-stage
selection is language-guided; every decoder layer cross-attends to the text between its self-
and deformable attention; and the classifier is the contrastive head.

Forward: as DINO (docs/architecture.md), plus `out["pred_token_logits"]` [B, Q, T] (last layer,
-inf on padding tokens). `pred_logits` [B, Q, C] are the class logits aggregated with the
prompt's positive map, so the DINO criterion and post-process apply unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from torch import Tensor, nn

from come.config.schema import Config
from come.engine.parts import DetectorParts
from come.model.decoder import DeformableDecoderLayer
from come.model.detector import DINO, build_criterion, postprocess
from come.model.encoder import DeformableEncoderLayer

from .fusion import (ContrastiveHead, FeatureEnhancerLayer, LanguageGuidedSelector, TextCrossAttention,
                     class_logits)
from .text import default_prompt, encode_prompt, load_text_encoder, prompt_features

CLASS_NAMES = {"lesion": ["lesion"], "pathology": ["benign", "malignant"]}


class TextState:
    """The text tokens of the current forward, shared by the layers (not a module)."""
    feats: Tensor          # [B, T, D]
    mask: Tensor           # [B, T] bool, True = real token
    token_logits: list[Tensor]


class FusedEncoderLayer(DeformableEncoderLayer):
    """Feature enhancer (optional) + DINO's deformable encoder layer."""

    def __init__(self, cfg, layer_idx: int, state: TextState, fuse: bool):
        super().__init__(cfg, layer_idx)
        self.state = state
        self.enhancer = (FeatureEnhancerLayer(cfg.hidden_dim, cfg.nheads, cfg.ffn.hidden_dim, cfg.dropout)
                         if fuse else None)

    def forward(self, src, pos, ref_levels, tokens, ctx):
        if self.enhancer is not None:
            src, self.state.feats = self.enhancer(src, tokens.mask, self.state.feats, self.state.mask)
        return super().forward(src, pos, ref_levels, tokens, ctx)


class CrossModalityDecoderLayer(DeformableDecoderLayer):
    """Self-attention, text cross-attention, deformable image cross-attention, FFN."""

    def __init__(self, cfg, layer_idx: int, state: TextState):
        super().__init__(cfg, layer_idx)
        self.state = state
        self.text_attn = TextCrossAttention(cfg.hidden_dim, cfg.nheads, cfg.dropout)

    def forward(self, tgt, query_pos, ref_input, memory, tokens, attn_mask, ctx):
        q = k = tgt + query_pos
        sa = self.self_attn(q, k, tgt, attn_mask=attn_mask, need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout2(sa))
        tgt = self.text_attn(tgt, query_pos, self.state.feats, self.state.mask)
        ca = self.cross_attn(tgt + query_pos, ref_input, memory, tokens.spatial_shapes,
                             tokens.level_start_index, tokens.mask)
        tgt = self.norm1(tgt + self.dropout1(ca))
        return self.ffn(tgt, ctx)


class GroundingDINO(DINO):
    def __init__(self, cfg: Config):
        super().__init__(cfg)
        m, g = cfg.model, cfg.baselines.grounding
        names = CLASS_NAMES[cfg.data.class_mode]
        self.prompt = g.prompt or default_prompt(names)
        if g.freeze_text_encoder:            # prompt features computed once (cached on disk)
            text = prompt_features(g.text_encoder, self.prompt, names, g.max_text_len,
                                   Path(cfg.results) / "cache" / "text")
            self.text_encoder = None
            self.register_buffer("text_raw", text.feats.detach().clone())
        else:
            encoder, self.tokenizer = load_text_encoder(g.text_encoder)
            text = encode_prompt(encoder, self.tokenizer, self.prompt, names, g.max_text_len)
            self.text_encoder, self.text_raw, self.class_names = encoder.train(), None, names
        self.register_buffer("text_mask", text.mask.clone())
        self.register_buffer("positive_map", text.positive_map.clone())
        self.feat_map = nn.Linear(text.feats.shape[-1], m.hidden_dim)
        self.state = TextState()
        fused = set(range(m.enc_layers)) if not g.fusion_layers else set(range(min(g.fusion_layers, m.enc_layers)))
        self.encoder.layers = nn.ModuleList(FusedEncoderLayer(m, i, self.state, i in fused)
                                            for i in range(m.enc_layers))
        self.decoder.layers = nn.ModuleList(CrossModalityDecoderLayer(m, i, self.state)
                                            for i in range(m.dec_layers))
        del self.class_embed
        self.contrastive = ContrastiveHead()
        if m.two_stage:
            self.selector = LanguageGuidedSelector(m.hidden_dim)
        self.cfg_text = g

    def text_tokens(self, batch: int) -> Tensor:
        """[B, T, D] prompt features (re-encoded each forward when the encoder trains)."""
        if self.text_encoder is None:
            raw = self.text_raw
        else:
            raw = encode_prompt(self.text_encoder, self.tokenizer, self.prompt, self.class_names,
                                self.cfg_text.max_text_len, grad=True).feats
        return self.feat_map(raw)[None].expand(batch, -1, -1)

    def _queries(self, memory: Tensor, tokens):
        b = memory.shape[0]
        tgt = self.tgt_embed.weight[None].expand(b, -1, -1)
        if not self.cfg.two_stage:
            return tgt, self.refpoint_embed.weight[None].expand(b, -1, -1), None
        sel = self.selector(memory, tokens, self.state.feats, self.state.mask, self.positive_map,
                            self.num_queries)
        return tgt, sel.ref_unsig, {"pred_logits": sel.interm_logits, "pred_boxes": sel.interm_boxes}

    def classify(self, hs: Tensor) -> Tensor:
        tok = self.contrastive(hs, self.state.feats, self.state.mask)
        self.state.token_logits.append(tok)
        return class_logits(tok, self.positive_map)

    def forward(self, images: Tensor, pad_mask: Tensor, source_ids: Tensor,
                targets: Optional[list[dict]] = None, shared: Optional[dict[str, Tensor]] = None) -> dict:
        b = images.shape[0]
        self.state.feats = self.text_tokens(b)
        self.state.mask = self.text_mask[None].expand(b, -1)
        self.state.token_logits = []
        out = super().forward(images, pad_mask, source_ids, targets, shared)
        pad = out["dn_meta"]["pad_size"] if out.get("dn_meta") else 0
        out["pred_token_logits"] = self.state.token_logits[-1][:, pad:]
        self.state.token_logits = []
        return out


def build_grounding(cfg: Config) -> GroundingDINO:
    cfg.model.validate()
    return GroundingDINO(cfg)


def grounding_parts(cfg: Config) -> DetectorParts:
    """The engine's parts for Open-GroundingDINO: its model, DINO's criterion and post-process."""
    def pp(out: dict, orig_sizes: Tensor):
        return postprocess(out, orig_sizes, num_select=cfg.model.num_select)
    return DetectorParts(build_grounding, build_criterion, pp)

