"""YOLOv10 and CerberusDet baselines: training, NMS-free prediction, evaluation, head routing."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from come.baselines import evaluate_baseline, train_baseline
from come.baselines.yolo_predict import predict_records
from come.baselines.yolo_train import build_model
from come.data.coco import load_coco
from come.data.dataset import read_records, split_file
from come.engine.coco_eval import coco_metrics

REPO = Path(__file__).resolve().parents[2]


def pycocotools_ap(gt_path: Path, dets: list[dict], max_dets: int = 100) -> float | None:
    """AP straight from pycocotools, lesion mode done by hand (every category -> 3); -1 -> None."""
    gt = json.loads(gt_path.read_text())
    for a in gt["annotations"]:
        a["category_id"] = 3
    gt["categories"] = [{"id": 3, "name": "lesion"}]
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes([dict(d, category_id=3) for d in dets]), "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return None if ev.stats[0] < 0 else float(ev.stats[0])


class OracleModel:
    """Stand-in whose `detect` returns the ground-truth boxes in letterboxed pixels."""

    def __init__(self, records, size):
        self.records, self.size, self.i = records, size, 0

    def eval(self):
        return self

    def detect(self, batch, head=0, max_det=100):
        rows = []
        for _ in range(batch.shape[0]):
            rec = self.records[self.i]
            self.i += 1
            r = self.size / max(rec.width, rec.height)
            b = torch.as_tensor(rec.boxes, dtype=torch.float32)
            xyxy = torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1) * r
            rows.append(torch.cat([xyxy, torch.ones(len(b), 1), torch.zeros(len(b), 1)], 1))
        return torch.stack(rows)


def test_letterboxed_predictions_map_back_to_original_pixels(yolo_cfg):
    """Oracle boxes in the letterboxed frame score AP 1 after mapping back, with our evaluator
    and with pycocotools alike. Mutation: multiplying instead of dividing by the ratio fails."""
    cfg = yolo_cfg(data__image_size=96)
    path = split_file(cfg, "BUSI", "test")
    records, _ = read_records(path, Path(cfg.data.root), "BUSI", 0, "lesion")
    dets = predict_records(OracleModel(records, 96), records, 0, cfg, torch.device("cpu"))
    assert coco_metrics(load_coco(path), dets)["AP"] == pytest.approx(1.0)
    assert pycocotools_ap(path, dets) == pytest.approx(1.0)


def test_yolov10_run_scored_by_our_evaluator_equals_pycocotools(yolo_cfg, tmp_path):
    """Train one step, evaluate: metrics.json AP == pycocotools on predictions/<DS>.json; the
    detections are the one-to-one head's top-k (<= eval.max_dets per image, no NMS)."""
    cfg = yolo_cfg(eval__max_dets=20)
    run = tmp_path / "run"
    ckpt = train_baseline(cfg, run)
    assert torch.load(ckpt, weights_only=True)["finished"]
    metrics = evaluate_baseline(cfg, run)
    model = build_model(cfg)
    assert model.end2end and hasattr(model.heads[0], "one2one_cv2")
    for ds in ("BUSI", "DDTI"):
        dets = json.loads((run / "predictions" / f"{ds}.json").read_text())
        per_image: dict[int, int] = {}
        for d in dets:
            per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
        assert dets and max(per_image.values()) <= 20
        assert metrics["datasets"][ds]["AP"] == pycocotools_ap(split_file(cfg, ds, "test"), dets, 20)
    assert json.loads((run / "metrics.json").read_text())["method"] == cfg.run.method
    assert (run / "ultralytics").is_dir()                   # ultralytics' config dir is inside the run


def test_run_passes_offline_without_delay(yolo_cfg, tmp_path):
    """In a fresh process whose socket connections and DNS lookups all fail, a YOLOv10 run
    trains and evaluates, attempts no connection, and keeps ultralytics' settings in the run
    folder. Mutation: dropping YOLO_CONFIG_DIR from import_ultralytics writes them elsewhere."""
    cfg = yolo_cfg()
    cfg_path = tmp_path / "cfg.yaml"
    from come.config.loader import dump_config
    dump_config(cfg, cfg_path)
    script = tmp_path / "offline.py"
    script.write_text(textwrap.dedent(f"""
        import json, socket, sys, time
        calls = []
        def refuse(*args, **kwargs):
            calls.append(repr(args[:2]))
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        t0 = time.perf_counter()
        from come.config import load_config
        from come.baselines import train_baseline, evaluate_baseline
        cfg = load_config({str(cfg_path)!r}, [])
        train_baseline(cfg, {str(tmp_path / 'run')!r})
        m = evaluate_baseline(cfg, {str(tmp_path / 'run')!r})
        print(json.dumps({{"calls": calls, "seconds": time.perf_counter() - t0, "AP": m["mean"]["AP"]}}))
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env["PYTHONPATH"] = str(REPO)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["calls"] == []
    assert report["AP"] is not None
    assert time.perf_counter() - t0 < 240          # no connection timeout (typically 15-30 s)
    assert list((tmp_path / "run" / "ultralytics").rglob("settings.json"))
    assert (tmp_path / "run" / "ultralytics" / "Arial.ttf").is_file()


def test_cerberusdet_has_one_shared_trunk_and_a_head_per_dataset(yolo_cfg):
    cfg = yolo_cfg("cerberusdet")
    model = build_model(cfg)
    single = build_model(yolo_cfg("yolov10", baselines__yolo__variant="yolov8n"))
    assert len(model.heads) == 2 and len(single.heads) == 1
    head = sum(p.numel() for p in model.heads[0].parameters())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in single.parameters()) + head


def test_cerberusdet_routes_each_image_to_its_datasets_head(yolo_cfg, tmp_path, monkeypatch):
    """Each test image goes through its own dataset's head, and swapping the two trained heads
    changes the predictions (they equal the other head's). Mutation: head_of returning 0."""
    cfg = yolo_cfg("cerberusdet", train__max_steps_per_epoch=3, baselines__yolo__warmup_steps=0,
                   baselines__yolo__lr=0.01)
    run = tmp_path / "run"
    train_baseline(cfg, run)
    seen: list[tuple[int, int]] = []
    from come.baselines.yolo_models import MultiHeadYolo
    original = MultiHeadYolo.detect

    def spy(self, img, head=0, **kw):
        seen.append((head, img.shape[0]))
        return original(self, img, head=head, **kw)
    monkeypatch.setattr(MultiHeadYolo, "detect", spy)
    evaluate_baseline(cfg, run)
    assert {h for h, _ in seen} == {0, 1}
    busi = [n for h, n in seen if h == 0]
    assert sum(busi) == 4 and sum(n for h, n in seen if h == 1) == 4   # 4 test images each
    monkeypatch.setattr(MultiHeadYolo, "detect", original)

    model = build_model(cfg)
    model.load_state_dict(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"])
    records, _ = read_records(split_file(cfg, "BUSI", "test"), Path(cfg.data.root), "BUSI", 0, "lesion")
    own = predict_records(model, records, 0, cfg, torch.device("cpu"))
    other = predict_records(model, records, 1, cfg, torch.device("cpu"))
    swapped = copy.deepcopy(model)
    swapped.heads[0].load_state_dict(model.heads[1].state_dict())
    swapped.heads[1].load_state_dict(model.heads[0].state_dict())
    after = predict_records(swapped, records, 0, cfg, torch.device("cpu"))
    x = torch.rand(2, 3, 64, 64)
    assert not torch.equal(swapped.eval().detect(x, head=0), model.eval().detect(x, head=0))
    assert after != own
    assert after == other
    assert json.loads((run / "predictions" / "BUSI.json").read_text()) == own


def test_local_pretrained_checkpoint_is_loaded_and_a_missing_one_named(yolo_cfg, tmp_path):
    """baselines.yolo.pretrained: a local state_dict initialises the trunk (no download); a
    missing file is reported by path. Mutation: ignoring `pretrained` leaves random weights."""
    torch.manual_seed(1)
    donor = build_model(yolo_cfg())
    path = tmp_path / "yolov10n_local.pt"
    from ultralytics.nn.tasks import DetectionModel
    base = DetectionModel("yolov10n.yaml", nc=1, verbose=False)
    base.model[:-1].load_state_dict(donor.trunk.state_dict())
    base.model[-1].load_state_dict(donor.heads[0].state_dict())
    torch.save(base.state_dict(), path)
    torch.manual_seed(2)
    loaded = build_model(yolo_cfg(baselines__yolo__pretrained=str(path)))
    for a, b in zip(loaded.state_dict().values(), donor.state_dict().values()):
        assert torch.equal(a, b)
    torch.save({"model": base}, tmp_path / "pickled.pt")            # an ultralytics-style pickled model
    with pytest.raises(ValueError, match="pickled.pt: not a plain state_dict"):
        build_model(yolo_cfg(baselines__yolo__pretrained=str(tmp_path / "pickled.pt")))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_model(yolo_cfg(baselines__yolo__pretrained=str(tmp_path / "nope.pt")))


def test_yolo_training_is_seeded_and_deterministic(yolo_cfg, tmp_path):
    """Two runs of the same config give identical weights and loss logs (CPU)."""
    cfg = yolo_cfg(train__max_steps_per_epoch=2)
    states, logs = [], []
    for name in ("a", "b"):
        ckpt = train_baseline(cfg, tmp_path / name)
        states.append(torch.load(ckpt, weights_only=True)["model"])
        logs.append([{k: v for k, v in json.loads(ln).items() if k != "time"}
                     for ln in (tmp_path / name / "train_log.jsonl").read_text().splitlines()])
    assert logs[0] == logs[1]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_importing_ultralytics_keeps_pillows_image_open(tmp_path):
    """ultralytics patches PIL.Image.open (a pi-heif install on unreadable files); our import
    restores Pillow's. Mutation: without the restore a corrupt PNG raises ModuleNotFoundError."""
    import PIL.Image

    from come.baselines.ultra_env import import_ultralytics
    import_ultralytics(tmp_path / "run")
    assert PIL.Image.open.__module__ == "PIL.Image"
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(PIL.UnidentifiedImageError):
        PIL.Image.open(bad)


def test_come_train_evaluates_a_yolo_run_with_the_baseline_evaluator(yolo_cfg, tmp_path):
    """`come train` (the workflow's only job per run) evaluates in the same process with the
    baseline's evaluator. Mutation caught: `come train` calling the DINO `evaluate_run` for every
    run (it fails loading a YOLO checkpoint into a DINO, as the first demo after the merge did)."""
    import yaml

    from come.cli import main
    from come.config.loader import to_dict

    cfg = yolo_cfg()
    cfg_file = tmp_path / "yolo.yaml"
    cfg_file.write_text(yaml.safe_dump(to_dict(cfg)))
    run = tmp_path / "cli-run"
    assert main(["train", "--config", str(cfg_file), "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == cfg.run.method and set(metrics["datasets"]) == {"BUSI", "DDTI"}
    assert (run / "predictions" / "BUSI.json").exists()
