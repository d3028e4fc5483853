"""routing.png drawn with PIL (come.model.moe.heatmap): colours, cell placement, bad shapes."""
import numpy as np
import pytest
from PIL import Image

from come.model.moe.heatmap import CELL_H, CELL_W, LEFT, TOP, colour, draw_share_heatmap


def test_colour_ramp_hits_the_viridis_anchors_and_clips():
    assert colour(0.0) == (68, 1, 84) and colour(1.0) == (253, 231, 37)
    assert colour(0.5) == (33, 145, 140)
    assert colour(-1.0) == colour(0.0) and colour(7.0) == colour(1.0)
    assert colour(0.125) == (64, 42, 112)          # halfway between the first two anchors (rounded)


def test_each_cell_is_painted_with_its_share(tmp_path):
    """Mutation caught: rows and columns swapped (the matrix is not square), or the colour of
    the wrong cell."""
    share = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]])
    path = draw_share_heatmap(share, ["BUSI", "DDTI"], ["0", "1", "2"], "t", tmp_path / "sub" / "r.png")
    img = Image.open(path).convert("RGB")
    for r in range(2):
        for c in range(3):
            corner = (LEFT + c * CELL_W + 2, TOP + r * CELL_H + 2)      # away from the printed value
            assert img.getpixel(corner) == colour(share[r, c]), (r, c)
    assert img.width >= LEFT + 3 * CELL_W and img.height > TOP + 2 * CELL_H


def test_shape_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not match 2 rows x 2 columns"):
        draw_share_heatmap(np.zeros((2, 3)), ["a", "b"], ["0", "1"], "t", tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()
