"""The experiment grid (`config/grid.yaml`) and method presets (`config/methods.yaml`).

One grid row = one trained model. `load_grid` validates the file (JSON schema, then names:
methods, datasets, duplicate ids, served paper cells); `expand_runs` turns the rows into the runs
a config asks for (seeds, table filter, available datasets); `resolve_run` builds the `Config` of
one run: base config < method preset < variant preset < row overrides < run identity < --set.

A served cell is `[table, paradigm, method, variant]` as in `come_paper_tables.csv`, with an
optional fifth item, the csv `dataset` column the run fills (Table 6: `intra-breast`, ...).
In `run.tables` each cell is one string joined by `|` (e.g. `table2_main|single|DINO|`).
"""
from __future__ import annotations

import copy
import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from come.config import ALL_DATASETS, BREAST, THYROID, Config, ConfigError, load_config
from come.config.loader import deep_merge, parse_overrides, resolve_dict

GROUPS: dict[str, list[str]] = {"breast": BREAST, "thyroid": THYROID, "all": ALL_DATASETS}
CELL_SEP = "|"
SEED_RE = re.compile(r"^(?P<row>.+)-seed~(?P<seed>\d+)$")

_DATASETS = {"anyOf": [{"type": "string"},
                       {"type": "array", "items": {"type": "string"}}]}
ROW_SCHEMA: dict = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "method", "paradigm", "train_datasets", "serves"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$"},
        "method": {"type": "string", "minLength": 1},
        "paradigm": {"enum": ["single", "intra-organ", "inter-organ"]},
        "variant": {"type": "string"},
        "status": {"enum": ["active", "not_reproduced"]},
        "train_datasets": _DATASETS,
        "test_datasets": _DATASETS,
        "overrides": {"type": "object"},
        "serves": {"type": "array", "items": {
            "type": "array", "minItems": 4, "maxItems": 5, "items": {"type": "string"}}},
        "note": {"type": "string"},
        "extra_seeds": {"type": "array", "items": {"type": "integer", "minimum": 0}, "uniqueItems": True},
    },
}
GRID_SCHEMA: dict = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object", "additionalProperties": False, "required": ["runs"],
    "properties": {"methods_file": {"type": "string"},
                   "runs": {"type": "array", "minItems": 1, "items": ROW_SCHEMA}},
}
METHODS_SCHEMA: dict = {
    "type": "object", "additionalProperties": False, "required": ["methods"],
    "properties": {
        "methods": {"type": "object", "minProperties": 1,
                    "additionalProperties": {"type": "object"}},
        "variants": {"type": "object", "additionalProperties": {"type": "object"}},
        "not_reproduced": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@dataclass
class Methods:
    """Method presets (name -> config overrides), named variant overrides, unreproduced methods."""
    presets: dict[str, dict]
    variants: dict[str, dict] = field(default_factory=dict)
    not_reproduced: dict[str, str] = field(default_factory=dict)


@dataclass
class GridRow:
    id: str
    method: str
    paradigm: str
    train: str | list[str]              # a group name (breast/thyroid/all), one dataset or a list
    serves: list[tuple[str, ...]]
    variant: str = ""
    status: str = "active"
    test: str | list[str] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    note: str = ""
    extra_seeds: list[int] = field(default_factory=list)   # also run at these seeds (`<id>-seed~N`)


@dataclass
class Grid:
    path: Path
    rows: list[GridRow]
    methods: Methods

    def row(self, row_id: str) -> GridRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise ConfigError(f"{self.path}: no grid row with id {row_id!r}")


@dataclass
class RunSpec:
    """One run of the expanded grid: a row at one seed on the datasets available."""
    id: str
    row: GridRow
    seed: int
    train_datasets: list[str]
    eval_datasets: list[str]

    @property
    def cells(self) -> list[str]:
        return [CELL_SEP.join(c) for c in self.row.serves]


def _schema_check(data: Any, schema: dict, path: Path) -> None:
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        raise ConfigError(f"{path}: {where}: {err.message}")


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def undot(d: dict) -> dict:
    """`{"model.ffn.top_k": 1}` -> `{"model": {"ffn": {"top_k": 1}}}` (nested keys kept)."""
    out: dict = {}
    for key, value in d.items():
        value = undot(value) if isinstance(value, dict) else copy.deepcopy(value)
        parts = str(key).split(".")
        out = deep_merge(out, _nest(parts, value))
    return out


def _nest(parts: list[str], value: Any) -> dict:
    return {parts[0]: value} if len(parts) == 1 else {parts[0]: _nest(parts[1:], value)}


def load_methods(path: str | Path) -> Methods:
    path = Path(path)
    data = _read_yaml(path)
    _schema_check(data, METHODS_SCHEMA, path)
    methods = Methods(presets={k: undot(v) for k, v in data["methods"].items()},
                      variants={k: undot(v) for k, v in (data.get("variants") or {}).items()},
                      not_reproduced=dict(data.get("not_reproduced") or {}))
    for kind, table in (("methods", methods.presets), ("variants", methods.variants)):
        for name, preset in table.items():
            try:
                _check_keys(preset)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {kind}.{name}: {exc}") from None
    return methods


def _check_keys(overrides: dict) -> None:
    """Build a default `Config` with `overrides` applied: unknown keys / wrong types raise."""
    from come.config.loader import build, to_dict
    build(Config, deep_merge(to_dict(Config()), overrides))


def paper_cells(csv_path: str | Path) -> set[tuple[str, str, str, str]]:
    """The (table, paradigm, method, variant) cells of the paper csv."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ConfigError(f"{csv_path}: paper tables csv not found")
    with csv_path.open(newline="") as fh:
        return {(r["table"], r["paradigm"], r["method"], r["variant"]) for r in csv.DictReader(fh)}


def _names(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _check_datasets(value: str | list[str], where: str, allow_groups: bool) -> None:
    for name in _names(value):
        if name in ALL_DATASETS or (allow_groups and name in GROUPS):
            continue
        known = ALL_DATASETS + (list(GROUPS) if allow_groups else [])
        raise ConfigError(f"{where}: unknown dataset or group {name!r} (known: {known})")


_CACHE: dict[tuple, Grid] = {}


def _stamp(p: str | Path | None) -> tuple:
    if p is None:
        return (None,)
    p = Path(p)
    return (str(p.resolve()), p.stat().st_mtime_ns if p.exists() else None)


def load_grid(path: str | Path, paper_csv: str | Path | None = None,
              methods_path: str | Path | None = None) -> Grid:
    """Read and validate the grid (cached per file version); `paper_csv` given -> every served
    cell must be in it."""
    path = Path(path)
    key = (_stamp(path), _stamp(paper_csv), _stamp(methods_path),
           _stamp(path.parent / "methods.yaml"))
    if key not in _CACHE:
        _CACHE[key] = _load_grid(path, paper_csv, methods_path)
    return copy.deepcopy(_CACHE[key])


def _load_grid(path: Path, paper_csv: str | Path | None, methods_path: str | Path | None) -> Grid:
    data = _read_yaml(path)
    _schema_check(data, GRID_SCHEMA, path)
    methods = load_methods(methods_path or path.parent / data.get("methods_file", "methods.yaml"))
    cells = paper_cells(paper_csv) if paper_csv is not None else None
    rows, seen = [], set()
    for i, raw in enumerate(data["runs"]):
        row = GridRow(id=raw["id"], method=raw["method"], paradigm=raw["paradigm"],
                      train=raw["train_datasets"], serves=[tuple(c) for c in raw["serves"]],
                      variant=raw.get("variant", ""), status=raw.get("status", "active"),
                      test=raw.get("test_datasets", []), overrides=undot(raw.get("overrides") or {}),
                      note=raw.get("note", ""), extra_seeds=list(raw.get("extra_seeds") or []))
        where = f"{path}: runs[{i}] (id {row.id!r})"
        if row.id in seen:
            raise ConfigError(f"{where}: duplicate id")
        seen.add(row.id)
        known = row.method in methods.presets or row.method in methods.not_reproduced
        if not known:
            raise ConfigError(f"{where}: unknown method {row.method!r} (known: "
                              f"{sorted(methods.presets) + sorted(methods.not_reproduced)})")
        if (row.status == "not_reproduced") != (row.method in methods.not_reproduced):
            raise ConfigError(f"{where}: method {row.method!r} must have status "
                              f"{'not_reproduced' if row.method in methods.not_reproduced else 'active'}")
        _check_datasets(row.train, f"{where}: train_datasets", allow_groups=True)
        _check_datasets(row.test, f"{where}: test_datasets", allow_groups=True)
        if not _names(row.train):
            raise ConfigError(f"{where}: train_datasets is empty")
        for cell in row.serves:
            if cells is not None and tuple(cell[:4]) not in cells:
                raise ConfigError(f"{where}: served cell {list(cell)} is not in {paper_csv} "
                                  "(table, paradigm, method, variant must match a csv row)")
        try:
            _check_keys(row.overrides)    # overrides must name real config keys
        except ConfigError as exc:
            raise ConfigError(f"{where}: overrides: {exc}") from None
        rows.append(row)
    return Grid(path=path, rows=rows, methods=methods)


def _expand(value: str | list[str], available: list[str]) -> list[str]:
    out: list[str] = []
    for name in _names(value):
        for ds in GROUPS.get(name, [name]):
            if ds not in out and (name not in GROUPS or ds in available):
                out.append(ds)
    return out


def row_datasets(row: GridRow, available: list[str]) -> tuple[list[str], list[str]] | None:
    """(train, eval) datasets of a row given the config's datasets; None = not runnable here."""
    train = _expand(row.train, available)
    if not train or any(ds not in available for ds in train):
        return None
    test = [ds for ds in _expand(row.test, available) if ds in available]
    return train, (test or list(train))


def expand_runs(cfg: Config, grid: Grid, include_not_reproduced: bool = False) -> list[RunSpec]:
    """Runs the config asks for: rows serving `cfg.grid.tables` whose datasets are available."""
    tables = set(cfg.grid.tables)
    seeds = cfg.grid.seeds or [cfg.train.seed]
    present = cfg.present_datasets()
    specs = []
    for row in grid.rows:
        if row.status != "active" and not include_not_reproduced:
            continue
        if "all" not in tables and not tables & {c[0] for c in row.serves}:
            continue
        ds = row_datasets(row, present)
        if ds is None:
            continue
        for seed in seeds + [s for s in row.extra_seeds if s not in seeds]:
            run_id = row.id if len(seeds) == 1 and seed == seeds[0] else f"{row.id}-seed~{seed}"
            specs.append(RunSpec(run_id, row, seed, ds[0], ds[1]))
    return specs


def planned_out(cfg: Config, grid: Grid) -> list[tuple[GridRow, str]]:
    """Active rows of the asked tables that no run serves here, each with the reason
    (the datasets it needs that this config does not have, and why they are absent)."""
    tables = set(cfg.grid.tables)
    present, absent = cfg.present_datasets(), cfg.absent_datasets()
    out = []
    for row in grid.rows:
        if row.status != "active" or ("all" not in tables and not tables & {c[0] for c in row.serves}):
            continue
        if row_datasets(row, present) is not None:
            continue
        need = [d for d in _expand(row.train, ALL_DATASETS) if d not in present]
        why = "; ".join(f"{d}: {absent.get(d, 'absent')}" for d in need)
        out.append((row, f"dataset absent ({why})"))
    return out


def run_dict(row: GridRow, methods: Methods) -> dict:
    """Method preset + variant preset + row overrides as one nested dict (no run identity)."""
    out = deep_merge(methods.presets.get(row.method, {}), methods.variants.get(row.variant, {}))
    return deep_merge(out, row.overrides)


def clip_ffn_layers(cfg: Config) -> None:
    """Drop FFN layer indices the model does not have (DAMEX's [0, 2, 4] on a 2-layer decoder
    keeps [0]); at least layer 0 stays so the method keeps one MoE layer."""
    ffn, model = cfg.model.ffn, cfg.model
    if ffn.layers is None:
        return
    depth = max(model.enc_layers if s == "encoder" else model.dec_layers for s in ffn.stages)
    ffn.layers = [i for i in ffn.layers if 0 <= i < depth] or [0]


def resolve_run(config_path: str | Path, run_id: str,
                overrides: dict | list[str] | None = None) -> Config:
    """The `Config` of grid run `run_id` (`<row id>` or `<row id>-seed~N`)."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = overrides or {}
    base = load_config(config_path, overrides)
    grid = load_grid(base.grid.file)
    m = SEED_RE.match(run_id)
    row = grid.row(m["row"] if m else run_id)
    seed = int(m["seed"]) if m else (base.grid.seeds or [base.train.seed])[0]
    if row.status != "active":
        raise ConfigError(f"{grid.path}: run {row.id!r} ({row.method}) is not reproduced: "
                          "it has no training job")
    ds = row_datasets(row, base.present_datasets())
    if ds is None:
        raise ConfigError(f"{grid.path}: run {row.id!r} needs datasets {_names(row.train)} but "
                          f"data.datasets of {config_path} is {base.data.datasets} "
                          f"(present: {base.present_datasets()})")
    layered = deep_merge(resolve_dict(config_path, overrides), run_dict(row, grid.methods))
    epochs = (layered.get("train") or {}).get("epochs", base.train.epochs)
    if isinstance(epochs, int) and epochs >= 1:      # else left as is: validation names it
        epochs = max(1, round(epochs * base.grid.epochs_scale))
    identity = {"run": {"id": run_id, "method": row.method, "paradigm": row.paradigm,
                        "variant": row.variant, "train_datasets": ds[0], "test_datasets": ds[1],
                        "tables": [CELL_SEP.join(c) for c in row.serves]},
                "train": {"seed": seed, "epochs": epochs}}
    composed = deep_merge(deep_merge(run_dict(row, grid.methods), identity), overrides)
    cfg = load_config(config_path, composed)
    clip_ffn_layers(cfg)
    cfg.validate()
    return cfg
