"""The free-disk preflight `make venv` runs before pip: a clear refusal instead of Errno 28."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from come.utils import diskspace

REPO = Path(__file__).resolve().parents[2]
Usage = namedtuple("Usage", "total used free")


def fake_disk(monkeypatch, free_gib: float) -> list[Path]:
    """Pretend the disk has `free_gib` free; record which directory was asked about."""
    asked: list[Path] = []

    def usage(path):
        asked.append(Path(path))
        return Usage(100 * diskspace.GIB, 0, int(free_gib * diskspace.GIB))
    monkeypatch.setattr(diskspace.shutil, "disk_usage", usage)
    return asked


def test_refuses_with_the_directory_and_both_amounts(tmp_path, monkeypatch):
    asked = fake_disk(monkeypatch, 3.2)
    target = tmp_path / "not" / "yet" / ".venv"
    with pytest.raises(diskspace.DiskSpaceError) as err:
        diskspace.require_free(target, 8, "a new Python environment")
    msg = str(err.value)
    assert str(target) in msg and "3.2 GiB free" in msg and "about 8 GiB" in msg
    assert "a new Python environment" in msg
    assert asked == [tmp_path]                 # the nearest directory that exists


def test_passes_when_enough_is_free(tmp_path, monkeypatch):
    fake_disk(monkeypatch, 8.0)
    assert diskspace.require_free(tmp_path, 8, "x") == pytest.approx(8.0)
    with pytest.raises(ValueError):
        diskspace.require_free(tmp_path, -1, "x")


def test_main_exit_codes(tmp_path, monkeypatch, capsys):
    fake_disk(monkeypatch, 1.0)
    assert diskspace.main([str(tmp_path), "0.5"]) == 0
    assert diskspace.main([str(tmp_path), "2", "the demo"]) == 1
    assert "the demo needs about 2 GiB" in capsys.readouterr().err
    assert diskspace.main([str(tmp_path)]) == 2


def test_runs_by_path_with_the_standard_library_only(tmp_path):
    """`make venv` calls it with the system Python before anything is installed."""
    script = REPO / "come" / "utils" / "diskspace.py"
    ok = subprocess.run([sys.executable, "-S", "-I", str(script), str(tmp_path), "0"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    huge = shutil.disk_usage(tmp_path).total / diskspace.GIB * 2
    bad = subprocess.run([sys.executable, "-S", "-I", str(script), str(tmp_path), str(huge)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and str(tmp_path) in bad.stderr


def test_make_venv_checks_the_disk_before_creating_the_environment():
    make = (REPO / "Makefile").read_text()
    rule = make[make.index("$(BIN)/come:"):]
    assert rule.index("diskspace.py $(VENV)") < rule.index("-m venv $(VENV)")
