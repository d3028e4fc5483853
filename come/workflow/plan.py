"""What the Snakemake DAG needs from a config: paths, dataset groups, runs and their inputs.

The rules in `workflow/rules/*.smk` only ask this object; no model logic lives in Snakemake.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from come.config import Config, ConfigError, load_config
from come.engine.rundir import config_signature, experts_used

from come.experts.trainset import canonical, semantic_dir, trainset_key

from .grid import GROUPS, Grid, RunSpec, expand_runs, load_grid, resolve_run


@dataclass
class Plan:
    """Everything the rules read: `plan = Plan.build("config/config.yaml")`."""
    config_path: str
    cfg: Config
    grid: Grid
    runs: list[RunSpec]
    experts_of: dict[str, set[str]] = field(default_factory=dict)   # run id -> {"structure", "semantic"}
    configs: dict[str, Config] = field(default_factory=dict)        # run id -> resolved Config

    @classmethod
    def build(cls, config_path: str | Path) -> "Plan":
        """Load the config and the grid, then resolve and validate every run of the plan, so a
        run an override makes invalid is named here, before any job starts."""
        cfg = load_config(config_path)
        if not cfg.present_datasets():
            raise ConfigError(f"{config_path}: data.datasets: {cfg.data.datasets!r} finds no dataset: "
                              + "; ".join(f"{d}: {r}" for d, r in cfg.absent_datasets().items()))
        grid = load_grid(cfg.grid.file, cfg.paper_tables)
        plan = cls(str(config_path), cfg, grid, expand_runs(cfg, grid))
        for spec in plan.runs:
            try:
                run_cfg = resolve_run(config_path, spec.id)
            except ConfigError as exc:
                raise ConfigError(f"{grid.path}: run {spec.id!r} (row {spec.row.id!r}) is invalid: "
                                  f"{exc}") from None
            plan.configs[spec.id] = run_cfg
            plan.experts_of[spec.id] = experts_used(run_cfg)
        return plan

    # ---- paths -------------------------------------------------------------------------
    @property
    def results(self) -> str:
        return self.cfg.results

    def path(self, *parts: str) -> str:
        return str(Path(self.cfg.results, *parts))

    @property
    def data_root(self) -> str:
        return self.cfg.data.root

    @property
    def splits_root(self) -> str:
        return self.cfg.data.splits_root

    @property
    def experts_root(self) -> str:
        return self.cfg.experts.root

    @property
    def prompts(self) -> str:
        return str(Path(self.cfg.experts.prompts_root, "train.jsonl"))

    def split(self, ds: str, part: str) -> str:
        return str(Path(self.splits_root, ds, f"{part}.json"))

    def merged(self, group: str, part: str) -> str:
        return str(Path(self.splits_root, "merged", group, f"{part}.json"))

    def expert_file(self, kind: str, train_datasets: list[str] | None = None) -> str:
        """encoder.pt of an expert: the structure expert is shared (it never sees a benchmark
        image); the semantic one is fine-tuned per training set (come.experts.trainset)."""
        if kind == "semantic":
            return str(semantic_dir(self.experts_root, train_datasets or []) / "encoder.pt")
        return str(Path(self.experts_root, kind, "encoder.pt"))

    @property
    def trainsets(self) -> dict[str, list[str]]:
        """Training-set key -> datasets, for every training set of a run using the semantic expert."""
        out = {}
        for spec in self.runs:
            if "semantic" in self.experts_of[spec.id]:
                out[trainset_key(spec.train_datasets)] = canonical(spec.train_datasets)
        return dict(sorted(out.items()))

    def semantic_inputs(self, key: str) -> dict[str, list[str]]:
        """What the semantic expert of training set `key` is built from: that set's train splits
        (fine-tuning prompts), its test splits (zero-shot evaluation only), the corpus-pretrained init."""
        ds = self.trainsets[key]
        return {"train": [self.split(d, "train") for d in ds], "test": [self.split(d, "test") for d in ds],
                "init": self.semantic_init}

    @property
    def expert_files(self) -> list[str]:
        """Every expert file some run needs (one semantic expert per training set)."""
        files = [self.expert_file("structure")] if "structure" in self.experts_needed else []
        return files + [self.expert_file("semantic", ds) for ds in self.trainsets.values()]

    @property
    def semantic_init(self) -> list[str]:
        """[clip.pt of `come pretrain-semantic`] when the semantic expert starts from the corpus, else []."""
        if "semantic" in self.experts_needed and self.cfg.experts.semantic.uses_corpus():
            return [str(Path(self.experts_root, "semantic_pretrain", "clip.pt"))]
        return []

    def run_dir(self, run_id: str) -> str:
        return self.path("runs", run_id)

    # ---- data --------------------------------------------------------------------------
    @property
    def datasets(self) -> list[str]:
        return self.cfg.present_datasets()

    def align_reference(self, ds: str) -> str | None:
        """The dataset whose split `ds`'s split follows (TUS -> DDTI when both are present and
        `data.tus_ddti_dedup`), else None."""
        if ds == "TUS" and self.cfg.data.tus_ddti_dedup and "DDTI" in self.datasets:
            return "DDTI"
        return None

    @property
    def groups(self) -> dict[str, list[str]]:
        """Merge groups with at least one dataset of this config (breast, thyroid, all)."""
        out = {g: [d for d in members if d in self.datasets] for g, members in GROUPS.items()}
        return {g: ds for g, ds in out.items() if ds}

    # ---- runs --------------------------------------------------------------------------
    @property
    def run_ids(self) -> list[str]:
        return [s.id for s in self.runs]

    def spec(self, run_id: str) -> RunSpec:
        for s in self.runs:
            if s.id == run_id:
                return s
        raise KeyError(f"run {run_id!r} is not in the grid of {self.config_path}")

    @property
    def experts_needed(self) -> set[str]:
        return set().union(*self.experts_of.values()) if self.experts_of else set()

    def train_inputs(self, run_id: str) -> dict[str, list[str]]:
        """Split files (train of the training sets, test of the evaluation sets) + experts."""
        spec = self.spec(run_id)
        return {"train": [self.split(d, "train") for d in spec.train_datasets],
                "test": [self.split(d, "test") for d in spec.eval_datasets],
                "experts": [self.expert_file(k, spec.train_datasets) for k in sorted(self.experts_of[run_id])]}

    def run_signature(self, run_id: str) -> str:
        """`come.engine.rundir.config_signature` of the run's resolved config: what its training
        depends on. A Snakemake param: editing any of it re-runs that run (params trigger), and
        `come train` sets the old checkpoint aside by the same hash; `eval`, `workflow` and
        other runs' rows do not count. The epoch count is appended: `come train` resumes across
        an epoch change (it is not in `config_signature`), but Snakemake must still re-run."""
        self.spec(run_id)
        cfg = self.configs[run_id]
        return f"{config_signature(cfg)}-{cfg.train.epochs}ep"

    def launcher(self) -> str:
        """`come`, or torchrun with one process per GPU when workflow.train_gpus > 1."""
        gpus = self.cfg.workflow.train_gpus
        if gpus > 1:
            return f"torchrun --standalone --nproc_per_node={gpus} -m come"
        return "come"

    def quoted(self, items: list[str]) -> str:
        return " ".join(shlex.quote(i) for i in items)
