"""`come convert` never deletes what it did not make (issue 15, items 2 and 8)."""
from __future__ import annotations

import json
import os
import stat

import pytest

from come.cli import main

from .helpers import busbra_raw, snapshot, write_png


def _convert(raw, out, name="BUSBRA") -> int:
    return main(["convert", name, "--raw", str(raw), "--out", str(out)])


@pytest.mark.parametrize("where", ["equal", "inside", "above"])
def test_out_overlapping_raw_is_refused(tmp_path, where, capsys):
    """Item 2: old code converted into a temp twin, then rmtree'd --out (= the raw data)."""
    raw = busbra_raw(tmp_path / "data" / "raw")
    out = {"equal": raw, "inside": raw / "converted", "above": tmp_path / "data"}[where]
    before = snapshot(tmp_path)
    assert _convert(raw, out) == 1
    assert f"is {'equal to' if where == 'equal' else where} --raw" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_out_holding_other_files_is_refused(tmp_path, capsys):
    """Item 2: old code deleted a non-empty --out wholesale (here: a thesis)."""
    raw = busbra_raw(tmp_path / "raw")
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert _convert(raw, out) == 1
    assert "not a previous conversion" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _convert(raw, empty) == 0                          # an empty folder is fine
    assert _convert(raw, empty) == 0                          # and so is a previous conversion
    (empty / "annotations.json").unlink()                     # as Snakemake does before a re-run
    assert _convert(raw, empty) == 0


def test_converted_files_follow_the_umask(tmp_path):
    """Item 8: old code left the folder 0700 (mkdtemp) and every JSON 0600 (mkstemp)."""
    raw = busbra_raw(tmp_path / "raw")
    old = os.umask(0o022)
    try:
        assert _convert(raw, tmp_path / "out") == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    for name in ("annotations.json", "quarantine.json", "convert_summary.json"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o644, name


def test_binary_csv_names_the_file(tmp_path, capsys):
    """Item 8: old code printed a bare 'utf-8 codec can't decode' without the file."""
    raw = busbra_raw(tmp_path / "raw")
    (raw / "bus_data.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)))
    assert _convert(raw, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "bus_data.csv" in err and "not a UTF-8 text file" in err


def test_non_image_in_images_is_quarantined(tmp_path):
    """Item 8: old code skipped Images/notes.docx without a quarantine entry."""
    raw = busbra_raw(tmp_path / "raw")
    (raw / "Images" / "notes.docx").write_bytes(b"PK\x03\x04 not an image")
    assert _convert(raw, tmp_path / "out") == 0
    q = json.loads((tmp_path / "out" / "quarantine.json").read_text())
    assert [(e["file"], e["reason"]) for e in q["entries"]] == [("Images/notes.docx", "not_an_image")]


def test_ddti_unknown_tirads_grade_is_flagged(tmp_path):
    """Item 8: old code took TI-RADS 'banana' as unknown pathology without a flag."""
    raw = tmp_path / "raw"
    rows = []
    for k, grade in enumerate(["3", "banana"], start=1):
        write_png(raw / "cropped" / f"{k}_1(1).png", seed=k)
        write_png(raw / "mask" / f"{k}_1(1).png", box=(5, 5, 10, 8))
        rows.append(f"{k}_1(1),{grade},")
    (raw / "diagnosis.csv").write_text("\n".join(rows) + "\n")
    assert _convert(raw, tmp_path / "out", "DDTI_PRE") == 0
    q = json.loads((tmp_path / "out" / "quarantine.json").read_text())
    assert [(e["file"], e["reason"], e["action"]) for e in q["entries"]] == [
        ("2_1(1).png", "unknown_label", "flagged")]
