"""Row label -> config for every expanded run of the grid (unit tier).

Generic: each check is driven by the grid's own rows and the presets of config/methods.yaml,
plus the meaning of the paper's labels (method names, "experts=N", "top_k=K", the ablations,
the paradigms), so it stays right when presets change or rows are added.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from come.config import load_config
from come.config.schema import ORGAN_OF
from come.workflow.grid import RunSpec, expand_runs, load_grid, resolve_run, undot

REPO = Path(__file__).resolve().parents[2]
CONFIG = "config/config.yaml"
ABLATION_TABLE = "appendix_table1_ablation"
TABLE6 = "table6_clustering"
# The paper's method names -> FFN type (+ clustering strategy for the COME variants).
METHOD_FFN = {"DINO": "dense", "DINO-MoE": "moe", "DAMEX": "damex", "COME": "come"}
CLUSTERING = {"Fine2Coarse": "fine2coarse", "Multi-Step": "multistep", "Mixing": "mixing"}
# Appendix Table 1: each ablation label -> the FFN switches it changes from the "full" run.
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "w/o STE": {"use_ste": False},
    "w/o SEE": {"use_see": False},
    "w/o dual shared experts (-DSE)": {"use_ste": False, "use_see": False},
    "w/o clustering": {"clustering": "none"},
    "w/o traceability loss": {"use_trace_loss": False},
}
PARADIGM_ORGAN = {"intra-breast": "breast", "intra-thyroid": "thyroid"}


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[RunSpec, Any]]:
    """run id -> (spec, resolved Config) for every run the default config expands to."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)               # grid.file and paper_tables are repository-relative
        cfg = load_config(CONFIG)
        grid = load_grid(cfg.grid.file, cfg.paper_tables)
        out = {s.id: (s, resolve_run(CONFIG, s.id)) for s in expand_runs(cfg, grid)}
    assert out, "the grid expands to no run"
    return out


@pytest.fixture(scope="module")
def grid():
    cfg = load_config(REPO / CONFIG)
    return load_grid(REPO / cfg.grid.file)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in undot(d).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


IDENTITY = ("run.", "train.seed")             # set by the run identity, after the overrides


def expected_value(cfg: Any, key: str, value: Any) -> Any:
    """What a preset / override value becomes in the run's config (docs/workflow.md): layer
    lists clipped to the model depth, epochs scaled by grid.epochs_scale."""
    if key == "train.epochs":
        return max(1, round(value * cfg.grid.epochs_scale))
    if key == "model.ffn.layers" and isinstance(value, list):
        ffn = cfg.model.ffn
        depth = max(cfg.model.enc_layers if s == "encoder" else cfg.model.dec_layers for s in ffn.stages)
        return [i for i in value if i < depth] or [0]
    return value


def test_every_run_carries_its_preset_variant_and_row_overrides(runs, grid):
    """Each key of the method preset, then the named variant, then the row's overrides (later
    layers win) holds in the resolved config. Mutation caught: resolve_run dropping the variant
    presets (`methods.variants.get(row.variant, {})` -> `{}`), or a preset key ignored."""
    for run_id, (spec, cfg) in runs.items():
        layers = [grid.methods.presets[spec.row.method], grid.methods.variants.get(spec.row.variant, {}),
                  spec.row.overrides]
        want: dict[str, Any] = {}
        for layer in layers:
            want.update(flatten(layer))
        for key, value in want.items():
            if key.startswith(IDENTITY):
                continue
            assert get(cfg, key) == expected_value(cfg, key, value), f"{run_id}: {key}"


def test_every_run_identity_and_paradigm_datasets(runs):
    """Mutation caught: a row's train_datasets pointing at the wrong organ or dataset (e.g.
    intra-dino-breast trained on thyroid), a paradigm label that does not match its datasets."""
    for run_id, (spec, cfg) in runs.items():
        row, run = spec.row, cfg.run
        assert (run.id, run.method, run.paradigm, run.variant) == (run_id, row.method, row.paradigm, row.variant)
        assert run.tables == spec.cells and cfg.train.seed == spec.seed, run_id
        assert run.train_datasets == spec.train_datasets and run.eval_datasets == spec.eval_datasets, run_id
        organs = {ORGAN_OF[d] for d in run.train_datasets}
        if row.paradigm == "single":
            assert len(run.train_datasets) == 1, run_id
        elif row.paradigm == "intra-organ":
            assert len(organs) == 1, run_id
            assert run.train_datasets == [d for d in cfg.data.datasets if ORGAN_OF[d] in organs], run_id
        else:
            assert run.train_datasets == list(cfg.data.datasets) and len(organs) == 2, run_id
        for cell in row.serves:
            table, paradigm = cell[0], cell[1]
            if m := re.fullmatch(r"single \(train (\w+) only\)", paradigm):
                assert run.train_datasets == [m[1]], f"{run_id}: {cell}"
                assert set(run.eval_datasets) == {d for d in cfg.data.datasets if ORGAN_OF[d] == ORGAN_OF[m[1]]}
            elif m := re.fullmatch(r"intra-organ \((\w+)\)", paradigm):
                assert organs == {m[1]} and row.paradigm == "intra-organ", f"{run_id}: {cell}"
            elif table != TABLE6:
                assert paradigm == row.paradigm, f"{run_id}: {cell}"
            if table == TABLE6 and len(cell) == 5 and cell[4] != "all":
                column = cell[4]
                assert column == row.paradigm if column == "inter-organ" else \
                    organs == {PARADIGM_ORGAN[column]}, f"{run_id}: {cell}"


def test_every_method_label_and_numeric_variant_label(runs):
    """The paper's labels, independent of methods.yaml: method name -> FFN type and clustering,
    "experts=N" -> num_experts N, "top_k=K" -> top_k K. Mutations caught: two presets swapped in
    config/methods.yaml (e.g. DINO-MoE <-> DAMEX), a sweep row's override changed (e.g.
    inter-come-f2c-e4k1 with num_experts 6)."""
    for run_id, (spec, cfg) in runs.items():
        ffn = cfg.model.ffn
        for cell in spec.row.serves:
            method, variant = cell[2], cell[3]
            base = method.split(" (")[0]
            if base in METHOD_FFN:
                assert ffn.type == METHOD_FFN[base], f"{run_id}: {method} has ffn.type {ffn.type}"
            if m := re.fullmatch(r"COME \((.+)\)", method):
                want = "none" if variant == "w/o clustering" else CLUSTERING[m[1]]
                assert ffn.clustering == want, f"{run_id}: {method} clusters with {ffn.clustering}"
            if cell[0] == TABLE6:
                assert ffn.clustering == CLUSTERING[variant], f"{run_id}: {cell}"
            if m := re.fullmatch(r"experts=(\d+)", variant):
                assert ffn.num_experts == int(m[1]), f"{run_id}: {cell}"
            if m := re.fullmatch(r"top_k=(\d+)", variant):
                assert ffn.top_k == int(m[1]), f"{run_id}: {cell}"


def test_every_ablation_changes_exactly_its_switch(runs):
    """Appendix Table 1: an ablation run's FFN differs from the "full" run of the same paradigm
    and method in exactly the switches its label names. Mutation caught: a variant preset in
    config/methods.yaml switching something else too (e.g. "w/o STE" also setting use_see:
    false) or the wrong switch (w/o SEE -> use_ste: false)."""
    full: dict[tuple[str, str], Any] = {}
    ablated = []
    for run_id, (spec, cfg) in runs.items():
        for cell in spec.row.serves:
            if cell[0] != ABLATION_TABLE:
                continue
            assert cell[3] in ABLATIONS, f"{run_id}: unknown ablation label {cell[3]!r}"
            if cell[3] == "full":
                full[(cell[1], cell[2])] = cfg
            ablated.append((run_id, cell, cfg))
    assert ablated, "no run serves the ablation table"
    for run_id, cell, cfg in ablated:
        ref = dataclasses.asdict(full[(cell[1], cell[2])].model.ffn)
        mine = dataclasses.asdict(cfg.model.ffn)
        changed = {k: v for k, v in mine.items() if ref[k] != v}
        assert changed == ABLATIONS[cell[3]], f"{run_id}: {cell[3]} changes {changed}"
        if cell[3] == "full":
            assert mine["use_ste"] and mine["use_see"] and mine["use_trace_loss"], run_id
            assert mine["clustering"] != "none", run_id
