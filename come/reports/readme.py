"""The generated parts of the top-level README: the "Measured" table and the demo preview.

Both live between marker comments in README.md and are rewritten, never edited by hand:

    <!-- measured:begin --> ... <!-- measured:end -->   from docs/measured.json
    <!-- preview:begin -->  ... <!-- preview:end -->    from a finished run's results/

`docs/measured.json` holds one record per measured command (the newest replaces the older one,
so only current figures are shown; history is in git log). `benchmarks/measure.py` writes it.
A record: {"name", "command", "wall_s", "machine", "commit", "date", "note"}.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

MARKERS = {"measured": ("<!-- measured:begin -->", "<!-- measured:end -->"),
           "preview": ("<!-- preview:begin -->", "<!-- preview:end -->")}
PREVIEW_TABLE = "table2_main"
PREVIEW_PARADIGM = "inter-organ"
PREVIEW_FIGURES = ("fig_routing_heatmap.png", "fig5a_clustering_stages.png", "fig_datacards.png")
RECORD_KEYS = ("name", "command", "wall_s", "machine", "commit", "date")


@dataclass(frozen=True)
class Block:
    name: str
    text: str


def fmt_wall(seconds: float) -> str:
    """`75` -> `1 m 15 s`; `42.5` -> `42 s`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return (f"{h} h " if h else "") + f"{m} m {s:02d} s"


def load_measured(path: str | Path) -> list[dict]:
    """Records of `docs/measured.json`, validated (a missing key names the file and record)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a list of measurement records")
    for i, rec in enumerate(records):
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            raise ValueError(f"{path}: record {i} lacks {', '.join(missing)}")
    return records


def render_measured(records: list[dict]) -> str:
    """The Markdown table of the current measurements, in the order they are stored."""
    if not records:
        return "_No measurement recorded yet: see benchmarks/measure.py._\n"
    lines = ["| what | command | wall time | machine | commit | date |", "|---|---|---|---|---|---|"]
    for r in records:
        what = r["name"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"| {what} | `{r['command']}` | {fmt_wall(float(r['wall_s']))} | {r['machine']} "
                     f"| `{r['commit']}` | {r['date']} |")
    return "\n".join(lines) + "\n"


def _fmt_interval(row: dict) -> str:
    ours = float(row["ours"])
    if row.get("ours_std"):
        return f"{ours:.3f} ± {float(row['ours_std']):.3f} ({row['n_seeds']} seeds)"
    if row.get("ci_lo") and row.get("ci_hi"):
        return f"{ours:.3f} [{float(row['ci_lo']):.3f}, {float(row['ci_hi']):.3f}]"
    return f"{ours:.3f}"


def preview_table(long_csv: str | Path, paradigm: str = PREVIEW_PARADIGM, column: str = "Mean") -> str:
    """A small excerpt of a paper table: one line per method of `paradigm`, its `column` value
    (ours with its interval, the paper's, the difference), read from `<table>_long.csv`."""
    long_csv = Path(long_csv)
    if not long_csv.exists():
        raise FileNotFoundError(f"{long_csv}: no such table (run the pipeline first: make demo)")
    rows = [r for r in csv.DictReader(long_csv.open(encoding="utf-8"))
            if r["paradigm"] == paradigm and r["column"] == column and r["status"] != "missing"]
    if not rows:
        raise ValueError(f"{long_csv}: no {paradigm} row with a {column!r} column")
    lines = [f"| method ({paradigm}) | ours, {column} AP | paper | ours - paper |", "|---|---|---|---|"]
    for r in rows:
        label = r["method"] + (f" {r['variant']}" if r.get("variant") else "")
        ours = _fmt_interval(r) if r["ours"] else r["status"]
        paper = f"{float(r['paper']):.3f}" if r["paper"] else "—"
        diff = f"{float(r['diff']):+.3f}" if r["diff"] else "—"
        lines.append(f"| {label} | {ours} | {paper} | {diff} |")
    return "\n".join(lines) + "\n"


def shrink_png(src: str | Path, dst: str | Path, max_width: int = 720) -> Path:
    """Copy a PNG to `dst`, downscaled to at most `max_width` pixels wide (aspect kept)."""
    from PIL import Image

    src, dst = Path(src), Path(dst)
    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        im.save(dst, optimize=True)
    return dst


def build_preview(results: str | Path, out_dir: str | Path, source: str = "") -> str:
    """Write `<out_dir>/table_excerpt.md` and `<out_dir>/figure.png` from a finished run's
    results folder; return the README block that shows them (`source` says which run made it)."""
    results, out_dir = Path(results), Path(out_dir)
    excerpt = preview_table(results / "tables" / f"{PREVIEW_TABLE}_long.csv")
    figure = next((results / "figures" / f for f in PREVIEW_FIGURES if (results / "figures" / f).exists()), None)
    if figure is None:
        figure = next(iter(sorted((results / "figures").glob("*.png"))), None)
    if figure is None:
        raise FileNotFoundError(f"{results / 'figures'}: no figure to preview (run the pipeline first)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "table_excerpt.md").write_text(excerpt, encoding="utf-8")
    shrink_png(figure, out_dir / "figure.png")
    rel = out_dir.as_posix()
    made = f" Made by {source}." if source else ""
    return (f"Table 2, inter-organ rows, mean AP over the datasets (from `{PREVIEW_TABLE}_long.csv`; "
            f"ours with its 95% interval; rows not run are left out).{made}\n\n{excerpt}\n"
            f"![{figure.stem}]({rel}/figure.png)\n\n"
            f"_`{figure.name}` of the same run._\n")


def replace_block(text: str, block: Block, source: str = "README.md") -> str:
    """`text` with the content between `block`'s markers replaced by `block.text`."""
    begin, end = MARKERS[block.name]
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{source}: markers {begin} ... {end} not found")
    return pattern.sub(lambda _: f"{begin}\n{block.text}{end}", text, count=1)


def read_block(text: str, name: str) -> str:
    """The current content between the markers of block `name` ('' when absent)."""
    begin, end = MARKERS[name]
    m = re.search(re.escape(begin) + r"\n?(.*?)" + re.escape(end), text, re.S)
    return m.group(1) if m else ""
