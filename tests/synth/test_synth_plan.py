"""Seeded planning of a synthetic source: prefix-stable, patients with two views, config knobs."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from come.config import ConfigError, load_config
from come.config.schema import SynthConfig
from come.data.synth import plan_source, render_planned


def test_plan_is_prefix_stable_and_seeded():
    cfg = SynthConfig(seed=4, images_per_source=40)
    long, short = plan_source(cfg, "BUSI"), plan_source(cfg, "BUSI", 10)
    assert long[:10] == short
    assert plan_source(cfg, "DDTI") != long
    a = render_planned(cfg, "TUS", long[3]).image
    b = render_planned(SynthConfig(seed=4, images_per_source=5), "TUS", long[3]).image
    assert np.array_equal(a, b), "image k must not depend on images_per_source"


def test_patients_and_pathology_mix():
    cfg = SynthConfig(seed=0, images_per_source=400, empty_prob=0.1, malignant_prob=0.5,
                      two_lesion_prob=0.2, second_view_prob=0.3)
    plans = plan_source(cfg, "TNSCUI")
    per_patient = Counter(p.patient for p in plans)
    assert set(per_patient.values()) == {1, 2}
    for pid, n in per_patient.items():
        views = [p for p in plans if p.patient == pid]
        assert len({(v.pathology, v.n_lesions) for v in views}) == 1
    frac = Counter(p.pathology for p in plans)
    assert 0.04 < frac["normal"] / len(plans) < 0.2
    assert 0.3 < frac["malignant"] / (frac["malignant"] + frac["benign"]) < 0.7
    assert all((p.n_lesions == 0) == (p.pathology == "normal") for p in plans)
    assert 0.1 < np.mean([p.n_lesions == 2 for p in plans if p.n_lesions]) < 0.3
    solo = plan_source(SynthConfig(second_view_prob=0.0, images_per_source=50), "TNSCUI")
    assert len({p.patient for p in solo}) == 50


@pytest.mark.parametrize("override,needle", [("synth.seed=-1", "synth.seed"),
                                             ("synth.second_view_prob=2", "second_view_prob"),
                                             ("synth.image_size=16", "image_size")])
def test_bad_synth_config_is_rejected(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])
