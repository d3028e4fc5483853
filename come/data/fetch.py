"""`come fetch`: HTTP(S) download with resume (Range), sha256 check and atomic placement.

Flow: download to `<dest>.part` beside the destination (resumed with a Range request when a
partial file exists), verify sha256, extract archives into a temp folder, rename into `dest`.
A wrong checksum deletes the download and leaves `dest` untouched (no partial dataset).
Manual-only sources print where to get the files and where to put them (exit code 3).
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from come.data.archive import archive_kind, safe_extract
from come.data.registry import DatasetEntry
from come.utils.io import write_json

EXIT_MANUAL = 3
CHUNK = 1 << 16


class FetchError(RuntimeError):
    """Download or verification failed; the message names the URL or file."""


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, part: Path, timeout: float = 30.0) -> Path:
    """Download `url` into `part`, resuming from its current size with a Range request."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "come-repro-fetch"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:            # already complete
            return part
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: cannot connect: {exc}") from None
    with resp:
        resumed = have and resp.status == 206
        mode = "ab" if resumed else "wb"
        with open(part, mode) as out:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
    return part


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


def fetch(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 30.0,
          force: bool = False, log=print) -> dict:
    """Fetch `url` into `dest` (a folder). Return a record {url, sha256, files, resumed_from}."""
    dest = Path(dest)
    if dest.is_dir() and any(not p.name.startswith(".") for p in dest.iterdir()) and not force:
        log(f"{dest}: already present (use --force to fetch again)")
        return {"url": url, "dest": str(dest), "skipped": True}
    part = dest.parent / f".{dest.name}.download.part"
    resumed_from = part.stat().st_size if part.exists() else 0
    download(url, part, timeout)
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink(missing_ok=True)
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
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    part.unlink(missing_ok=True)
    return record
