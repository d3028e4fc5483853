"""Calibration statistics of synthetic vs real sources (come.data.synth.calibration)."""
import numpy as np
import pytest
from PIL import Image

from come.data.synth.calibration import distance, image_stats, lesion_contrast, speckle_snr, wasserstein_1d


def test_contrast_and_speckle_on_a_known_image():
    """A box at gray 50 in background 100 -> 20 log10(51/101) dB; constant-SNR speckle is found
    (mutation: measuring the contrast on the whole grown box instead of the ring changes it)."""
    rng = np.random.default_rng(0)
    img = np.full((64, 80), 100.0)
    img[20:40, 30:50] = 50.0
    assert lesion_contrast(img, [30, 20, 20, 20]) == pytest.approx(20 * np.log10(51 / 101))
    speckle = rng.rayleigh(40.0, size=(64, 80)) + 10.0
    snr = speckle_snr(speckle, [[30, 20, 20, 20]])
    r = rng.rayleigh(40.0, size=200_000) + 10.0
    assert snr == pytest.approx(r.mean() / r.std(), rel=0.15)


def test_distance_is_zero_for_the_same_sample_and_scales_with_a_shift():
    a = np.random.default_rng(1).normal(size=500)
    assert wasserstein_1d(a, a) == 0.0
    assert wasserstein_1d(a, a + 0.5) == pytest.approx(0.5)
    iqr = np.subtract(*np.percentile(a, [75, 25]))
    d = distance({"contrast_db": a}, {"contrast_db": a + 0.5})
    assert d["contrast_db"] == pytest.approx(0.5 / iqr, abs=1e-3) and d["mean"] == d["contrast_db"]


def test_image_stats_reads_a_coco_dataset(tmp_path):
    img = np.full((40, 60), 120, dtype=np.uint8)
    img[10:20, 15:35] = 40
    (tmp_path / "X").mkdir()
    Image.fromarray(img).save(tmp_path / "X" / "a.png")
    coco = {"images": [{"id": 1, "file_name": "X/a.png", "width": 60, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "bbox": [15, 10, 20, 10], "category_id": 3}]}
    st = image_stats(coco, tmp_path)
    assert st["box_w_rel"].tolist() == pytest.approx([20 / 60]) and st["box_h_rel"].tolist() == pytest.approx([10 / 40])
    assert st["box_aspect"].tolist() == pytest.approx([np.log(0.5)]) and st["contrast_db"][0] < -8


def test_synthetic_data_card_reports_its_distance_to_the_real_reference(tmp_path):
    """The stored reference (measured on BUS-BRA / DDTI) is compared with a synthetic source in
    its data card; real datasets get no calibration block."""
    import json

    from come.data.datacard import write_datacard

    rng = np.random.default_rng(0)
    (tmp_path / "data" / "BUSI" / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(3):
        img = (rng.rayleigh(40.0, size=(64, 96)) + 10).clip(0, 255).astype(np.uint8)
        img[20:36, 30:70] //= 3
        Image.fromarray(img).save(tmp_path / "data" / "BUSI" / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"BUSI/images/{i}.png", "width": 96, "height": 64, "source": "BUSI",
                       "organ": "breast", "pathology": "benign", "group_id": i + 1})
        anns.append({"id": i + 1, "image_id": i + 1, "bbox": [30, 20, 40, 16], "area": 640.0, "iscrowd": 0,
                     "category_id": 1})
    coco = {"info": {"synthetic": True, "organ": "breast"}, "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "benign"}, {"id": 2, "name": "malignant"}, {"id": 3, "name": "lesion"}]}
    path = tmp_path / "data" / "BUSI" / "annotations.json"
    path.write_text(json.dumps(coco))
    card = write_datacard(path, tmp_path / "cards")
    cal = card["calibration"]
    assert cal["reference"].startswith("BUS-BRA") and cal["statistics"]["box_w_rel"]["median"] == pytest.approx(40 / 96, abs=1e-4)
    assert set(cal["distance_w1_over_iqr"]) == {"box_w_rel", "box_h_rel", "box_aspect", "contrast_db", "speckle_snr", "mean"}
    coco["info"] = {}
    path.write_text(json.dumps(coco))
    assert "calibration" not in write_datacard(path, tmp_path / "cards")
