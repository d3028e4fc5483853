"""Offline, run-local set-up of `ultralytics` (AGPL-3.0, an optional extra: `pip install -e .[baselines]`).

`import_ultralytics(run_dir)` must run before the first `import ultralytics` of the process:
ultralytics reads its environment at import time. It sets

- `YOLO_OFFLINE=1`: ultralytics' online check returns False without a DNS lookup, so no
  download, hub, telemetry or update check is attempted;
- `YOLO_CONFIG_DIR=<run_dir>/ultralytics`: its settings.json (and any font lookup) stay inside
  the run folder, never in the user's home;
- a local font: matplotlib's DejaVuSans copied there as `Arial.ttf` / `Arial.Unicode.ttf`, the
  names ultralytics' plotting asks for, so even a plot never triggers a font download.

After the import, Pillow's own `Image.open` is put back (ultralytics patches it process-wide with
a wrapper that pip-installs a HEIF plugin on unreadable files).
Training never uses ultralytics' Trainer (which would check AMP by downloading weights on
CUDA and plot labels): come/baselines/yolo_train.py drives the model with AMP and plots off.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

from come.utils.io import get_logger

log = get_logger("come.baselines")
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def local_font(config_dir: Path) -> None:
    """Copy matplotlib's bundled DejaVuSans into `config_dir` under ultralytics' font names."""
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        dst = config_dir / name
        if src.is_file() and not dst.exists():
            shutil.copyfile(src, dst)


def restore_pillow() -> None:
    """ultralytics replaces PIL.Image.open process-wide with a wrapper that, on an unreadable
    image, tries to pip-install a HEIF plugin: put Pillow's own back, so a corrupt image keeps
    raising Pillow's error naming the file and nothing is installed or downloaded."""
    import PIL.Image
    from ultralytics.utils import patches

    PIL.Image.open = patches._image_open


def import_ultralytics(run_dir: str | Path) -> ModuleType:
    """Set the offline environment (config dir inside `run_dir`) and import ultralytics."""
    config_dir = Path(run_dir).resolve() / "ultralytics"
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    if "ultralytics" in sys.modules:
        current = os.environ.get("YOLO_CONFIG_DIR")
        if current != str(config_dir):
            log.info("ultralytics already imported in this process (config dir %s)", current)
    else:
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    base = Path(os.environ.get("YOLO_CONFIG_DIR") or config_dir)
    local_font(base)
    local_font(base / "Ultralytics")
    try:
        import ultralytics
    except ImportError as exc:
        raise RuntimeError("the YOLOv10 / CerberusDet baselines need `ultralytics` "
                           "(pip install -e .[baselines]; AGPL-3.0)") from exc
    from ultralytics.utils import SETTINGS

    restore_pillow()

    SETTINGS.update({k: False for k in ("sync", "hub", "tensorboard", "wandb", "mlflow", "comet", "clearml",
                                        "dvc", "neptune", "raytune") if k in SETTINGS})   # no events, no integrations
    SETTINGS.update({k: str(base / k.split("_")[0]) for k in ("datasets_dir", "weights_dir", "runs_dir")
                     if k in SETTINGS})
    return ultralytics
