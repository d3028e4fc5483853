"""Safe extraction: zip-slip, absolute paths and escaping links are refused before writing."""
from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from come.data.archive import UnsafeArchiveError, safe_extract


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _zip_symlink(path, name, target):
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return path


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = payload
                tf.addfile(info)
    return path


def test_good_zip_and_tar_extract(tmp_path):
    z = _zip(tmp_path / "a.zip", [("DS/Images/a.png", b"x"), ("DS/bus_data.csv", b"ID\n")])
    assert safe_extract(z, tmp_path / "z") == 2
    assert (tmp_path / "z" / "DS" / "Images" / "a.png").read_bytes() == b"x"
    t = _tar(tmp_path / "a.tgz", [("d/a.txt", "file", b"hello"), ("d/link", "sym", "a.txt")])
    assert safe_extract(t, tmp_path / "t") == 2
    assert (tmp_path / "t" / "d" / "link").read_bytes() == b"hello"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_zip_slip_rejected(tmp_path, name):
    z = _zip(tmp_path / "bad.zip", [("fine.txt", b"1"), (name, b"2")])
    with pytest.raises(UnsafeArchiveError, match="bad.zip"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out" / "fine.txt").exists()      # nothing written before the check
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_escaping_rejected(tmp_path):
    z = _zip_symlink(tmp_path / "l.zip", "d/link", "../../etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="escapes"):
        safe_extract(z, tmp_path / "out")


@pytest.mark.parametrize("members", [
    [("../evil.txt", "file", b"x")],
    [("/evil.txt", "file", b"x")],
    [("d/link", "sym", "../../outside")],
    [("d/link", "sym", "/etc/passwd")],
    [("d/hard", "hard", "../outside")],
])
def test_tar_escapes_rejected(tmp_path, members):
    t = _tar(tmp_path / "bad.tar.gz", [("ok.txt", "file", b"1")] + members)
    with pytest.raises(UnsafeArchiveError, match="bad.tar.gz"):
        safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "out" / "ok.txt").exists()


def test_not_an_archive(tmp_path):
    p = tmp_path / "plain.bin"
    p.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a zip or tar"):
        safe_extract(p, tmp_path / "out")
