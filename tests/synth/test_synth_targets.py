"""Calibrated synthetic lesions: targets from the real reference, and before/after in the card."""
from __future__ import annotations

import numpy as np
import pytest

from come.config import load_config
from come.data.coco import load_coco
from come.data.datacard import write_datacard
from come.data.synth.calibration import distance, image_stats, load_before, load_reference
from come.data.synth.lesions import sample_shape
from come.data.synth.physics import log_compress
from come.data.synth.profiles import get_profile
from come.data.synth.targets import draw_target, echo_for_contrast, fit_shape, shape_box
from come.data.synth.writer import write_source

TUNED = ("box_w_rel", "box_aspect", "contrast_db")


def test_fit_shape_gives_the_target_box():
    """The fitted shape's box (harmonics, spikes and rotation included) is the target
    (mutation: fitting the plain ellipse 2a x 2b, ignoring the margin, misses by > 5%)."""
    rng = np.random.default_rng(0)
    for malignant in (False, True):
        for _ in range(10):
            s = fit_shape(sample_shape(rng, "breast", malignant, 14.0), 40.0, 25.0)
            bw, bh = shape_box(s)
            assert bw == pytest.approx(40.0, rel=0.05) and bh == pytest.approx(25.0, rel=0.05)


@pytest.mark.parametrize("dr,gamma", [(50.0, 1.0), (38.0, 1.15), (56.0, 0.9)])
def test_echo_for_contrast_inverts_the_display_map(dr, gamma):
    """log_compress(echo) / log_compress(tissue) is the requested gray contrast for every
    dynamic range and gray map (mutation: 20 log10 for the power ratio doubles the contrast)."""
    prof = get_profile("BUSI").__class__(name="x", organ="breast", dynamic_range_db=dr, gamma=gamma)
    for c in (-8.0, -4.0, -1.0, 1.5):
        e = echo_for_contrast(c, dr, gamma)
        gray = log_compress(np.array([0.0, 10 * np.log10(e)]), prof)
        assert 20 * np.log10(gray[1] / gray[0]) == pytest.approx(c, abs=1e-6)


def test_pooled_targets_follow_the_reference_and_pathology_still_shows():
    """Benign Beta(1, 2) + malignant Beta(2, 1) quantiles pool to the reference aspect; malignant
    lesions are taller and darker on average (mutation: one Beta for both breaks either)."""
    rng = np.random.default_rng(0)
    ben = [draw_target(rng, "breast", False, "solid", False) for _ in range(3000)]
    mal = [draw_target(rng, "breast", True, "irregular", False) for _ in range(3000)]
    ref = {k: np.asarray(v) for k, v in load_reference()["breast"]["quantiles"].items()}
    pooled = {"box_aspect": np.array([t.aspect for t in ben + mal])}
    assert distance(ref, pooled)["box_aspect"] < 0.05
    assert np.mean([t.aspect for t in mal]) > np.mean([t.aspect for t in ben]) + 0.1
    assert np.mean([t.contrast_db for t in mal]) < np.mean([t.contrast_db for t in ben]) - 0.5


@pytest.fixture(scope="module")
def small_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("cal")
    cfg = load_config(None, ["synth.images_per_source=16", "synth.image_size=128"])
    return root, {name: write_source(cfg, name, root)[0] for name in ("BUSC", "DDTI")}


def test_fresh_sources_are_closer_to_the_reference_than_before(small_sources):
    """16 fresh images of BUSC and DDTI (seed 0, deterministic) beat the stored pre-calibration
    distance on every tuned statistic by a wide margin (before: 0.83-2.1; the old generator
    fails this test)."""
    root, paths = small_sources
    before = load_before()
    for name, organ in (("BUSC", "breast"), ("DDTI", "thyroid")):
        ref = {k: np.asarray(v) for k, v in load_reference()[organ]["quantiles"].items()}
        now = distance(ref, image_stats(load_coco(paths[name]), root))
        for k in TUNED:
            assert now[k] < 0.6 * before[name][k], (name, k, now[k], before[name][k])
        assert now["mean"] < 0.7 * before[name]["mean"]


def test_datacard_shows_distance_before_and_now(small_sources, tmp_path):
    """A synthetic source's card carries `distance_before` (calibration_before.json) beside the
    current distance (mutation: the card without `name` loses distance_before)."""
    _, paths = small_sources
    card = write_datacard(paths["DDTI"], tmp_path)["calibration"]
    assert card["distance_before"] == load_before()["DDTI"]
    assert set(TUNED) <= set(card["distance_w1_over_iqr"])
    assert card["distance_w1_over_iqr"]["mean"] < card["distance_before"]["mean"]


def _patch_gray(prof, echo: float, seed: int, n: int = 96) -> float:
    """Mean displayed gray of a homogeneous patch of `echo` through the source's image chain."""
    from scipy.ndimage import gaussian_filter

    from come.data.synth.physics import beamform, envelope_db, scatterer_field
    from come.data.synth.render import DISPLAY_SIGMA
    rng = np.random.default_rng(seed)
    field = scatterer_field(rng, np.full((n, n), echo), prof.density, prof.carrier)
    env = envelope_db(rng, beamform(field, prof), np.full((n, n), prof.atten_db / n), prof, prof.density)
    return float(gaussian_filter(log_compress(env, prof), DISPLAY_SIGMA)[4:-4, 4:-4].mean())


@pytest.mark.parametrize("name", ["BUSBRA", "TUS"])
def test_source_echo_gives_the_displayed_contrast(name):
    """An echo from source_echo_for_contrast shows the requested gray contrast through the
    source's chain, on fresh speckle (mutation: the display-map-only echo_for_contrast is
    ~2-3 dB too dark at -6 dB for these wide-dynamic-range sources with sparse dark speckle)."""
    from come.data.synth.targets import source_echo_for_contrast
    prof = get_profile(name)
    tissue = _patch_gray(prof, 1.0, seed=5)
    for c in (-6.0, -4.0, -2.0):
        got = 20 * np.log10(_patch_gray(prof, source_echo_for_contrast(prof, c), seed=6) / tissue)
        assert got == pytest.approx(c, abs=0.6)
