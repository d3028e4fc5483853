"""README's generated blocks: the Measured table and the demo preview (come.reports.readme)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from come.cli import main as come_main
from come.reports.readme import (Block, fmt_wall, load_measured, preview_table, read_block, render_measured,
                                 replace_block)
from come.reports.render import LONG_COLUMNS

REPO = Path(__file__).resolve().parents[2]
REC = {"name": "make demo", "command": "make demo", "wall_s": 754.2, "machine": "2 cores, 24 GiB, x, no GPU",
       "commit": "abc1234", "date": "2026-11-29", "note": "venv excluded"}


def test_wall_time_format():
    assert fmt_wall(42.4) == "42 s"
    assert fmt_wall(754.2) == "12 m 34 s"
    assert fmt_wall(3725) == "1 h 2 m 05 s"


def test_measured_table_has_one_line_per_record():
    text = render_measured([REC, {**REC, "name": "make test", "command": "make test", "wall_s": 95, "note": ""}])
    lines = text.strip().splitlines()
    assert len(lines) == 4
    assert "| make demo (venv excluded) | `make demo` | 12 m 34 s |" in lines[2]
    assert "| make test | `make test` | 1 m 35 s |" in lines[3]


def test_bad_measurement_file_is_named(tmp_path):
    bad = tmp_path / "measured.json"
    bad.write_text(json.dumps([{"name": "x"}]))
    with pytest.raises(ValueError, match="measured.json: record 0 lacks command"):
        load_measured(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="measured.json: not valid JSON"):
        load_measured(bad)


def test_replace_block_keeps_the_rest_and_needs_markers():
    text = "head\n<!-- measured:begin -->\nold\n<!-- measured:end -->\ntail\n"
    new = replace_block(text, Block("measured", "new\n"))
    assert new == "head\n<!-- measured:begin -->\nnew\n<!-- measured:end -->\ntail\n"
    assert read_block(new, "measured") == "new\n"
    with pytest.raises(ValueError, match="NOTES.md: markers"):
        replace_block("no markers", Block("measured", "x"), "NOTES.md")


def _long_csv(path: Path) -> Path:
    rows = [dict.fromkeys(LONG_COLUMNS, "") for _ in range(3)]
    for r, (method, ours, lo, hi, paper) in zip(rows, [("DINO", 0.41, 0.35, 0.47, 0.5217),
                                                      ("COME", 0.45, 0.40, 0.50, 0.6046),
                                                      ("DINO", 0.2, 0.1, 0.3, 0.5)]):
        r.update(table="table2_main", paradigm="inter-organ", method=method, column="Mean", metric="AP",
                 ours=ours, ci_lo=lo, ci_hi=hi, paper=paper, diff=round(ours - paper, 6), status="ok")
    rows[2]["paradigm"] = "single"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, LONG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def test_preview_table_takes_the_paradigm_rows_with_intervals(tmp_path):
    text = preview_table(_long_csv(tmp_path / "t_long.csv"))
    assert "| DINO | 0.410 [0.350, 0.470] | 0.522 | -0.112 |" in text
    assert "| COME | 0.450 [0.400, 0.500] | 0.605 | -0.155 |" in text
    assert "0.200" not in text  # the single-paradigm row is not in the excerpt


def test_readme_command_writes_preview_and_table(tmp_path):
    res = tmp_path / "results"
    (res / "tables").mkdir(parents=True)
    (res / "figures").mkdir()
    _long_csv(res / "tables" / "table2_main_long.csv")
    Image.new("RGB", (1600, 800), "white").save(res / "figures" / "fig_routing_heatmap.png")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- measured:begin -->\n<!-- measured:end -->\n"
                      "<!-- preview:begin -->\n<!-- preview:end -->\n")
    measured = tmp_path / "measured.json"
    measured.write_text(json.dumps([REC]))
    args = ["readme", "--readme", str(readme), "--measured", str(measured)]
    assert come_main(args + ["--check"]) == 1
    assert come_main(args + ["--preview-from", str(res), "--preview-out", str(tmp_path / "preview")]) == 0
    assert come_main(args + ["--check"]) == 0
    text = readme.read_text()
    assert "12 m 34 s" in text and "0.450 [0.400, 0.500]" in text
    with Image.open(tmp_path / "preview" / "figure.png") as im:
        assert im.width == 720


def test_repository_readme_measured_table_is_generated():
    """README's figures come from docs/measured.json (benchmarks/measure.py), not a hand edit.
    Mutation caught: editing a wall time in README.md without re-running the measurement."""
    assert come_main(["readme", "--readme", str(REPO / "README.md"),
                      "--measured", str(REPO / "docs" / "measured.json"), "--check"]) == 0
