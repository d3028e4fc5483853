"""Named errors instead of tracebacks or half-written outputs (issue 15, items 6, 7 and 8)."""
from __future__ import annotations

import json
import types

import pytest

from come import cli
from come.cli import main


def test_evaluate_checks_every_split_before_writing(setup):
    """Item 7: old `come evaluate` wrote predictions/BUSI.json, then failed on the empty DDTI
    test split; a split without boxes silently left the mean."""
    cfg, run, root = setup
    assert main(["train", "--config", str(cfg), "--out", str(run), "--no-eval"]) == 0
    ddti = root / "bench" / "splits" / "DDTI" / "test.json"
    full = json.loads(ddti.read_text())
    ddti.write_text(json.dumps({**full, "images": [], "annotations": []}))
    assert main(["evaluate", "--run-dir", str(run)]) == 1
    assert not (run / "predictions").exists() and not (run / "metrics.json").exists()
    ddti.write_text(json.dumps({**full, "annotations": []}))          # images, but no box
    assert main(["evaluate", "--run-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["datasets"]["DDTI"]["AP"] is None
    assert metrics["mean_over"] == {"datasets": ["BUSI"], "count": 1, "of": 2}


def test_split_of_one_image_is_refused(tmp_path, capsys):
    """Item 7: old `come split` wrote an empty test split with exit 0."""
    coco = {"images": [{"id": 1, "file_name": "X/images/a.png", "width": 8, "height": 8,
                        "source": "BUSI", "organ": "breast", "pathology": "benign", "group_id": "g1"}],
            "annotations": [], "categories": [{"id": 1, "name": "benign"}, {"id": 2, "name": "malignant"},
                                              {"id": 3, "name": "lesion"}]}
    src = tmp_path / "annotations.json"
    src.write_text(json.dumps(coco))
    assert main(["split", "--coco", str(src), "--out", str(tmp_path / "split")]) == 1
    assert "leave the test split empty" in capsys.readouterr().err
    assert not (tmp_path / "split").exists()


def test_set_error_names_the_override(capsys):
    """Item 8: old message blamed config/config.yaml for a bad --set value."""
    assert main(["config", "--set", "model.ffn.top_k=three"]) == 2
    err = capsys.readouterr().err
    assert "override model.ffn.top_k: expected int" in err and "valid by itself" in err


def _fake_command(monkeypatch, exc: BaseException) -> None:
    def run(args):
        raise exc
    module = types.SimpleNamespace(run=run, configure=lambda p: None)
    monkeypatch.setitem(cli.COMMANDS, "boom", ("fake.boom", "raises"))
    monkeypatch.setattr(cli.importlib, "import_module",
                        lambda name, _real=cli.importlib.import_module: module if name == "fake.boom" else _real(name))


def test_expected_failure_is_one_line_bug_keeps_traceback(monkeypatch, capsys):
    """Item 6: every expected failure (a ComeError, a bad file) is one line and exit 1; a bug
    (KeyError here) keeps its traceback; COME_DEBUG=1 shows the traceback always."""
    from come.utils.errors import ComeError

    monkeypatch.delenv("COME_DEBUG", raising=False)
    _fake_command(monkeypatch, ComeError("data/x.pt: damaged"))
    assert main(["boom"]) == 1
    assert capsys.readouterr().err == "come boom: error: data/x.pt: damaged\n"
    monkeypatch.setenv("COME_DEBUG", "1")
    with pytest.raises(ComeError):
        main(["boom"])
    monkeypatch.delenv("COME_DEBUG")
    _fake_command(monkeypatch, KeyError("model"))
    with pytest.raises(KeyError):
        main(["boom"])


def test_image_verification_is_cached_by_content(tmp_path, monkeypatch):
    """Item 6: images are decoded once (cache keyed by content hash); a changed file is checked
    again and named. Old code had no verification at dataset build at all."""
    from come.data.verify import ImageCheckError, verify_images

    from .helpers import write_png

    monkeypatch.setenv("COME_CACHE_DIR", str(tmp_path / "cache"))
    a, b = write_png(tmp_path / "a.png", seed=1), write_png(tmp_path / "b.png", seed=2)
    items = [(a, (40, 30)), (b, (40, 30))]
    assert verify_images(items, "split.json") == 2
    assert verify_images(items, "split.json") == 0                   # both known by content
    b.write_bytes(b.read_bytes()[:50])
    with pytest.raises(ImageCheckError, match=rf"split.json: 1 image\(s\) unusable: {b}: cannot be decoded"):
        verify_images(items, "split.json")
    with pytest.raises(ImageCheckError, match="decoded size 40x30 differs.*41x30"):
        verify_images([(a, (41, 30))], "split.json")
