"""Scanner overlays burnt into the image: text labels, depth ruler, "+" calipers.

A built-in 3x5 pixel font keeps text legible at 128 px and output byte-identical everywhere
(no system fonts). All drawing is in place on a uint8 [H, W] array.
"""
from __future__ import annotations

import numpy as np

_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111", "K": "101110100110101",
    "L": "100100100100111", "M": "101111111101101", "N": "110101101101101", "O": "010101101101010",
    "P": "110101110100100", "Q": "010101101110011", "R": "110101110101101", "S": "011100010001110",
    "T": "111010010010010", "U": "101101101101111", "V": "101101101101010", "W": "101101111111101",
    "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111", ".": "000000000000010",
    "-": "000000111000000", ":": "000010000010000", "+": "000010111010000", "/": "001001010100100",
    " ": "000000000000000", "_": "000000000000111",
}


def glyph(ch: str) -> np.ndarray:
    """[5, 3] bool bitmap of one character (unknown characters raise)."""
    key = ch.upper()
    if key not in _GLYPHS:
        raise ValueError(f"synth overlay font has no glyph for {ch!r}")
    return np.array([c == "1" for c in _GLYPHS[key]], dtype=bool).reshape(5, 3)


def text_bitmap(text: str, scale: int = 1) -> np.ndarray:
    """Bool bitmap [5 s, (4 n - 1) s] of a string (1 px spacing), upscaled by `scale`."""
    cols = []
    for i, ch in enumerate(text):
        if i:
            cols.append(np.zeros((5, 1), dtype=bool))
        cols.append(glyph(ch))
    bm = np.concatenate(cols, axis=1) if cols else np.zeros((5, 0), dtype=bool)
    return np.kron(bm, np.ones((scale, scale), dtype=bool)).astype(bool)


def draw_text(img: np.ndarray, y: int, x: int, text: str, value: int = 220, scale: int = 1) -> None:
    """Burn `text` with its top-left corner at (y, x); clipped at the image border."""
    bm = text_bitmap(text, scale)
    h, w = img.shape[:2]
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + bm.shape[0], h), min(x + bm.shape[1], w)
    if y1 <= y0 or x1 <= x0:
        return
    sub = bm[y0 - y:y1 - y, x0 - x:x1 - x]
    img[y0:y1, x0:x1][sub] = value


def draw_ruler(img: np.ndarray, top: float, bottom: float, x: int, side: str, n_major: int,
               value: int = 200) -> None:
    """Depth scale from `top` to `bottom` (px): major ticks (3 px) at n_major + 1 depths (e.g.
    every cm), minor ticks (1 px) halfway; drawn at column x, pointing into the image."""
    h, w = img.shape[:2]
    step = (bottom - top) / max(n_major, 1)
    sign = 1 if side == "left" else -1
    for k in range(2 * n_major + 1):
        yy = int(round(top + k * step / 2))
        if not 0 <= yy < h:
            continue
        length = 3 if k % 2 == 0 else 1
        xs = np.clip(x + sign * np.arange(length), 0, w - 1)
        img[yy, xs] = value


def draw_marker(img: np.ndarray, y: int, x: int, side: str, size: int = 1, value: int = 230) -> None:
    """Focal-zone marker: a small triangle pointing into the image at depth y."""
    h, w = img.shape[:2]
    sign = 1 if side == "left" else -1
    for k in range(2 * size + 1):                 # base at x, tip 2*size px further in
        half = (2 * size - k + 1) // 2
        xx = x + sign * k
        ys = np.clip(np.arange(y - half, y + half + 1), 0, h - 1)
        if 0 <= xx < w:
            img[ys, xx] = value


def draw_cross(img: np.ndarray, y: int, x: int, arm: int = 1, value: int = 250) -> None:
    """A "+" caliper mark centred at (y, x)."""
    h, w = img.shape[:2]
    ys = np.clip(np.arange(y - arm, y + arm + 1), 0, h - 1)
    xs = np.clip(np.arange(x - arm, x + arm + 1), 0, w - 1)
    img[ys, min(max(x, 0), w - 1)] = value
    img[min(max(y, 0), h - 1), xs] = value


def draw_calipers(img: np.ndarray, rng: np.random.Generator, box_xyxy: tuple[int, int, int, int],
                  arm: int = 1) -> None:
    """Calipers at the ends of the lesion's horizontal and/or vertical diameter, just outside."""
    x0, y0, x1, y1 = box_xyxy
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    mode = rng.integers(3)                       # 0 horizontal, 1 vertical, 2 both
    off = arm + 1
    if mode in (0, 2):
        draw_cross(img, cy + int(rng.integers(-1, 2)), x0 - off, arm)
        draw_cross(img, cy + int(rng.integers(-1, 2)), x1 + off, arm)
    if mode in (1, 2):
        draw_cross(img, y0 - off, cx + int(rng.integers(-1, 2)), arm)
        draw_cross(img, y1 + off, cx + int(rng.integers(-1, 2)), arm)
