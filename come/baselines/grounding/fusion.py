"""Grounding DINO's image-text parts, sized for our DINO (d = model.hidden_dim).

- `ContrastiveHead(x [B, Q, D], text [B, T, D], text_mask [B, T]) -> [B, Q, T]`: per-token
  logits = x . text / sqrt(D) + learned bias (prior 0.01); padding tokens get -inf. Class
  logits are `class_logits(token_logits, positive_map [C, T]) -> [B, Q, C]`: the positive-map
  weighted mean of the class's word-piece logits (padding excluded), so DINO's focal criterion,
  matcher and post-process apply unchanged.
- `FeatureEnhancerLayer(img [B, N, D], img_mask [B, N], text [B, T], text_mask)`: the feature
  enhancer run before each deformable encoder layer: bi-directional image<->text cross-attention
  (layer-scaled residuals, init 1e-4 as Grounding DINO's BiAttentionBlock), then text
  self-attention + FFN on the text tokens.
- `LanguageGuidedSelector(memory, tokens, text, text_mask, num_queries)`: language-guided query
  selection: each encoder token's score is its max similarity over the text tokens; the top-Q
  tokens give the decoder's anchors (the content queries stay learned, as in Grounding DINO).
- `TextCrossAttention(q [B, Q, D], text, text_mask)`: the cross-modality decoder's text
  cross-attention, between the query self-attention and the image deformable cross-attention.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from come.model.layers import MLP
from come.model.two_stage import Selection, encoder_proposals, prior_bias


def class_logits(token_logits: Tensor, positive_map: Tensor) -> Tensor:
    """[B, Q, T] per-token logits, [C, T] positive map -> [B, Q, C]."""
    finite = torch.where(torch.isfinite(token_logits), token_logits, torch.zeros_like(token_logits))
    return finite @ positive_map.t().to(finite.dtype)


class ContrastiveHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(prior_bias()))

    def forward(self, x: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        logits = x @ text.transpose(1, 2) / math.sqrt(x.shape[-1]) + self.bias
        return logits.masked_fill(~text_mask[:, None, :], float("-inf"))


class FeatureEnhancerLayer(nn.Module):
    def __init__(self, d: int, nheads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.img_norm, self.txt_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.i2t = nn.MultiheadAttention(d, nheads, dropout=dropout, batch_first=True)   # image queries text
        self.t2i = nn.MultiheadAttention(d, nheads, dropout=dropout, batch_first=True)   # text queries image
        self.gamma_img = nn.Parameter(torch.full((d,), 1e-4))
        self.gamma_txt = nn.Parameter(torch.full((d,), 1e-4))
        self.txt_self = nn.MultiheadAttention(d, nheads, dropout=dropout, batch_first=True)
        self.txt_norm2, self.txt_norm3 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.txt_ffn = nn.Sequential(nn.Linear(d, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, d))

    def forward(self, img: Tensor, img_mask: Tensor, text: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor]:
        """img [B, N, D] (img_mask True = padding), text [B, T, D] (text_mask True = real)."""
        vi, vt = self.img_norm(img), self.txt_norm(text)
        di = self.i2t(vi, vt, vt, key_padding_mask=~text_mask, need_weights=False)[0]
        dt = self.t2i(vt, vi, vi, key_padding_mask=img_mask, need_weights=False)[0]
        img = img + self.gamma_img * di
        text = text + self.gamma_txt * dt
        sa = self.txt_self(text, text, text, key_padding_mask=~text_mask, need_weights=False)[0]
        text = self.txt_norm2(text + sa)
        text = self.txt_norm3(text + self.txt_ffn(text))
        return img, text


class TextCrossAttention(nn.Module):
    def __init__(self, d: int, nheads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, nheads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, q: Tensor, query_pos: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        ca = self.attn(q + query_pos, text, text, key_padding_mask=~text_mask, need_weights=False)[0]
        return self.norm(q + ca)


class LanguageGuidedSelector(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.enc_output = nn.Linear(d, d)
        self.enc_output_norm = nn.LayerNorm(d)
        self.head = ContrastiveHead()
        self.enc_out_bbox_embed = MLP(d, d, 4, 3)
        nn.init.zeros_(self.enc_out_bbox_embed.layers[-1].weight)
        nn.init.zeros_(self.enc_out_bbox_embed.layers[-1].bias)

    def forward(self, memory: Tensor, tokens, text: Tensor, text_mask: Tensor, positive: Tensor,
                num_queries: int) -> Selection:
        n = memory.shape[1]
        if num_queries > n:
            raise ValueError(f"model.num_queries {num_queries} exceeds the {n} encoder tokens of this input")
        mem, props, valid = encoder_proposals(memory, tokens.mask, tokens.spatial_shapes)
        mem = self.enc_output_norm(self.enc_output(mem))
        tok_logits = self.head(mem, text, text_mask)                         # [B, N, T]
        coords = self.enc_out_bbox_embed(mem) + props                        # [B, N, 4] unsig
        score = tok_logits.max(-1)[0].detach().masked_fill(~valid, torch.finfo(mem.dtype).min)
        idx = score.topk(num_queries, dim=1)[1]                              # [B, Q]
        ref_unsig = torch.gather(coords, 1, idx[..., None].expand(-1, -1, 4))
        sel = torch.gather(mem, 1, idx[..., None].expand(-1, -1, mem.shape[-1]))
        logits = class_logits(self.head(sel, text, text_mask), positive)
        return Selection(ref_unsig.detach(), logits, ref_unsig.sigmoid())
