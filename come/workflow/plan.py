"""What the Snakemake DAG needs from a config: paths, dataset groups, runs and their inputs.

The rules in `workflow/rules/*.smk` only ask this object; no model logic lives in Snakemake.
"""
from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from come.config import Config, ConfigError, load_config
from come.config.loader import deep_merge, to_dict

from .grid import GROUPS, Grid, RunSpec, expand_runs, load_grid, run_dict


@dataclass
class Plan:
    """Everything the rules read: `plan = Plan.build("config/config.yaml")`."""
    config_path: str
    cfg: Config
    grid: Grid
    runs: list[RunSpec]
    experts_of: dict[str, set[str]] = field(default_factory=dict)   # run id -> {"structure", "semantic"}

    @classmethod
    def build(cls, config_path: str | Path) -> "Plan":
        cfg = load_config(config_path)
        if not cfg.present_datasets():
            raise ConfigError(f"{config_path}: data.datasets: {cfg.data.datasets!r} finds no dataset: "
                              + "; ".join(f"{d}: {r}" for d, r in cfg.absent_datasets().items()))
        grid = load_grid(cfg.grid.file, cfg.paper_tables)
        plan = cls(str(config_path), cfg, grid, expand_runs(cfg, grid))
        base = to_dict(cfg)
        for spec in plan.runs:
            ffn = deep_merge(base, run_dict(spec.row, grid.methods))["model"]["ffn"]
            need = set()
            if ffn["type"] == "come":
                need |= {"structure"} if ffn["use_ste"] else set()
                need |= {"semantic"} if ffn["use_see"] else set()
            plan.experts_of[spec.id] = need
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

    def expert_file(self, kind: str) -> str:
        return str(Path(self.experts_root, kind, "encoder.pt"))

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
                "experts": [self.expert_file(k) for k in sorted(self.experts_of[run_id])]}

    def run_signature(self, run_id: str) -> str:
        """Hash of what a run's training depends on (config sections, preset, row, seed,
        datasets). A Snakemake param: editing any of them re-runs that run (params trigger);
        `eval`, `workflow` and other runs' rows do not."""
        spec = self.spec(run_id)
        keys = ("synth", "data", "model", "train") + (("experts",) if self.experts_of[run_id] else ())
        base = {k: v for k, v in to_dict(self.cfg).items() if k in keys}
        payload = {"cfg": deep_merge(base, run_dict(spec.row, self.grid.methods)),
                   "seed": spec.seed, "train": spec.train_datasets, "eval": spec.eval_datasets,
                   "epochs_scale": self.cfg.grid.epochs_scale}
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def launcher(self) -> str:
        """`come`, or torchrun with one process per GPU when workflow.train_gpus > 1."""
        gpus = self.cfg.workflow.train_gpus
        if gpus > 1:
            return f"torchrun --standalone --nproc_per_node={gpus} -m come"
        return "come"

    def quoted(self, items: list[str]) -> str:
        return " ".join(shlex.quote(i) for i in items)
