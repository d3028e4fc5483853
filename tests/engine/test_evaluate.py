"""`evaluate_run` and the `come train` / `come evaluate` commands (with the stand-in detector)."""
from __future__ import annotations

import json

import pytest
import yaml

from come.cli import main
from come.config import to_dict
from come.data.coco import load_coco
from come.engine.coco_eval import coco_metrics
from come.engine.evaluate import evaluate_run
from come.engine.train import train

from .conftest import tiny_config, tiny_parts


def test_evaluate_run_writes_predictions_metrics_and_figure(bench, parts, tmp_path):
    cfg = tiny_config(*bench, train__epochs=1)
    out = tmp_path / "run"
    train(cfg, out, parts)
    metrics = evaluate_run(cfg, out, parts)
    assert set(metrics) >= {"run", "method", "paradigm", "variant", "seed", "datasets", "mean", "timing"}
    assert set(metrics["datasets"]) == {"BUSI", "DDTI"}
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["datasets"] == metrics["datasets"]
    for ds in ("BUSI", "DDTI"):
        m = metrics["datasets"][ds]
        assert set(m) == {"AP", "AP50", "AP75", "Recall"} and all(0 <= v <= 1 for v in m.values())
        preds = json.loads((out / "predictions" / f"{ds}.json").read_text())
        gt = load_coco(bench[1] / ds / "test.json")
        assert {p["image_id"] for p in preds} == {im["id"] for im in gt["images"]}
        assert len(preds) == 4 * 4                                # 4 test images x 4 queries
        assert all(p["category_id"] == 3 and len(p["bbox"]) == 4 for p in preds)
        assert coco_metrics(gt, preds) == pytest.approx(m)        # same numbers from the file
    assert metrics["mean"]["AP"] == pytest.approx(
        (metrics["datasets"]["BUSI"]["AP"] + metrics["datasets"]["DDTI"]["AP"]) / 2)
    t = metrics["timing"]
    assert t["train_seconds"] > 0 and t["eval_images"] == 8 and t["eval_images_per_second"] > 0
    assert (out / "qualitative.png").stat().st_size > 1000


def test_predictions_are_in_original_pixels(bench, parts, tmp_path):
    """A detector that outputs the true box must score AP 1 through resize + postprocess."""
    from come.engine.evaluate import predict
    from come.data.dataset import build_dataset
    import torch

    cfg = tiny_config(*bench)
    ds = build_dataset(cfg, "test", ["BUSI"])

    class Oracle(torch.nn.Module):
        def forward(self, images, pad_mask, source_ids, targets=None, shared=None):
            return {"pred_logits": torch.ones(len(images), 1, 1),
                    "pred_boxes": torch.stack([t["boxes"][0] for t in self.batch])[:, None]}

    oracle = Oracle()
    loader_targets = [ds[i][1] for i in range(len(ds))]
    cfg.eval.batch_size = len(ds)
    oracle.batch = loader_targets
    dets = predict(oracle, parts.postprocess, ds, cfg, torch.device("cpu"))
    assert coco_metrics(load_coco(bench[1] / "BUSI" / "test.json"), dets)["AP"] == pytest.approx(1.0)


def test_cli_train_then_evaluate(bench, tmp_path, monkeypatch):
    import come.engine.evaluate as ev
    import come.engine.train as tr

    monkeypatch.setattr(tr, "default_parts", lambda cfg: tiny_parts())
    monkeypatch.setattr(ev, "default_parts", lambda cfg: tiny_parts())
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(to_dict(tiny_config(*bench))))
    out = tmp_path / "runs" / "r1"
    assert main(["train", "--config", str(cfg_file), "--set", "train.epochs=1", "--no-eval", "--out", str(out)]) == 0
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "config.yaml").is_file()
    assert not (out / "metrics.json").exists()                               # --no-eval: train only
    assert main(["evaluate", "--run-dir", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["run"] == "r1"
    out2 = tmp_path / "runs" / "r2"                                           # default: evaluated in process
    assert main(["train", "--config", str(cfg_file), "--set", "train.epochs=1", "--out", str(out2)]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["datasets"].keys() == {"BUSI", "DDTI"}
    assert (out2 / "qualitative.png").stat().st_size > 1000
    assert main(["evaluate", "--run-dir", str(tmp_path / "nope")]) == 2    # clear config error


def test_train_command_builds_grid_runs_with_resolve_run(repo, monkeypatch):
    """Plain imports: a broken come.workflow.grid or a missing config/tiny.yaml fails here."""
    monkeypatch.chdir(repo)
    from come.commands.train import build_run_config
    from come.workflow.grid import load_grid

    cfg0 = build_run_config(str(repo / "config" / "tiny.yaml"), None, [])
    row = load_grid(repo / cfg0.grid.file).rows[0]
    cfg = build_run_config(str(repo / "config" / "tiny.yaml"), row.id, ["train.threads=1"])
    assert cfg.run.id == row.id and cfg.train.threads == 1
