"""`come fetch` against a real HTTP server on 127.0.0.1 with Range support (started here)."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from come.cli import main


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("BUSBRA/bus_data.csv", "ID,Case\n")
        zf.writestr("BUSBRA/Images/bus_0001-l.png", b"\x89PNG" + bytes(range(256)) * 40)
    return buf.getvalue()


def test_fetch_resumes_and_verifies(server, tmp_path):
    base, handler = server
    body = _zip_bytes()
    handler.files["/busbra.zip"] = body
    sha = hashlib.sha256(body).hexdigest()
    dest = tmp_path / "raw" / "BUSBRA"
    part = dest.parent / f".{dest.name}.download.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[: len(body) // 2])                  # an interrupted earlier download
    part.with_name(part.name + ".json").write_text(json.dumps({"url": f"{base}/busbra.zip"}))
    rc = main(["fetch", "BUSBRA", "--dest", str(dest), "--url", f"{base}/busbra.zip", "--sha256", sha])
    assert rc == 0
    assert handler.ranges == [f"bytes={len(body) // 2}-"]    # resumed with a Range request
    assert (dest / "BUSBRA" / "bus_data.csv").read_text() == "ID,Case\n"
    assert not part.exists()


def test_wrong_checksum_leaves_nothing(server, tmp_path, capsys):
    base, handler = server
    handler.files["/busbra.zip"] = _zip_bytes()
    dest = tmp_path / "raw" / "BUSBRA"
    rc = main(["fetch", "BUSBRA", "--dest", str(dest), "--url", f"{base}/busbra.zip", "--sha256", "0" * 64])
    assert rc == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not dest.exists()
    assert list((tmp_path / "raw").iterdir()) == []           # no part file, no temp folder


def test_http_error_is_named(server, tmp_path, capsys):
    base, _ = server
    rc = main(["fetch", "BUSBRA", "--dest", str(tmp_path / "d"), "--url", f"{base}/missing.zip"])
    assert rc == 1 and "HTTP 404" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_manual_source_prints_steps_exit_3(tmp_path, capsys):
    rc = main(["fetch", "TNSCUI", "--dest", str(tmp_path / "raw" / "TNSCUI")])
    out = capsys.readouterr().out
    assert rc == 3
    assert "tn-scui2020.grand-challenge.org" in out and str(tmp_path / "raw" / "TNSCUI") in out
    assert "come convert TNSCUI" in out
    assert not (tmp_path / "raw").exists()


def test_manual_source_with_files_in_place_succeeds(tmp_path, capsys):
    dest = tmp_path / "raw" / "TUS"
    (dest / "images").mkdir(parents=True)
    assert main(["fetch", "TUS", "--dest", str(dest)]) == 0
    assert "already placed" in capsys.readouterr().out


def test_config_redirects_registry_entry(tmp_path, capsys):
    cfg = Path(__file__).resolve().parents[2] / "config" / "config.yaml"
    rc = main(["fetch", "DDTI", "--config", str(cfg), "--set", "data.registry_entries.DDTI=DDTI_PRE",
               "--dest", str(tmp_path / "d")])
    assert rc == 3 and "cropped/, mask/ and diagnosis.csv" in capsys.readouterr().out


def _layout(root: Path, kind: str) -> Path:
    """An empty-file skeleton of one DDTI release's documented layout under `root`."""
    if kind == "DDTI_PRE":
        (root / "ddti" / "cropped").mkdir(parents=True)
        (root / "ddti" / "mask").mkdir()
        (root / "ddti" / "diagnosis.csv").write_text("1_1(1),4a,1\n")
    elif kind == "DDTI_NEU":
        for part in ("images/training", "annotations/training"):
            (root / "DDTI" / part).mkdir(parents=True)
    else:
        root.mkdir(parents=True)
        (root / "1.xml").write_text("<case/>")
    return root


@pytest.mark.parametrize("kind", ["DDTI_PRE", "DDTI_NEU", "DDTI"])
def test_auto_registry_entry_recognises_the_ddti_release(tmp_path, kind):
    """`data.registry_entries: {DDTI: auto}` (config/real-cpu.yaml) picks the release whose
    documented layout the raw folder holds. Mutation caught: detection returning one fixed
    release, or resolve_entry ignoring `auto` (get_entry('auto') fails)."""
    from argparse import Namespace

    from come.commands.fetch import resolve_entry
    cfg = Path(__file__).resolve().parents[2] / "config" / "real-cpu.yaml"
    args = Namespace(name="DDTI", config=str(cfg), overrides=[], registry=None)
    raw = _layout(tmp_path / "raw", kind)
    assert resolve_entry(args, raw=raw).name == kind
    assert resolve_entry(args).name == "DDTI"                  # nothing placed yet (come fetch)


def test_auto_registry_entry_refuses_an_ambiguous_folder(tmp_path, capsys):
    raw = _layout(tmp_path / "raw", "DDTI_PRE")
    _layout(raw, "DDTI_NEU")
    cfg = Path(__file__).resolve().parents[2] / "config" / "real-cpu.yaml"
    rc = main(["convert", "DDTI", "--config", str(cfg), "--raw", str(raw), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and str(raw) in err and "several DDTI releases (DDTI_PRE, DDTI_NEU)" in err
    assert not (tmp_path / "out").exists()
