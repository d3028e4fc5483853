"""Pooling real-data runs across work directories (benchmarks/bench_real.py `import`,
benchmarks/bench_real_pool.py): only runs scored on the same test images at the same budget are
pooled, nothing of W is replaced, checkpoints stay behind, and the report names mixed code."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GT = {"images": [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2, 3, 4)],
      "annotations": [{"id": i, "image_id": i, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0,
                       "category_id": 1} for i in (1, 2, 3, 4)],
      "categories": [{"id": 1, "name": "benign"}]}


def _bench():
    spec = importlib.util.spec_from_file_location("bench_real", REPO / "benchmarks" / "bench_real.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _work(root: Path, seeds=(0, 1), steps=200, gt=GT) -> Path:
    """A bench_real work directory as `prepare` leaves it (only what pooling reads); each split
    names its converted file by absolute path, as `come split` writes it."""
    for ds in ("BUSBRA", "DDTI"):
        (root / "splits" / ds).mkdir(parents=True)
        info = {"annotations": str(root / "data" / ds / "annotations.json"), "seed": 0, "split": "test"}
        (root / "splits" / ds / "test.json").write_text(json.dumps({**gt, "info": info}))
    (root / "bench.yaml").write_text(yaml.safe_dump({"name": "bench-real", "results": str(root / "results"),
                                                     "train": {"epochs": 6, "max_steps_per_epoch": steps}}))
    (root / "overrides.json").write_text("[]")
    (root / "seeds.json").write_text(json.dumps(list(seeds)))
    return root


def _finished(work: Path, rid: str, shift: int = 0, ap: float = 0.5, code: str | None = None) -> Path:
    run = work / "results" / "runs" / rid
    (run / "predictions").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"weights")
    (run / "metrics.json").write_text(json.dumps({"datasets": {d: {"AP": ap} for d in ("BUSBRA", "DDTI")}}))
    (run / "train_log.jsonl").write_text(json.dumps({"loss": 1.0, "time": 3.0}) + "\n")
    for ds in ("BUSBRA", "DDTI"):
        dets = [{"image_id": i, "bbox": [10 + shift, 10, 30, 30], "score": 0.9, "category_id": 1} for i in (1, 2, 3, 4)]
        (run / "predictions" / f"{ds}.json").write_text(json.dumps(dets))
    if code:
        _bench().pool.stamp(work, rid, {"commit": "c" * 40, "come_tree": code * 40, "config_tree": "f" * 40,
                                        "dirty": False})
    return run


def test_import_copies_finished_runs_without_checkpoints_and_keeps_w(tmp_path):
    """Mutations caught: checkpoints copied, an unfinished run copied, W's own run replaced by
    the source's, the run's timing left behind, a seed W does not have pooled silently."""
    bench = _bench()
    w, a = _work(tmp_path / "W"), _work(tmp_path / "A", seeds=(0, 1, 3))
    mine = _finished(w, "inter-dino-moe", ap=0.61)
    _finished(a, "inter-dino-moe", ap=0.99)                       # same id: W's stays
    _finished(a, "inter-dino-moe-seed~1", code="a")
    _finished(a, "inter-come-ms-seed~3")                          # W has no seed 3
    (a / "results" / "runs" / "inter-come-ms-seed~1").mkdir(parents=True)    # unfinished
    (a / "timing.json").write_text(json.dumps({"inter-dino-moe-seed~1": {"wall_s": 60.0, "peak_rss_mb": 9.0},
                                               "inter-dino-moe-seed~1/eval": {"wall_s": 6.0, "peak_rss_mb": 8.0}}))
    copied = bench.import_from(w, a, None)
    assert copied == ["inter-dino-moe-seed~1"]
    got = w / "results" / "runs" / "inter-dino-moe-seed~1"
    assert (got / "predictions" / "DDTI.json").is_file() and not (got / "checkpoints").exists()
    assert json.loads((got / "bench_provenance.json").read_text())["imported_from"] == str(a.resolve())
    assert json.loads((mine / "metrics.json").read_text())["datasets"]["DDTI"]["AP"] == 0.61
    assert not (w / "results" / "runs" / "inter-come-ms-seed~1").exists()
    assert bench.load_timing(w)["inter-dino-moe-seed~1/eval"]["wall_s"] == 6.0
    assert bench.import_from(w, a, None) == []                    # again: nothing replaced
    with pytest.raises(SystemExit, match="inter-come-ms-seed~3.*not inter-organ runs"):
        bench.import_from(w, a, ["inter-come-ms-seed~3"])
    with pytest.raises(SystemExit, match="no finished run.*inter-come-ms-seed~1"):
        bench.import_from(w, a, ["inter-come-ms-seed~1"])


def test_import_refuses_other_test_images_or_budget(tmp_path):
    """Pairing needs the same test images and the same training budget; the refusal names the
    file. The splits' own path to the converted file differs between work directories and is not
    compared (W and A above). Mutations caught: pooling on the run ids alone, comparing the split
    files byte for byte (no two work directories could ever pool)."""
    bench = _bench()
    w = _work(tmp_path / "W")
    other = {**GT, "images": GT["images"][:3]}
    a = _work(tmp_path / "A", gt=other)
    _finished(a, "inter-dino-seed~1")
    with pytest.raises(SystemExit, match=r"A/splits/BUSBRA/test.json differs from .*W/splits/BUSBRA/test.json"):
        bench.import_from(w, a, None)
    b = _work(tmp_path / "B", steps=150)
    _finished(b, "inter-dino-seed~1")
    with pytest.raises(SystemExit, match=r"B/bench.yaml sets .*150.*another budget"):
        bench.import_from(w, b, None)
    with pytest.raises(SystemExit, match="is the work directory itself"):
        bench.import_from(w, w, None)
    assert not (w / "results").exists()


def test_report_shows_each_runs_code_and_names_mixed_code(tmp_path):
    """The report's code column comes from each run's stamp; a run without one reads "not
    recorded", and two codes in one report add the note. Mutation caught: pooling runs of
    different model code without saying so."""
    bench = _bench()
    w = _work(tmp_path / "W", seeds=(0,))
    _finished(w, "inter-dino", code="a")
    _finished(w, "inter-come-f2c", shift=2, code="a")
    text = bench.report(w, 20)
    assert "| aaaaaaaa/ffffffff |" in text and "different model code" not in text
    assert "- inter-come-f2c - inter-dino on mean:" in text
    _finished(w, "inter-damex", shift=4)                          # from before stamping
    text = bench.report(w, 20)
    assert "| not recorded |" in text
    assert "different model code (aaaaaaaa/ffffffff, not recorded)" in text
    assert bench.pool.code_key(w, "inter-damex") == "not recorded"


def test_a_run_resumed_under_other_code_reads_mixed(tmp_path):
    """`run` stamps again before a resume: the same code keeps one label, other code keeps the
    earlier trees and reads "mixed". Mutation caught: the resume's stamp overwriting the code
    that trained the run's first steps."""
    pool = _bench().pool
    ident = {"commit": "c" * 40, "come_tree": "a" * 40, "config_tree": "f" * 40, "dirty": False}
    pool.stamp(tmp_path, "inter-dino", ident)
    pool.stamp(tmp_path, "inter-dino", {**ident, "commit": "d" * 40})      # new commit, same trees
    assert pool.code_key(tmp_path, "inter-dino") == "aaaaaaaa/ffffffff"
    pool.stamp(tmp_path, "inter-dino", {**ident, "come_tree": "b" * 40})
    assert pool.code_key(tmp_path, "inter-dino") == "mixed: aaaaaaaa/ffffffff -> bbbbbbbb/ffffffff"
    pool.stamp(tmp_path, "inter-dino", {**ident, "come_tree": "b" * 40})
    assert pool.code_key(tmp_path, "inter-dino") == "mixed: aaaaaaaa/ffffffff -> bbbbbbbb/ffffffff"


def test_stamp_records_this_checkout():
    """`code_identity` reads git: the come/ and config/ tree hashes of HEAD (40 hex digits) in
    this checkout, or None fields outside one."""
    ident = _bench().pool.code_identity()
    if ident["commit"] is None:                                   # a source tarball, not a clone
        assert ident["come_tree"] is None and ident["config_tree"] is None
        return
    assert len(ident["come_tree"]) == 40 and len(ident["config_tree"]) == 40
    assert isinstance(ident["dirty"], bool)
