"""Data-card distributions across datasets (Appendix Fig. 6): image sizes, boxes per image,
box sizes and pathology balance, read from `results/datacards/<DS>.json`.

Cards store quantiles, not raw values, so the boxes are drawn from them (whiskers p5-p95).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from come.config.schema import ALL_DATASETS
from come.reports.figures.common import FigureInputs, FigureSkipped, save
from come.utils.io import read_json

PATHOLOGY_COLORS = {"benign": "#66ccee", "malignant": "#ee6677", "normal": "#228833", "unknown": "#bbbbbb"}


def load_cards(folder: Path) -> dict[str, dict]:
    """dataset -> card, paper dataset order first; ValueError naming a malformed card."""
    cards = {}
    for path in sorted(folder.glob("*.json")):
        card = read_json(path)
        if not isinstance(card, dict) or "counts" not in card:
            continue                       # not a data card (e.g. a resolved-config dump)
        for key in ("image_sizes", "boxes_per_image", "box_size"):
            if key not in card:
                raise ValueError(f"{path}: data card lacks {key!r}")
        cards[str(card.get("dataset", path.stem))] = card
    order = {d: i for i, d in enumerate(ALL_DATASETS)}
    return dict(sorted(cards.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def _stats(q: dict, label: str) -> dict | None:
    if not q or q.get("n", 0) == 0:
        return None
    return {"label": label, "med": q["median"], "q1": q["p25"], "q3": q["p75"],
            "whislo": q["p5"], "whishi": q["p95"], "mean": q.get("mean"), "fliers": []}


def _boxes(ax, stats: list[dict | None], positions, color: str, label: str) -> None:
    keep = [(s, p) for s, p in zip(stats, positions) if s is not None]
    if not keep:
        return
    parts = ax.bxp([s for s, _ in keep], positions=[p for _, p in keep], widths=0.35,
                   patch_artist=True, showfliers=False, manage_ticks=False)
    for b in parts["boxes"]:
        b.set_facecolor(color)
    parts["boxes"][0].set_label(label)


def draw(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    cards = load_cards(inputs.datacards) if inputs.datacards.is_dir() else {}
    if not cards:
        raise FigureSkipped(f"no data card in {inputs.datacards}")
    names = list(cards)
    x = np.arange(len(names))
    fig, axes = plt.subplots(2, 2, figsize=(max(9.0, 1.3 * len(names) * 2), 7.5))
    ax = axes[0, 0]
    _boxes(ax, [_stats(c["image_sizes"]["width"], n) for n, c in cards.items()], x - 0.2, "#4477aa", "width")
    _boxes(ax, [_stats(c["image_sizes"]["height"], n) for n, c in cards.items()], x + 0.2, "#ccbb44", "height")
    ax.set_ylabel("pixels")
    ax.set_title("image sizes (box: quartiles, whiskers: p5-p95)", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    bottom = np.zeros(len(names))
    for k, col in zip(("0", "1", "2", "3+"), ("#bbbbbb", "#66ccee", "#4477aa", "#aa3377")):
        vals = []
        for c in cards.values():
            bpi = {int(a): v for a, v in c["boxes_per_image"].items()}
            total = max(sum(bpi.values()), 1)
            n = sum(v for a, v in bpi.items() if a >= 3) if k == "3+" else bpi.get(int(k), 0)
            vals.append(n / total)
        ax.bar(x, vals, 0.6, bottom=bottom, color=col, label=f"{k} boxes")
        bottom += np.array(vals)
    ax.set_ylabel("share of images")
    ax.set_title("boxes per image", fontsize=9)
    ax.set_ylim(0, 1.25)
    ax.legend(fontsize=7, ncol=4, loc="upper center")
    ax = axes[1, 0]
    _boxes(ax, [_stats(c["box_size"].get("sqrt_area_over_image", {}), n) for n, c in cards.items()], x,
           "#ee6677", "sqrt(box area / image area)")
    ax.set_ylabel("sqrt(box area / image area)")
    ax.set_title("box sizes relative to the image", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    bottom = np.zeros(len(names))
    for p, col in PATHOLOGY_COLORS.items():
        vals = np.array([c.get("class_balance", {}).get("pathology", {}).get(p, 0) for c in cards.values()],
                        dtype=float)
        if vals.any():
            ax.bar(x, vals, 0.6, bottom=bottom, color=col, label=p)
            bottom += vals
    ax.set_ylabel("images")
    ax.set_title("images per pathology (class balance)", fontsize=9)
    ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("dataset")
        ax.set_xlim(-0.7, len(names) - 0.3)
    fig.suptitle("Data cards: distributions per dataset", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_datacards")
