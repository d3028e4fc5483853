"""Physics of the synthetic image formation: speckle statistics, posterior effects, geometry."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from come.config import ConfigError, load_config
from come.data.synth import get_profile, render_image
from come.data.synth.geometry import scan_geometry
from come.data.synth.lesions import Lesion, LesionShape, apply_lesion
from come.data.synth.overlays import glyph, text_bitmap
from come.data.synth.physics import beamform, envelope_db, psf_kernel, scatterer_field
from come.data.synth.tissue import TissueMap

PROF = replace(get_profile("BUSI"), noise_db=-90.0, tgc_error_db=0.0, gain_db=0.0)


def test_psf_energy_is_normalised():
    k = psf_kernel(0.8, 1.5, 0.1)
    assert np.iscomplexobj(k) and np.isclose(np.sum(np.abs(k) ** 2), 1.0)
    assert k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1


def test_envelope_is_rayleigh_speckle_with_unit_power():
    rng = np.random.default_rng(0)
    echo = np.ones((128, 128))
    rf = beamform(scatterer_field(rng, echo, 8.0, 3.0), PROF)
    env = np.abs(rf[8:-8, 8:-8]) / np.sqrt(8.0)
    assert 0.85 < np.mean(env ** 2) < 1.15          # E|RF|^2 = density * echo
    snr = env.mean() / env.std()                      # Rayleigh: sqrt(pi / (4 - pi)) = 1.91
    assert 1.7 < snr < 2.15


def test_scatterer_density_follows_echogenicity():
    rng = np.random.default_rng(1)
    echo = np.concatenate([np.full((64, 64), 1.0), np.full((64, 64), 0.05), np.zeros((64, 64))])
    f = scatterer_field(rng, echo, 1.0, 3.0)
    power = [np.mean(np.abs(f[i * 64:(i + 1) * 64]) ** 2) for i in range(3)]
    assert 0.85 < power[0] < 1.15 and 0.03 < power[1] < 0.07 and power[2] == 0.0
    occupied = [(np.abs(f[i * 64:(i + 1) * 64]) > 0).mean() for i in range(2)]
    assert occupied[0] > 0.55 and occupied[1] < 0.35   # dark region: sparse scatterers


def _posterior_contrast(shape: LesionShape) -> float:
    """dB difference beneath the lesion vs beside it, at the same depths (no noise)."""
    rng = np.random.default_rng(3)
    h = w = 128
    tissue = TissueMap(np.ones((h, w)), np.full((h, w), 30.0 / h), np.ones((h, w), bool))
    les = Lesion(shape, cy=40.0, cx=64.0)
    apply_lesion(rng, tissue, les)
    env = envelope_db(rng, beamform(scatterer_field(rng, tissue.echo, 8.0, 3.0), PROF), tissue.atten, PROF, 8.0)
    ys, xs = np.nonzero(les.mask)
    below = slice(ys.max() + 4, ys.max() + 40)
    col_in = slice(xs.min() + 2, xs.max() - 1)
    beside = np.r_[0:max(xs.min() - 15, 1), min(xs.max() + 15, w - 1):w]
    lin = lambda a: 10 * np.log10(np.mean(10 ** (a / 10)))  # noqa: E731 (mean power in dB)
    return lin(env[below, col_in]) - lin(env[below][:, beside])


def _shape(**kw) -> LesionShape:
    base = dict(malignant=False, kind="cyst", semi_major=14.0, ratio=0.7, angle=0.0,
                harmonics=np.zeros((0, 3)), spikes=np.zeros((0, 3)), echo=0.0, texture=0.0,
                atten_mult=0.05)
    return LesionShape(**{**base, **kw})


def test_cyst_enhances_and_malignant_shadows():
    enh = _posterior_contrast(_shape())
    shadow = _posterior_contrast(_shape(malignant=True, kind="irregular", ratio=1.3, echo=0.05,
                                        atten_mult=3.0))
    assert enh > 2.0, f"no posterior enhancement beneath a cyst ({enh:.1f} dB)"
    assert shadow < -4.0, f"no posterior shadow beneath a malignant lesion ({shadow:.1f} dB)"


def test_fan_probe_is_black_outside_and_linear_fills():
    sector = scan_geometry(get_profile("TUD"), 100, 120, 100, 120)
    assert not sector.valid[0, 0] and not sector.valid[0, -1] and sector.valid[50, 60]
    linear = scan_geometry(get_profile("BUSI"), 100, 120, 100, 120)
    assert linear.valid.all()
    img = render_image(get_profile("TUD"), 96, [], "normal", np.random.default_rng(0)).image
    assert img[0, 0] == 0 and img[-1, 0] == 0 and img[img.shape[0] // 2, img.shape[1] // 2] > 0


def test_rendered_lesion_masks_and_pathology():
    from come.data.synth.lesions import sample_shape
    rng = np.random.default_rng(5)
    shapes = [sample_shape(rng, "thyroid", True, 13.0), sample_shape(rng, "thyroid", True, 9.0)]
    s = render_image(get_profile("DDTI"), 96, shapes, "malignant", np.random.default_rng(6))
    assert s.image.dtype == np.uint8 and len(s.masks) == 2 and s.pathology == "malignant"
    assert not (s.masks[0] & s.masks[1]).any()


def test_overlay_font_and_config_errors():
    assert text_bitmap("BUSI 4.0CM", 2).shape == (10, 2 * (4 * 10 - 1))
    assert glyph("+")[2].all()
    with pytest.raises(ValueError, match="no glyph"):
        glyph("#")
    with pytest.raises(ConfigError, match="synth.empty_prob"):
        load_config(None, ["synth.empty_prob=1.5"])
