"""DINO-style detector with a pluggable FFN slot (see docs/architecture.md).

Entry points live in `come.model.detector` (build_detector, build_criterion, postprocess); this
package file stays import-free so `come.model.ffn` and `come.model.moe` load without timm.
Modules: backbone (timm + frozen BN), position (sine), neck (input projections, flattening),
deform_attn (multi-scale deformable attention), encoder, decoder, two_stage (query selection),
denoising (CDN), matcher, losses, postprocess, box_ops, layers, ffn_block, ffn (the slot).
"""
