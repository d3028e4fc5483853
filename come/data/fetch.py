"""`come fetch`: HTTP(S) download with resume (Range), sha256 check and safe placement.

Flow: download to `.<dest>.download.part` beside the destination, with `<part>.json` recording
the URL, size and ETag it holds. A part is resumed with a Range request only for the same URL
(and ETag); otherwise it is dropped. Any failure except a transfer cut mid-body (the case resume
exists for) deletes the part, so a stale part never poisons a retry. Then verify sha256, extract
archives into a temp folder and move the files into `dest`: a new `dest` is renamed into place;
an existing one only gets the files the archive brings (nothing else in it is touched).
A wrong checksum or a damaged archive deletes the download and leaves `dest` untouched.
Manual-only sources print where to get the files and where to put them (exit code 3).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from come.data.archive import archive_kind, safe_extract
from come.data.registry import DatasetEntry
from come.utils.errors import ComeError
from come.utils.io import public_mode, write_json

EXIT_MANUAL = 3
CHUNK = 1 << 16
SCHEMES = ("http", "https")


class FetchError(ComeError, RuntimeError):
    """Download or verification failed; the message names the URL or file."""


class _Interrupted(FetchError):
    """The transfer stopped mid-body: the part holds valid leading bytes and is kept."""


class _Restart(FetchError):
    """The part does not fit the file on the server: drop it and download from byte 0."""


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def drop_part(part: Path) -> None:
    """Delete a partial download and its record."""
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


def _resumable(url: str, part: Path) -> dict | None:
    """The record of a part that may be resumed for `url`, else None (stale part dropped)."""
    meta = _meta_path(part)
    try:
        rec = json.loads(meta.read_text())
    except (OSError, ValueError):
        rec = None
    if part.exists() and isinstance(rec, dict) and rec.get("url") == url:
        return rec
    drop_part(part)                                 # no record, another URL or a broken record
    return None


def _total_from_range(header: str | None) -> int | None:
    m = re.search(r"/(\d+)\s*$", header or "")
    return int(m.group(1)) if m else None


def _open(url: str, part: Path, have: int, etag: str | None, timeout: float):
    """Open the request (Range from `have` when resuming); returns the response or None when a
    416 confirms the part is already complete."""
    req = urllib.request.Request(url, headers={"User-Agent": "come-repro-fetch"})
    if have:
        req.add_header("Range", f"bytes={have}-")
        if etag:
            req.add_header("If-Range", etag)
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            if _total_from_range(exc.headers.get("Content-Range")) == have:
                return None                         # the server confirms: complete
            raise _Restart(f"{url}: the partial download is longer than the file") from None
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: cannot connect: {exc}") from None


def download(url: str, part: Path, timeout: float = 30.0, allow_file: bool = False) -> int:
    """Download `url` into `part`, resuming a part of the same URL; returns the bytes resumed
    from (0 = fresh download). On failure the part is deleted unless the transfer was cut."""
    scheme = urllib.request.urlparse(url).scheme.lower()
    if scheme not in SCHEMES and not (allow_file and scheme == "file"):
        raise FetchError(f"{url}: only http(s) URLs are fetched (scheme {scheme!r}; "
                         "pass --allow-file-url for a local file:// mirror)")
    part.parent.mkdir(parents=True, exist_ok=True)
    rec = _resumable(url, part)
    have = part.stat().st_size if rec else 0
    try:
        try:
            resp = _open(url, part, have, rec and rec.get("etag"), timeout)
        except _Restart:
            drop_part(part)
            have, resp = 0, _open(url, part, 0, None, timeout)
        if resp is None:
            return have
        with resp:
            start = have if getattr(resp, "status", 200) == 206 else 0
            if start and (_total_from_range(resp.headers.get("Content-Range")) is None
                          or not resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")):
                raise FetchError(f"{url}: server answered the resume at byte {have} with "
                                 f"Content-Range {resp.headers.get('Content-Range')!r}")
            etag = resp.headers.get("ETag")
            if start and rec and rec.get("etag") and etag and etag != rec["etag"]:
                raise FetchError(f"{url}: the file changed on the server (ETag {etag})")
            write_json(_meta_path(part), {"url": url, "etag": etag,
                                          "size": resp.headers.get("Content-Length")})
            length = resp.headers.get("Content-Length")
            got = 0
            with open(part, "ab" if start else "wb") as out:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Interrupted(f"{url}: transfer interrupted after {start + got} bytes "
                                           f"({exc}); run again to resume") from None
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
            if length is not None and length.isdigit() and got < int(length):
                raise _Interrupted(f"{url}: connection closed after {start + got} of {start + int(length)} "
                                   "bytes; run again to resume")
        return start
    except (_Interrupted, KeyboardInterrupt):          # valid leading bytes: kept for a resume
        raise
    except BaseException:
        drop_part(part)
        raise


def manual_steps(entry: DatasetEntry, dest: Path) -> str:
    how = entry.source.removeprefix("manual:").strip()
    return "\n".join([
        f"{entry.name}: no direct download; get the files by hand.",
        f"  where:   {entry.homepage}",
        f"  how:     {how}",
        f"  put in:  {dest.resolve()}",
        f"  cite:    {entry.citation}",
        f"  licence: {entry.licence}",
        f"  then:    come convert {entry.name} --raw {dest} --out results/data/{entry.project_name}",
    ])


def _has_files(dest: Path) -> bool:
    return dest.is_dir() and any(not p.name.startswith(".") for p in dest.iterdir())


def place_files(src: Path, dest: Path) -> list[str]:
    """Move every file of `src` into `dest` at the same relative path, replacing only those;
    returns the replaced paths. Checked before anything moves: no type clash (file vs folder),
    no path that leads outside `dest` through a link."""
    root = os.path.realpath(dest)
    files = sorted(p for p in src.rglob("*") if p.is_file() or p.is_symlink())
    replaced = []
    for f in files:
        target = dest / f.relative_to(src)
        parent = os.path.realpath(target.parent)
        if (target.parent.exists() and parent != root and not parent.startswith(root + os.sep)) \
                or target.is_symlink():
            raise FetchError(f"{target}: leads outside {dest} through a link; not replaced")
        if target.is_dir():
            raise FetchError(f"{target}: is a folder in {dest} but a file in the download; "
                             "move it away and fetch again")
        replaced += [str(target)] if target.exists() else []
    for f in files:
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, target)
    return replaced


def fetch(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 30.0,
          force: bool = False, log=print, allow_file: bool = False) -> dict:
    """Fetch `url` into `dest` (a folder). Return a record {url, sha256, files, resumed_from}.

    `force` fetches even into a non-empty `dest`; only the files the download brings are
    replaced there (the record lists them under `replaced`)."""
    dest = Path(dest)
    if _has_files(dest) and not force:
        log(f"{dest}: already present (use --force to fetch again)")
        return {"url": url, "dest": str(dest), "skipped": True}
    part = dest.parent / f".{dest.name}.download.part"
    resumed_from = download(url, part, timeout, allow_file)
    try:
        digest = sha256_of(part)
        if sha256 is not None and digest != sha256.lower():
            raise FetchError(f"{url}: sha256 mismatch: expected {sha256.lower()}, got {digest} "
                             f"(download deleted, {dest} left untouched)")
        if sha256 is None:
            log(f"{url}: no published sha256; computed {digest} (recorded in {dest}/.fetch.json)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        try:
            if archive_kind(part):
                n = safe_extract(part, tmp)
            else:
                name = Path(urllib.request.urlparse(url).path).name or "download"
                shutil.copyfile(part, tmp / name)
                n = 1
            record = {"url": url, "sha256": digest, "verified": sha256 is not None, "files": n,
                      "resumed_from": resumed_from}
            write_json(tmp / ".fetch.json", record)
            if dest.exists():
                record["replaced"] = place_files(tmp, dest)
            else:
                public_mode(tmp)
                tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        drop_part(part)
    return record

