"""Every converter on files built to its documented layout, plus the quarantine contract."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from .helpers import write_corrupt, write_image, write_mask

from come.data.coco import load_coco
from come.data.converters import convert_dataset
from come.data.quarantine import ConversionWarning

S = (40, 30)


def _run(name, fmt, organ, raw, out, **kw):
    with pytest.warns(ConversionWarning) if kw.pop("expect_warn", False) else _nullcontext():
        summary = convert_dataset(name, fmt, organ, raw, out, **kw)
    return summary, load_coco(out / "annotations.json"), json.loads((out / "quarantine.json").read_text())


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _boxes(coco, stem):
    im = next(i for i in coco["images"] if stem in i["file_name"])
    return im, [a["bbox"] for a in coco["annotations"] if a["image_id"] == im["id"]]


def test_busi_layout_multi_masks_and_normal(tmp_path):
    root = tmp_path / "raw" / "Dataset_BUSI_with_GT"
    write_image(root / "benign" / "benign (1).png", S)
    write_mask(root / "benign" / "benign (1)_mask.png", S, [(2, 3, 5, 4)])
    write_mask(root / "benign" / "benign (1)_mask_1.png", S, [(20, 10, 6, 6)])
    write_image(root / "malignant" / "malignant (1).png", S)
    write_mask(root / "malignant" / "malignant (1)_mask.png", S, [(10, 10, 8, 8)])
    write_image(root / "normal" / "normal (1).png", S)
    write_mask(root / "normal" / "normal (1)_mask.png", S, [])
    summary, coco, _ = _run("BUSI", "busi_kaggle", "breast", tmp_path / "raw", tmp_path / "out" / "BUSI",
                            keep_normal=True)
    assert summary["images"] == 3 and summary["boxes"] == 3
    im, boxes = _boxes(coco, "benign_1")
    assert im["file_name"] == "BUSI/images/benign_1.png" and im["pathology"] == "benign"
    assert sorted(boxes) == [[2, 3, 5, 4], [20, 10, 6, 6]]
    assert all(a["category_id"] == 1 for a in coco["annotations"] if a["image_id"] == im["id"])
    im, boxes = _boxes(coco, "normal_1")
    assert im["pathology"] == "normal" and boxes == []
    assert (tmp_path / "out" / "BUSI" / "images" / "malignant_1.png").is_file()
    assert (tmp_path / "out" / "BUSI" / "BUSI.json").is_file()      # data card written too
    # default (the paper's 633 BUSI cases are lesion images only): normal images left out, counted
    summary, coco, _ = _run("BUSI", "busi_kaggle", "breast", tmp_path / "raw", tmp_path / "out" / "BUSI")
    assert summary["images"] == 2 and summary["excluded_by_config"] == {"normal": 1}
    assert not any("normal" in im["file_name"] for im in coco["images"])
    assert coco["info"]["excluded_by_config"] == {"normal": 1}


def _busbra(root, rows, images):
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir(parents=True)
    lines = ["ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX"]
    for rid, case, pat, box in rows:
        lines.append(f'{rid},{case},x,{pat},4,dev,{S[0]},{S[1]},left,"[{box[0] + 1},{box[1] + 1},{box[2] - 1},{box[3] - 1}]"')
    (root / "bus_data.csv").write_text("\n".join(lines) + "\n")
    for rid, make in images.items():
        make(root, rid)


def test_quarantine_contract_named_warnings_and_counts(tmp_path):
    """corrupt PNG, empty mask, size mismatch, missing label row: named, quarantined, counted."""
    root = tmp_path / "raw"
    ok = lambda r, i: (write_image(r / "Images" / f"{i}.png", S), write_mask(r / "Masks" / f"mask_{i[4:]}.png", S, [(5, 5, 10, 8)]))
    rows = [("bus_0001-l", 1, "benign", (5, 5, 10, 8)), ("bus_0002-l", 2, "malignant", (5, 5, 10, 8)),
            ("bus_0003-l", 3, "benign", (5, 5, 10, 8)), ("bus_0004-l", 4, "benign", (5, 5, 10, 8))]
    _busbra(root, rows, {
        "bus_0001-l": ok,
        "bus_0002-l": lambda r, i: (write_corrupt(r / "Images" / f"{i}.png"), write_mask(r / "Masks" / "mask_0002-l.png", S, [(1, 1, 3, 3)])),
        "bus_0003-l": lambda r, i: (write_image(r / "Images" / f"{i}.png", S), write_mask(r / "Masks" / "mask_0003-l.png", S, [])),
        "bus_0004-l": lambda r, i: (write_image(r / "Images" / f"{i}.png", S), write_mask(r / "Masks" / "mask_0004-l.png", (20, 20), [(1, 1, 3, 3)])),
        "bus_0005-l": ok,                                       # no row in bus_data.csv
    })
    with pytest.warns(ConversionWarning) as rec:
        summary = convert_dataset("BUSBRA", "busbra", "breast", root, tmp_path / "out" / "BUSBRA")
    reasons = {str(w.message).split(":")[0] for w in rec}
    assert {"corrupt_image", "empty_mask", "mask_size_mismatch", "missing_label"} <= reasons
    assert summary["images"] == 1 and summary["quarantined"] == 4
    assert summary["quarantine_counts"] == {"corrupt_image": 1, "empty_mask": 1,
                                            "mask_size_mismatch": 1, "missing_label": 1}
    q = json.loads((tmp_path / "out" / "BUSBRA" / "quarantine.json").read_text())
    assert {e["file"] for e in q["entries"]} == {f"bus_000{i}-l.png" for i in (2, 3, 4, 5)}
    coco = load_coco(tmp_path / "out" / "BUSBRA" / "annotations.json")
    assert coco["annotations"][0]["bbox"] == [5, 5, 10, 8]
    assert coco["images"][0]["group_id"] == "BUSBRA:case1"


def test_converter_is_deterministic(tmp_path):
    root = tmp_path / "raw"
    ok = lambda r, i: (write_image(r / "Images" / f"{i}.png", S, seed=int(i[4:8])),
                       write_mask(r / "Masks" / f"mask_{i[4:]}.png", S, [(3, 4, 9, 7)]))
    rows = [(f"bus_000{k}-r", k, "benign", (3, 4, 9, 7)) for k in range(1, 5)]
    _busbra(root, rows, {r[0]: ok for r in rows})
    out = tmp_path / "out" / "BUSBRA"
    convert_dataset("BUSBRA", "busbra", "breast", root, out)
    first = {p: (out / p).read_bytes() for p in ("annotations.json", "quarantine.json", "BUSBRA.json")}
    convert_dataset("BUSBRA", "busbra", "breast", root, out)
    assert first == {p: (out / p).read_bytes() for p in first}
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"bus_000{k}-r.png" for k in range(1, 5)]
    assert not list((tmp_path / "out").glob(".*"))          # no temp folder left behind


def test_failed_conversion_keeps_previous_output(tmp_path):
    out = tmp_path / "out" / "TUS"
    write_image(tmp_path / "raw" / "images" / "1.png", S)
    write_mask(tmp_path / "raw" / "masks" / "1.png", S, [(1, 1, 4, 4)])
    convert_dataset("TUS", "tus_kaggle", "thyroid", tmp_path / "raw", out)
    with pytest.raises(ValueError, match="not a TN-SCUI layout"):
        convert_dataset("TNSCUI", "tnscui", "thyroid", tmp_path / "raw", out)
    assert load_coco(out / "annotations.json")["images"][0]["source"] == "TUS"


def test_ddti_preprocessed_groups_crops_by_frame(tmp_path):
    root = tmp_path / "raw"
    for name in ("5_1(1)", "5_1(2)", "7_2"):
        write_image(root / "cropped" / f"{name}.png", (30, 30))
        write_mask(root / "mask" / f"{name}.gif", (30, 30), [(4, 4, 10, 12)], fmt="GIF")
    (root / "diagnosis.csv").write_text("5_1(1),4a,1\n5_1(2),4a,1\n7_2,3,0\n")
    _, coco, _ = _run("DDTI_PRE", "ddti_preprocessed", "thyroid", root, tmp_path / "out" / "DDTI", project_name="DDTI")
    groups = {i["native_id"]: i["group_id"] for i in coco["images"]}
    assert groups["5_1(1)"] == groups["5_1(2)"] == "DDTI:frame5_1" and groups["7_2"] == "DDTI:frame7_2"
    assert {i["native_id"]: i["pathology"] for i in coco["images"]}["7_2"] == "benign"
    assert all(a["bbox"] == [4, 4, 10, 12] for a in coco["annotations"])
    assert coco["images"][0]["file_name"].startswith("DDTI/images/5_1_1")


def test_ddti_original_xml_polygons(tmp_path):
    root = tmp_path / "raw"
    write_image(root / "1_1.jpg", (60, 40), fmt="JPEG")
    write_image(root / "1_2.jpg", (60, 40), fmt="JPEG")
    poly = lambda x0, y0, x1, y1: {"points": [{"x": x0, "y": y0}, {"x": x1, "y": y0}, {"x": x1, "y": y1}, {"x": x0, "y": y1}]}
    case = ET.Element("case")
    ET.SubElement(case, "number").text = "1"
    ET.SubElement(case, "tirads").text = "4b"
    for idx, polys in (("1", [poly(5, 6, 15, 20), poly(30, 5, 40, 9)]), ("2", [])):
        mark = ET.SubElement(case, "mark")
        ET.SubElement(mark, "image").text = idx
        ET.SubElement(mark, "svg").text = json.dumps(polys) if polys else None
    ET.ElementTree(case).write(root / "1.xml")
    summary, coco, q = _run("DDTI", "ddti_xml", "thyroid", root, tmp_path / "out" / "DDTI", expect_warn=True)
    assert summary["images"] == 1 and summary["boxes"] == 2
    assert sorted(a["bbox"] for a in coco["annotations"]) == [[5, 6, 11, 15], [30, 5, 11, 5]]
    assert coco["images"][0]["pathology"] == "malignant" and coco["images"][0]["group_id"] == "DDTI:case1"
    assert q["entries"][0]["reason"] == "empty_mask" and q["entries"][0]["file"] == "1_2.jpg"


def test_tn3k_components_and_labels(tmp_path):
    root = tmp_path / "raw" / "tn3k"
    write_image(root / "trainval-image" / "0000.jpg", S, fmt="JPEG")
    write_mask(root / "trainval-mask" / "0000.jpg", S, [(2, 2, 6, 6), (20, 15, 8, 8)], fmt="JPEG")
    write_image(root / "test-image" / "0000.jpg", S, fmt="JPEG")
    write_mask(root / "test-mask" / "0000.jpg", S, [(4, 4, 6, 5)], fmt="JPEG")
    (root / "label4trainval.csv").write_text("0000.jpg,1\n")
    (root / "label4test.csv").write_text("0000.jpg,0\n")
    _, coco, _ = _run("TN3K", "tn3k", "thyroid", tmp_path / "raw", tmp_path / "out" / "TN3K")
    im, boxes = _boxes(coco, "trainval_0000")
    assert im["pathology"] == "malignant" and len(boxes) == 2       # two components, two nodules
    for got, want in zip(sorted(boxes), [[2, 2, 6, 6], [20, 15, 8, 8]]):
        assert max(abs(a - b) for a, b in zip(got, want)) <= 1        # JPEG ringing tolerance
    assert _boxes(coco, "test_0000")[0]["pathology"] == "benign"


def test_tnscui_missing_label_row(tmp_path):
    root = tmp_path / "raw"
    for i in (1, 2):
        write_image(root / "image" / f"{i}.PNG", S)
        write_mask(root / "mask" / f"{i}.PNG", S, [(3, 3, 5, 5)])
    (root / "train.csv").write_text("ID,CATE\n1.PNG,0\n")
    summary, coco, q = _run("TNSCUI", "tnscui", "thyroid", root, tmp_path / "out" / "TNSCUI", expect_warn=True)
    assert summary["images"] == 1 and summary["quarantine_counts"] == {"missing_label": 1}
    assert q["entries"][0]["file"] == "tnscui/2.PNG"


def test_tud_binary01_masks_and_normals(tmp_path):
    root = tmp_path / "raw" / "TUD"
    for part in ("training", "test"):
        write_image(root / "images" / part / "a.png", S)
        write_mask(root / "annotations" / part / "a.png", S, [(6, 7, 8, 9)], value=1)
    write_image(root / "normal_thyroid" / "n1.png", S)
    summary, coco, _ = _run("TUD", "tud_neu", "thyroid", tmp_path / "raw", tmp_path / "out" / "TUD")
    assert summary["images"] == 3 and summary["boxes"] == 2
    assert all(a["bbox"] == [6, 7, 8, 9] for a in coco["annotations"])
    assert _boxes(coco, "normal_n1")[0]["pathology"] == "normal"


def test_busc_both_layouts(tmp_path):
    root = tmp_path / "raw" / "BUSC"
    write_image(root / "benign" / "images" / "b1.png", S)
    write_mask(root / "benign" / "masks" / "b1.png", S, [(1, 2, 3, 4)])
    write_image(root / "malignant" / "m1.bmp", S, fmt="BMP")
    write_mask(root / "malignant" / "m1_mask.bmp", S, [(5, 6, 7, 8)], fmt="BMP")
    _, coco, _ = _run("BUSC", "busc_mendeley", "breast", tmp_path / "raw", tmp_path / "out" / "BUSC")
    assert {i["pathology"] for i in coco["images"]} == {"benign", "malignant"}
    assert sorted(a["bbox"] for a in coco["annotations"]) == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_buv_cocovid_frames_grouped_by_video(tmp_path):
    root = tmp_path / "raw" / "Miccai 2022 BUV Dataset"
    imgs, anns = [], []
    for vid, cls in ((1, "benign"), (2, "malignant")):
        for f in range(3):
            fn = f"{cls}/v{vid}/{f:05d}.png"
            write_image(root / "rawframes" / fn, S, seed=f)
            imgs.append({"id": len(imgs) + 1, "file_name": fn, "video_id": vid, "frame_id": f, "width": S[0], "height": S[1]})
            if not (vid == 2 and f == 2):
                anns.append({"id": len(anns) + 1, "image_id": len(imgs), "category_id": vid, "bbox": [5, 5, 50, 10]})
    data = {"videos": [{"id": 1, "name": "benign/v1"}, {"id": 2, "name": "malignant/v2"}],
            "categories": [{"id": 1, "name": "benign"}, {"id": 2, "name": "malignant"}],
            "images": imgs, "annotations": anns}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_imagenet_vid_train.json").write_text(json.dumps(data))
    summary, coco, q = _run("BUV", "buv_cocovid", "breast", tmp_path / "raw", tmp_path / "out" / "BUV", expect_warn=True)
    assert summary["images"] == 5 and q["counts"] == {"missing_box": 1}
    assert {i["group_id"] for i in coco["images"]} == {"BUV:videobenign/v1", "BUV:videomalignant/v2"}
    assert all(a["bbox"] == [5, 5, 35, 10] for a in coco["annotations"])   # clipped to the frame


def test_layout_error_names_folder(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(ValueError, match="not a BUS-BRA layout"):
        convert_dataset("BUSBRA", "busbra", "breast", tmp_path / "raw", tmp_path / "out" / "BUSBRA")
    assert not (tmp_path / "out" / "BUSBRA").exists()


def test_busbra_table_without_case_column_is_named(tmp_path):
    root = tmp_path / "raw"
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir()
    (root / "bus_data.csv").write_text("ID,Pathology\nbus_0001-l,benign\n")
    with pytest.raises(ValueError, match=r"bus_data.csv: missing column\(s\) \['Case'\]"):
        convert_dataset("BUSBRA", "busbra", "breast", root, tmp_path / "out" / "BUSBRA")


def test_corrupt_mask_is_quarantined(tmp_path):
    write_image(tmp_path / "raw" / "images" / "a.png", S)
    write_image(tmp_path / "raw" / "images" / "b.png", S)
    write_mask(tmp_path / "raw" / "masks" / "a.png", S, [(1, 1, 5, 5)])
    write_corrupt(tmp_path / "raw" / "masks" / "b.png")
    summary, _, q = _run("TUS", "tus_kaggle", "thyroid", tmp_path / "raw", tmp_path / "out" / "TUS", expect_warn=True)
    assert summary["images"] == 1 and q["counts"] == {"corrupt_mask": 1}
