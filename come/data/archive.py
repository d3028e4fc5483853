"""Safe extraction of zip and tar archives (no zip-slip, no escaping links, no devices)."""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the destination (or is a device/fifo)."""


def _check_name(archive: Path, name: str) -> str:
    """Normalised relative member name, or raise naming the archive and the member."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    norm = posixpath.normpath(clean)
    if norm == ".." or norm.startswith("../") or "/../" in f"/{norm}/":
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes the destination ('..')")
    return norm


def _check_link(archive: Path, member: str, target: str) -> None:
    """A link at `member` pointing at `target` must stay inside the destination."""
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: link {member!r} -> {target!r} is absolute")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(member), target))
    if joined == ".." or joined.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: link {member!r} -> {target!r} escapes the destination")


def archive_kind(path: str | Path) -> str | None:
    """'zip', 'tar' or None (not an archive we extract)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        return None
    return None


def _extract_zip(archive: Path, dest: Path) -> int:
    n = 0
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:                      # check everything before writing anything
            name = _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                _check_link(archive, name, zf.read(info).decode("utf-8", "replace"))
        for info in infos:
            name = _check_name(archive, info.filename)
            target = dest / name
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(info.external_attr >> 16):
                os.symlink(zf.read(info).decode("utf-8"), target)
            else:
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            n += 1
    return n


def _extract_tar(archive: Path, dest: Path) -> int:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            name = _check_name(archive, m.name)
            if m.issym():
                _check_link(archive, name, m.linkname)
            elif m.islnk():
                _check_name(archive, m.linkname)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or fifo")
        tf.extractall(dest, members=members, filter="data")   # stdlib filter as a second guard
    return sum(1 for m in members if not m.isdir())


def safe_extract(archive: str | Path, dest: str | Path) -> int:
    """Extract `archive` into `dest` after checking every member; return the file count."""
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    if kind is None:
        raise ValueError(f"{archive}: not a zip or tar archive")
    dest.mkdir(parents=True, exist_ok=True)
    return _extract_zip(archive, dest) if kind == "zip" else _extract_tar(archive, dest)
