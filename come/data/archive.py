"""Safe extraction of zip and tar archives (no zip-slip, no escaping links, no devices).

Zip members are written one by one; before each write the member's real target (every symlink
already extracted followed, `os.path.realpath`) must lie inside the destination, a link is
checked the same way once created, and nothing is ever written through an existing link. Tar
uses the stdlib `filter="data"` on top of the same name checks. A damaged archive (bad CRC,
truncated member) raises `BadArchiveError` naming the archive and the member.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the destination (or is a device/fifo)."""


class BadArchiveError(ValueError):
    """The archive is damaged (bad CRC, truncated or unreadable member)."""


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


def _inside(root: str, path: str | Path) -> bool:
    """True when the real path of `path` (links followed) is `root` or below it."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _make_dirs(archive: Path, root: str, rel: str) -> Path:
    """Create `root/rel` folder by folder; every existing step must really be inside `root`
    (so a link extracted earlier can never lead a mkdir or a write outside)."""
    path = Path(root)
    for part in [p for p in rel.split("/") if p not in ("", ".")]:
        path = path / part
        if path.exists() or path.is_symlink():
            if not _inside(root, path) or not path.is_dir():
                raise UnsafeArchiveError(f"{archive}: {rel!r} resolves outside the destination "
                                         "or through a file (a link extracted before it)")
        else:
            path.mkdir()
    return path


def _zip_target(archive: Path, root: str, name: str) -> Path:
    """Where file member `name` lands: its folder really inside `root`, the path itself not an
    existing link (no write through a link, e.g. a duplicate member name)."""
    parent = _make_dirs(archive, root, posixpath.dirname(name))
    target = parent / posixpath.basename(name)
    if target.is_symlink():
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written through a link "
                                 "(duplicate member name)")
    return target


def _damaged(archive: Path, name: str, exc: BaseException) -> BadArchiveError:
    return BadArchiveError(f"{archive}: member {name!r} is damaged ({exc}); "
                           "delete the download and fetch it again")


def _extract_zip(archive: Path, dest: Path) -> int:
    n = 0
    root = os.path.realpath(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadArchiveError(f"{archive}: not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        links: dict[str, str] = {}
        for info in infos:                      # check every name before writing anything
            name = _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                try:
                    links[info.filename] = zf.read(info).decode("utf-8", "replace")
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise _damaged(archive, info.filename, exc) from None
                _check_link(archive, name, links[info.filename])
        for info in infos:
            name = _check_name(archive, info.filename)
            if info.is_dir():
                _make_dirs(archive, root, name)
                continue
            target = _zip_target(archive, root, name)
            if info.filename in links:
                os.symlink(links[info.filename], target)
                if not _inside(root, target):   # chained links: resolve what was just made
                    target.unlink()
                    raise UnsafeArchiveError(f"{archive}: link {name!r} -> {links[info.filename]!r} "
                                             "resolves outside the destination")
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                try:
                    with zf.open(info) as src, os.fdopen(os.open(target, flags, 0o666), "wb") as out:
                        shutil.copyfileobj(src, out)
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise _damaged(archive, info.filename, exc) from None
            n += 1
    return n


def _extract_tar(archive: Path, dest: Path) -> int:
    try:
        tf = tarfile.open(archive)
        members = tf.getmembers()
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BadArchiveError(f"{archive}: damaged tar archive ({exc})") from None
    with tf:
        for m in members:
            name = _check_name(archive, m.name)
            if m.issym():
                _check_link(archive, name, m.linkname)
            elif m.islnk():
                _check_name(archive, m.linkname)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or fifo")
        try:
            tf.extractall(dest, members=members, filter="data")   # stdlib filter as a second guard
        except tarfile.FilterError as exc:
            raise UnsafeArchiveError(f"{archive}: {exc}") from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise BadArchiveError(f"{archive}: damaged tar archive ({exc}); delete the download "
                                  "and fetch it again") from None
    return sum(1 for m in members if not m.isdir())


def safe_extract(archive: str | Path, dest: str | Path) -> int:
    """Extract `archive` into `dest` after checking every member; return the file count."""
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    if kind is None:
        raise ValueError(f"{archive}: not a zip or tar archive")
    dest.mkdir(parents=True, exist_ok=True)
    return _extract_zip(archive, dest) if kind == "zip" else _extract_tar(archive, dest)
