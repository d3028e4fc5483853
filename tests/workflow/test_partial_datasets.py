"""Partial dataset sets (issue 16): `data.datasets: auto`, rows planned out with a reason,
coverage and table cells saying "dataset absent", group rows on the present members.

Fails on the old code: `data.datasets: auto` was a type error, `planned_out` and
`Coverage.absent` did not exist, and table cells of absent datasets said "missing".
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from come.config import ConfigError, load_config
from come.reports.paper import paper_layouts
from come.reports.render import to_markdown
from come.reports.tables import build_table, build_tables, load_paper_notes
from come.workflow.coverage import coverage
from come.workflow.grid import expand_runs, load_grid, planned_out
from come.workflow.plan import Plan

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def _config(tmp_path: Path, present: list[str], datasets="auto") -> Path:
    raw = tmp_path / "raw"
    for ds in present:
        (raw / ds).mkdir(parents=True, exist_ok=True)
        (raw / ds / "file.png").write_bytes(b"x")
    (raw / "BUSI").mkdir(parents=True, exist_ok=True)
    (raw / "BUSI" / ".fetched").write_text("")                # hidden files do not count
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"base": str(REPO / "config" / "config.yaml"),
                                    "data": {"source": "real", "datasets": datasets, "raw_root": str(raw)}}))
    return path


def test_auto_takes_the_present_raw_folders_and_plans_rows_out(tmp_path):
    cfg = load_config(_config(tmp_path, ["BUSBRA", "DDTI"]))
    assert cfg.present_datasets() == ["BUSBRA", "DDTI"]
    assert "no files under" in cfg.absent_datasets()["BUSI"]
    grid = load_grid(cfg.grid.file, cfg.paper_tables)
    runs = expand_runs(cfg, grid)
    assert runs and all(set(s.train_datasets) <= {"BUSBRA", "DDTI"} for s in runs)
    inter = [s for s in runs if s.row.paradigm == "inter-organ"]
    assert inter and all(s.train_datasets == ["BUSBRA", "DDTI"] for s in inter)   # group on present members
    out = planned_out(cfg, grid)
    assert out and all(reason.startswith("dataset absent (") for _, reason in out)
    busi = [reason for row, reason in out if row.train == "BUSI"]
    assert busi and "BUSI: no files under" in busi[0]
    cov = coverage(cfg, grid)
    assert cov.missing == [] and cov.absent
    assert {r["dataset"] for r in cov.absent if r["table"] == "table2_main"} >= {"BUSI", "TUD"}
    # one more dataset placed: its runs appear with no edit
    (tmp_path / "raw" / "BUSI" / "a.png").write_bytes(b"x")
    assert "BUSI" in load_config(tmp_path / "c.yaml").present_datasets()


def test_no_dataset_present_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"finds no dataset: BUSI: no files under"):
        Plan.build(_config(tmp_path, []))
    with pytest.raises(ConfigError, match="data.datasets"):
        load_config(_config(tmp_path, [], datasets="everything"))


def test_table_cells_say_dataset_absent_and_name_the_present_members():
    lay = paper_layouts(REPO / "config" / "paper_tables.csv")["table2_main"]
    rows = [{"table": "table2_main", "paradigm": "inter-organ", "method": "DINO", "variant": "",
             "dataset": d, "metric": "AP", "value": v, "seed": 0, "run": "r"}
            for d, v in (("BUSBRA", 0.4), ("DDTI", 0.6))]
    absent = {d: "no files under data/raw/" + d for d in ("BUSI", "BUV", "BUSC", "TUD", "TUS", "TNSCUI")}
    t = build_table(lay, rows, absent=absent)
    key = ("inter-organ", "DINO", "")
    assert t.cells[(key, "BUSI")].status == "dataset absent"
    assert t.cells[(key, "BUSI")].note == "no files under data/raw/BUSI"
    mean = t.cells[(key, "Mean")]
    assert mean.ours == pytest.approx(np.mean([0.4, 0.6])) and mean.status == "partial"
    assert "BUSBRA, DDTI" in mean.note
    assert t.cells[(("single", "DINO", ""), "BUSI")].status == "dataset absent"
    md = to_markdown(t)
    assert "dataset absent" in md and "Note: dataset absent: BUSI (no files under data/raw/BUSI)" in md


def test_paper_notes_are_printed_under_their_tables():
    notes = load_paper_notes(REPO / "config" / "paper_tables.csv")
    tables = {t.layout.table: t for t in build_tables(paper_layouts(REPO / "config" / "paper_tables.csv"),
                                                      [], notes=notes)}
    assert any("E=8 row" in n for n in tables["appendix_table2_experts_thyroid"].notes)
    assert any("Top-K=1" in n for n in tables["table3_experts_topk"].notes)
    assert "Note: The paper prints the columns TUD, TUS, DDTI" in to_markdown(tables["appendix_table2_experts_thyroid"])


def test_real_cpu_dry_run_passes_the_config_and_plans_present_data_only(tmp_path):
    """config/real-cpu.yaml on BUS-BRA, DDTI and TUS folders: convert and tables get the config,
    TUS's split aligns to DDTI's, nothing is planned for the absent datasets."""
    import subprocess

    from .helpers import copy_repo, tool, tool_env
    repo = copy_repo(tmp_path / "repo")
    for ds in ("BUSBRA", "DDTI", "TUS"):
        (repo / "data" / "raw" / ds).mkdir(parents=True)
        (repo / "data" / "raw" / ds / "x.png").write_bytes(b"x")
    res = subprocess.run([tool("snakemake"), "-n", "-p", "all", "--configfile", "config/real-cpu.yaml"],
                         cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    for ds in ("BUSBRA", "DDTI", "TUS"):
        assert f"come convert {ds} --config config/real-cpu.yaml" in out
    assert "come convert BUSI" not in out and "results/splits/BUSI/" not in out
    assert re.search(r"come split --coco results/data/TUS/annotations.json .*--align-with results/splits/DDTI", out)
    assert "come tables --config config/real-cpu.yaml" in out
    assert "come summarize --config config/real-cpu.yaml" in out


def test_real_smoke_is_real_cpu_cut_short_under_its_own_folder(tmp_path, monkeypatch):
    """config/real-smoke.yaml (README's first check on real data) must plan exactly real-cpu's
    runs, change nothing of the model, data or evaluation, and keep every path under
    results/real-smoke (a smoke checkpoint or expert must never be found by the real run).
    Mutation caught: a root left at results/ (experts shared with real-cpu)."""
    from dataclasses import asdict

    from come.config import load_config
    from come.workflow.plan import Plan
    real, smoke = (load_config(REPO / "config" / f"{n}.yaml") for n in ("real-cpu", "real-smoke"))
    for section in ("model", "eval"):
        assert asdict(getattr(real, section)) == asdict(getattr(smoke, section))
    rd, sd = asdict(real.data), asdict(smoke.data)
    assert {k: v for k, v in rd.items() if k not in ("root", "splits_root")} == \
           {k: v for k, v in sd.items() if k not in ("root", "splits_root")}
    assert smoke.train.epochs == 1 and smoke.train.max_steps_per_epoch == 2
    for path in (smoke.results, smoke.data.root, smoke.data.splits_root, smoke.experts.root,
                 smoke.experts.prompts_root):
        assert Path(path).parts[:2] == ("results", "real-smoke"), path
    for path in (real.results, real.data.root, real.data.splits_root, real.experts.root, real.experts.prompts_root):
        assert Path(path).parts[:2] != ("results", "real-smoke"), path
    for ds in ("BUSBRA", "DDTI"):                                   # data.datasets: auto finds these
        (tmp_path / "data" / "raw" / ds).mkdir(parents=True)
        (tmp_path / "data" / "raw" / ds / "x.png").write_bytes(b"x")
    import shutil
    shutil.copytree(REPO / "config", tmp_path / "config")         # the grid and registry paths are repo-relative
    monkeypatch.chdir(tmp_path)
    runs = Plan.build("config/real-smoke.yaml").run_ids
    assert len(runs) > 10 and runs == Plan.build("config/real-cpu.yaml").run_ids


def test_a_present_column_of_a_planned_out_row_says_dataset_absent(tmp_path):
    """Found by the real-smoke run: Table 4 trains on BUSI and tests on BUS-BRA too; with BUSI
    absent and BUS-BRA present, its BUS-BRA cells said "missing". Mutation caught: cells that
    a runnable row fills (Table 2's single DINO on BUS-BRA) listed as absent, or build_table
    ignoring `absent_cells`."""
    from come.workflow.coverage import absent_cells
    cfg = load_config(_config(tmp_path, ["BUSBRA", "DDTI"]))
    cells = absent_cells(cfg, load_grid(cfg.grid.file, cfg.paper_tables))
    t4 = ("table4_domain_generalization", "single (train BUSI only)", "COME", "BUSI", "BUSBRA")
    assert t4 in cells and "BUSI: no files under" in cells[t4]
    assert ("table2_main", "single", "DINO", "", "BUSBRA") not in cells
    assert not [k for k in cells if k[0] == "table2_main" and k[-1] in ("BUSBRA", "DDTI")]
    lay = paper_layouts(REPO / "config" / "paper_tables.csv")["table4_domain_generalization"]
    absent = {d: "no files under data/raw/" + d for d in ("BUSI", "BUV", "BUSC")}
    t = build_table(lay, [], absent=absent, absent_cells=cells)
    key = ("single (train BUSI only)", "COME", "BUSI")
    assert t.cells[(key, "BUSBRA")].status == "dataset absent" and "BUSI" in t.cells[(key, "BUSBRA")].note
    assert build_table(lay, [], absent=absent).cells[(key, "BUSBRA")].status == "missing"
