"""Small I/O helpers: atomic writes, JSON, logging to a file and the console."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(path: str | Path) -> Path:
    """Give `path` the mode a plain `open`/`mkdir` would (0666/0777 minus the umask):
    `mkstemp`/`mkdtemp` make 0600/0700, which a cluster group could not read."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask())
    return path


def tmp_name(path: str | Path) -> str:
    """Prefix of the temp files `atomic_write_bytes` makes beside `path` (`.<name>.`)."""
    return f".{Path(path).name}."


def atomic_write_bytes(path: str | Path, data: bytes,
                       before_replace: Callable[[], None] | None = None) -> Path:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a
    file, and a crash right after the rename cannot leave an empty file under `path`.
    `before_replace` runs once the temp file is complete, just before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=tmp_name(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        public_mode(tmp)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Deterministic JSON (sorted keys) written atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=_default)
    return atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def get_logger(name: str, log_file: str | Path | None = None) -> logging.Logger:
    """A logger that prints to stderr and, when given, appends to `log_file`."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in logger.handlers):
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        logger.addHandler(sh)
    if log_file is not None:
        log_file = Path(log_file)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == log_file.resolve()
                   for h in logger.handlers):
            fh = logging.FileHandler(log_file)
            fh.setFormatter(fmt)
            logger.addHandler(fh)
    logger.propagate = False
    return logger
