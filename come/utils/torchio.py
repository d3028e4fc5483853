"""Checkpoint files of the frozen experts: atomic save, `weights_only` load with clear errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def save_payload(payload: dict[str, Any], path: str | Path) -> Path:
    """`torch.save` to a temp file beside `path`, then rename (never half a file)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_payload(path: str | Path, what: str, fmt: str, make_hint: str) -> dict[str, Any]:
    """Load a payload saved by `save_payload` whose `format` is `fmt` (tensors and plain types).

    Errors name the file: FileNotFoundError (with `make_hint`, the command that makes it) or
    ValueError for an unreadable file or another format.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found (make it with `{make_hint}`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{path}: not a readable {what} checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise ValueError(f"{path}: not a {what} file (expected format {fmt!r})")
    return payload
