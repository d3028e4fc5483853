"""Hostile and damaged downloads, built here and served by a real http.server on 127.0.0.1.

Each test names the old behaviour it guards against (issue 15, items 1, 3, 4 and the bad-CRC
part of 6); the outcome is asserted and nothing outside the destination may change.
"""
from __future__ import annotations

import hashlib
import io
import json
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from come.cli import main

from .helpers import snapshot


def _zip(members: list[tuple[str, str, bytes | str]]) -> bytes:
    """members: (name, kind "file"|"dir"|"link", payload) in archive order."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # duplicate names on purpose
        with zipfile.ZipFile(buf, "w") as zf:
            for name, kind, payload in members:
                info = zipfile.ZipInfo(name)
                if kind == "link":
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                elif kind == "dir":
                    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, payload)
    return buf.getvalue()


def _good_zip() -> bytes:
    return _zip([("BUSBRA/bus_data.csv", "file", "ID,Case\n"),
                 ("BUSBRA/Images/bus_0001-l.png", "file", b"\x89PNG" + bytes(range(256)) * 40)])


def _fetch(base: str, path: str, dest: Path, *extra: str) -> int:
    return main(["fetch", "BUSBRA", "--dest", str(dest), "--url", f"{base}{path}", *extra])


HOSTILE = {
    # old code: sub/b -> .. and a -> sub/b/.. pass the textual check; a/evil.txt lands beside dest
    "chained_links": [("sub/", "dir", b""), ("sub/b", "link", ".."), ("a", "link", "sub/b/.."),
                      ("a/evil.txt", "file", b"pwned")],
    # old code: f -> sub/b/../evil.txt is textually inside; the duplicate member f writes through it
    "duplicate_through_link": [("sub/", "dir", b""), ("sub/b", "link", ".."),
                               ("f", "link", "sub/b/../evil.txt"), ("f", "file", b"pwned")],
    # old code: a second member of the same name is written through an inner link
    "duplicate_inner_link": [("g", "file", b"keep"), ("f", "link", "g"), ("f", "file", b"pwned")],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_zip_writes_nothing_outside(server, tmp_path, kind, capsys):
    """Item 1: refused with a named error (exit 1); no file appears or changes outside dest."""
    base, handler = server
    handler.files["/x.zip"] = _zip(HOSTILE[kind])
    (tmp_path / "raw").mkdir()
    before = snapshot(tmp_path)
    assert _fetch(base, "/x.zip", tmp_path / "raw" / "BUSBRA") == 1
    err = capsys.readouterr().err
    assert "x.zip" in err or "download.part" in err
    assert "outside" in err or "through a link" in err
    assert snapshot(tmp_path) == before                      # no evil.txt, no part, no temp dir


def test_bad_crc_is_a_named_error(server, tmp_path, capsys):
    """Item 6 (zip with a bad CRC): old code let BadZipFile escape as a traceback."""
    base, handler = server
    body = bytearray(_zip([("BUSBRA/bus_data.csv", "file", b"ID,Case\n" * 50)]))
    at = bytes(body).index(b"ID,Case") + 3
    body[at] ^= 0xFF                                         # flip a data byte: CRC no longer matches
    handler.files["/crc.zip"] = bytes(body)
    (tmp_path / "raw").mkdir()
    assert _fetch(base, "/crc.zip", tmp_path / "raw" / "BUSBRA") == 1
    err = capsys.readouterr().err
    assert "BUSBRA/bus_data.csv" in err and "damaged" in err and "Traceback" not in err
    assert list((tmp_path / "raw").iterdir()) == []          # part and temp folder deleted


def test_force_replaces_only_what_the_archive_brings(server, tmp_path, capsys):
    """Item 3: old `--force` emptied dest (rmtree) before renaming the new files in."""
    base, handler = server
    handler.files["/busbra.zip"] = _good_zip()
    dest = tmp_path / "raw" / "BUSBRA"
    (dest / "BUSBRA").mkdir(parents=True)
    (dest / "thesis.tex").write_text("years of work")
    (dest / "BUSBRA" / "bus_data.csv").write_text("old")
    (dest / "BUSBRA" / "notes.txt").write_text("mine")
    assert _fetch(base, "/busbra.zip", dest) == 0            # non-empty dest without --force: skipped
    assert (dest / "BUSBRA" / "bus_data.csv").read_text() == "old"
    assert _fetch(base, "/busbra.zip", dest, "--force") == 0
    assert (dest / "thesis.tex").read_text() == "years of work"
    assert (dest / "BUSBRA" / "notes.txt").read_text() == "mine"
    assert (dest / "BUSBRA" / "bus_data.csv").read_text() == "ID,Case\n"
    assert (dest / "BUSBRA" / "Images" / "bus_0001-l.png").is_file()
    assert str(dest / "BUSBRA" / "bus_data.csv") in capsys.readouterr().out   # listed as replaced


def _part(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.download.part"


def test_stale_part_of_another_url_is_dropped(server, tmp_path):
    """Item 4: old code resumed any part with a Range request, whatever URL it came from."""
    base, handler = server
    other, body = b"Z" * 3000, _good_zip()
    handler.files["/busbra.zip"] = body
    dest = tmp_path / "raw" / "BUSBRA"
    part = _part(dest)
    part.parent.mkdir(parents=True)
    part.write_bytes(other)                                  # left by a fetch of another URL
    part.with_name(part.name + ".json").write_text(json.dumps({"url": f"{base}/other.zip"}))
    sha = hashlib.sha256(body).hexdigest()
    assert _fetch(base, "/busbra.zip", dest, "--sha256", sha) == 0
    assert handler.ranges == []                              # not resumed
    assert not part.exists() and not part.with_name(part.name + ".json").exists()


def test_416_is_not_taken_as_complete(server, tmp_path):
    """Item 4: old code took any 416 as "complete" and extracted the stale (too long) part."""
    base, handler = server
    body = _good_zip()
    handler.files["/busbra.zip"] = body
    dest = tmp_path / "raw" / "BUSBRA"
    part = _part(dest)
    part.parent.mkdir(parents=True)
    part.write_bytes(body + b"garbage")                      # longer than the file: server says 416
    part.with_name(part.name + ".json").write_text(json.dumps({"url": f"{base}/busbra.zip"}))
    assert _fetch(base, "/busbra.zip", dest, "--sha256", hashlib.sha256(body).hexdigest()) == 0
    assert handler.ranges == [f"bytes={len(body) + 7}-"]     # tried, refused, restarted from 0
    assert (dest / "BUSBRA" / "bus_data.csv").read_text() == "ID,Case\n"


def test_failed_fetch_deletes_the_part(server, tmp_path, capsys):
    """Item 4: a fetch that fails (bad CRC, then HTTP 404) deletes its part; old code kept it
    (and resumed it on the retry)."""
    base, handler = server
    body = bytearray(_good_zip())
    body[bytes(body).index(b"ID,Case")] ^= 0xFF
    handler.files["/busbra.zip"] = bytes(body)
    dest = tmp_path / "raw" / "BUSBRA"
    (tmp_path / "raw").mkdir()
    before = snapshot(tmp_path)
    assert _fetch(base, "/busbra.zip", dest) == 1
    assert snapshot(tmp_path) == before
    part = _part(dest)
    part.write_bytes(b"x" * 10)
    part.with_name(part.name + ".json").write_text(json.dumps({"url": f"{base}/gone.zip"}))
    assert _fetch(base, "/gone.zip", dest) == 1 and "HTTP 404" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
    handler.files["/busbra.zip"] = _good_zip()
    assert _fetch(base, "/busbra.zip", dest) == 0 and handler.ranges == []


def test_cut_transfer_keeps_the_part_and_resumes(server, tmp_path, capsys):
    """Item 4: only a transfer cut mid-body keeps its part (with its URL record); the retry
    resumes it with a Range request and the ETag it was downloaded under."""
    base, handler = server
    body = _good_zip()
    handler.files["/busbra.zip"], handler.etags["/busbra.zip"] = body, '"v1"'
    handler.cut["/busbra.zip"] = 1000
    dest = tmp_path / "raw" / "BUSBRA"
    sha = hashlib.sha256(body).hexdigest()
    assert _fetch(base, "/busbra.zip", dest, "--sha256", sha) == 1
    assert "run again to resume" in capsys.readouterr().err
    part = _part(dest)
    assert part.stat().st_size == 1000 and not dest.exists()
    assert json.loads(part.with_name(part.name + ".json").read_text())["etag"] == '"v1"'
    assert _fetch(base, "/busbra.zip", dest, "--sha256", sha) == 0
    assert handler.ranges == ["bytes=1000-"] and not part.exists()
    assert (dest / "BUSBRA" / "bus_data.csv").read_text() == "ID,Case\n"


def test_file_url_needs_a_flag(tmp_path, capsys):
    """Item 4: old code fetched any urllib scheme (file://) without being asked."""
    src = tmp_path / "mirror.zip"
    src.write_bytes(_good_zip())
    dest = tmp_path / "raw" / "BUSBRA"
    assert main(["fetch", "BUSBRA", "--dest", str(dest), "--url", src.as_uri()]) == 1
    assert "only http(s)" in capsys.readouterr().err and not dest.exists()
    assert main(["fetch", "BUSBRA", "--dest", str(dest), "--url", src.as_uri(), "--allow-file-url"]) == 0
    assert (dest / "BUSBRA" / "bus_data.csv").is_file()
