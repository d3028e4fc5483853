"""Quarantine: files a converter refused or flagged, with a named reason.

Every problem a converter meets (corrupt image, empty mask, mask/image size mismatch, missing
label row, ...) becomes one entry here and one named warning in the log, so nothing is dropped
silently and no run crashes deep inside a reader. `quarantine.json` is written beside
`annotations.json`; the data card reads it back.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from come.utils.io import read_json, write_json

# reason code -> one-line meaning (the code is the warning's name)
REASONS: dict[str, str] = {
    "corrupt_image": "image file cannot be decoded",
    "corrupt_mask": "mask file cannot be decoded",
    "missing_mask": "no mask file for this image",
    "empty_mask": "mask has no foreground pixel where a lesion is expected",
    "mask_size_mismatch": "mask size differs from its image size",
    "missing_label": "no label/metadata row for this image",
    "missing_image": "annotation or label row points at an image that does not exist",
    "bad_annotation": "annotation file or entry cannot be parsed",
    "missing_box": "no box for an image that should show a lesion",
    "bbox_disagrees": "box from the mask differs from the published box (kept, flagged)",
    "size_disagrees": "published width/height differ from the file (kept, file size used)",
    "speck_dropped": "tiny mask components treated as noise and dropped (kept, flagged)",
    "not_an_image": "file in an image folder without an image extension",
    "unknown_label": "label value outside the documented set (kept as unknown, flagged)",
}
# reasons that keep the image in the dataset (only flagged)
FLAG_ONLY = {"bbox_disagrees", "size_disagrees", "speck_dropped", "unknown_label"}


class ConversionWarning(UserWarning):
    """Raised (as a warning) for every quarantine entry; the message starts with the reason."""


@dataclass
class Quarantine:
    """Collects entries `{file, reason, detail, action}` for one dataset conversion."""
    dataset: str
    entries: list[dict] = field(default_factory=list)
    logger: logging.Logger | None = None

    def add(self, file: str, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r} (known: {sorted(REASONS)})")
        action = "flagged" if reason in FLAG_ONLY else "excluded"
        self.entries.append({"file": str(file), "reason": reason, "detail": detail, "action": action})
        msg = f"{reason}: {self.dataset}: {file}: {detail or REASONS[reason]} ({action})"
        if self.logger is not None:
            self.logger.warning(msg)
        warnings.warn(msg, ConversionWarning, stacklevel=2)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e["reason"] for e in self.entries).items()))

    @property
    def excluded(self) -> int:
        return sum(1 for e in self.entries if e["action"] == "excluded")

    def to_dict(self) -> dict:
        ordered = sorted(self.entries, key=lambda e: (e["file"], e["reason"], e["detail"]))
        return {"dataset": self.dataset, "counts": self.counts(), "entries": ordered}

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


def read_quarantine(path: str | Path) -> dict | None:
    """`quarantine.json` as a dict, or None when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ValueError(f"{path}: not a quarantine file (expected a mapping with 'entries')")
    return data
