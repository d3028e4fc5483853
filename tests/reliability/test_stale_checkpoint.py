"""`come train` owns the stale-checkpoint protection (issue 15, item 9): whoever runs it
(Snakemake, DVC, a user's shell), a checkpoint of another config is set aside, one of the same
config is resumed, and temp files of a killed save are removed."""
from __future__ import annotations

import json
from pathlib import Path

from come.cli import main
from come.config import load_config
from come.engine.checkpoint import load_checkpoint
from come.engine.rundir import (STALE_DIR, config_signature, legacy_config_signature, prepare_run_dir,
                                run_signature, training_inputs)

REPO = Path(__file__).resolve().parents[2]


def test_changed_config_sets_the_checkpoint_aside(setup):
    """Old `come train` resumed whatever last.pt it found (the check lived in train.smk's shell)."""
    cfg, run, _ = setup
    train = ["train", "--config", str(cfg), "--out", str(run)]
    assert main(train) == 0
    first = load_checkpoint(run / "checkpoints" / "last.pt")
    assert main(train) == 0                                           # same config: finished, no-op
    assert not (run / STALE_DIR).exists()
    assert main(train + ["--set", "train.lr=0.002"]) == 0             # what training depends on
    stale = load_checkpoint(run / STALE_DIR / "last.pt")
    assert stale["step"] == first["step"] and (run / STALE_DIR / "train_log.jsonl").is_file()
    steps = [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]                                      # trained from scratch
    assert (run / "train.signature").read_text().strip() == run_signature(
        load_config(cfg, ["train.lr=0.002", f"run.id={run.name}"]))


def test_prepare_run_dir_rules(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"old")
    (run / "checkpoints" / ".last.pt.x1.tmp").write_bytes(b"half")
    assert prepare_run_dir(run, "aaaa") is True                       # no signature: unknown config
    assert (run / STALE_DIR / "last.pt").read_bytes() == b"old"
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"new")
    (run / "checkpoints" / ".last.pt.x2.tmp").write_bytes(b"half")
    assert prepare_run_dir(run, "aaaa") is False                      # same signature: resumed
    assert (run / "checkpoints" / "last.pt").read_bytes() == b"new"
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_signature_ignores_eval_workflow_and_tables():
    base = load_config(REPO / "config" / "config.yaml")
    same = load_config(REPO / "config" / "config.yaml",
                       ["eval.batch_size=7", "workflow.train_threads=3", "run.tables=[x]"])
    other = load_config(REPO / "config" / "config.yaml", ["model.ffn.hidden_dim=96"])
    assert config_signature(base) == config_signature(same) != config_signature(other)


def test_train_rule_has_no_shell_logic():
    rule = (REPO / "workflow" / "rules" / "train.smk").read_text()
    shell = rule[rule.index("rule train_run"):rule.index("rule train:")].split("shell:")[1]
    assert "mv " not in shell and "signature" not in shell and "train --config" in shell


def test_more_epochs_resume_fewer_epochs_start_afresh(setup):
    """A learning curve trains 2, then 4 epochs: the second call must continue the first run.
    Mutation caught: `train.epochs` back in `config_signature` (the 5-epoch call then set the
    3-epoch checkpoint aside and retrained from step 1), or `prepare_run_dir` ignoring
    `epochs` (the 2-epoch call then kept a 5-epoch model and reported it as 2 epochs)."""
    cfg, run, _ = setup
    train = ["train", "--config", str(cfg), "--out", str(run), "--no-eval"]
    assert main(train) == 0                                           # 3 epochs of 1 step
    assert main(train + ["--set", "train.epochs=5"]) == 0
    assert not (run / STALE_DIR).exists()
    steps = [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]                                    # continued, not retrained
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 5
    assert main(train + ["--set", "train.epochs=2"]) == 0              # fewer: the 5-epoch model is set aside
    assert load_checkpoint(run / STALE_DIR / "last.pt")["epoch"] == 5
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2
    steps = [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_signature_epochs_rule():
    """Epochs and save cadence do not change the engine's signature; they do for YOLO
    (ultralytics' schedule depends on epochs) and for Snakemake's re-run param."""
    from come.workflow.plan import Plan
    base = load_config(REPO / "config" / "config.yaml")
    longer = load_config(REPO / "config" / "config.yaml", ["train.epochs=9", "train.checkpoint_every=7"])
    assert config_signature(base) == config_signature(longer)
    assert config_signature(base) != config_signature(load_config(REPO / "config" / "config.yaml",
                                                                   ["train.lr_drop_epochs=[1]"]))
    yolo = load_config(REPO / "config" / "config.yaml", ["model.arch=yolov10"])
    yolo9 = load_config(REPO / "config" / "config.yaml", ["model.arch=yolov10", "train.epochs=9"])
    assert config_signature(yolo) != config_signature(yolo9)
    plan = Plan.build(REPO / "config" / "tiny.yaml")
    rid = plan.run_ids[0]
    assert plan.run_signature(rid).endswith(f"-{plan.configs[rid].train.epochs}ep")


def _steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]


def test_moved_data_resumes_changed_data_starts_afresh(setup, tmp_path):
    """A 42-hour real-data grid must survive a moved data folder or a registry alias, and must
    not continue a model on data that changed under the same config. Mutations caught: the
    location keys back in `config_signature` (the moved copy then retrained from step 1), or
    `inputs_signature` dropped from `run_signature` (the edited split then resumed the model
    trained on the old boxes)."""
    import shutil
    cfg, run, _ = setup
    train = ["train", "--config", str(cfg), "--out", str(run), "--no-eval"]
    assert main(train) == 0
    c0 = load_config(cfg)
    moved = tmp_path / "moved_splits"
    shutil.copytree(c0.data.splits_root, moved)
    relocate = ["--set", f"data.splits_root={moved}", "--set", "data.registry_entries={DDTI: DDTI_PRE}",
                "--set", "data.raw_root=elsewhere/raw", "--set", "train.epochs=4"]
    assert main(train + relocate) == 0
    assert not (run / STALE_DIR).exists() and _steps(run) == [1, 2, 3, 4]   # resumed
    split = moved / "BUSI" / "train.json"
    coco = json.loads(split.read_text())
    coco["annotations"] = coco["annotations"][1:]                          # one box fewer
    split.write_text(json.dumps(coco))
    assert main(train + relocate) == 0
    assert load_checkpoint(run / STALE_DIR / "last.pt")["epoch"] == 4
    assert _steps(run) == [1, 2, 3, 4]                                     # retrained from step 1


def test_training_inputs_name_splits_and_the_run_s_experts():
    cfg = load_config(REPO / "config" / "config.yaml",
                      ["model.ffn.type=come", "run.train_datasets=[BUSI, BUV]"])
    names = [str(p) for p in training_inputs(cfg)]
    assert names[:2] == [f"{cfg.data.splits_root}/BUSI/train.json", f"{cfg.data.splits_root}/BUV/train.json"]
    assert names[2] == f"{cfg.experts.root}/structure/encoder.pt"
    assert names[3].startswith(f"{cfg.experts.root}/trainset/") and names[3].endswith("semantic/encoder.pt")
    dino = load_config(REPO / "config" / "config.yaml", ["run.train_datasets=[BUSI]"])
    assert [p.name for p in training_inputs(dino)] == ["train.json"]


def test_a_folder_of_the_older_scheme_is_adopted(tmp_path):
    """Upgrading must not set aside every finished run: a `train.signature` written by the
    config-text scheme is adopted when it matches the run's config under that scheme."""
    cfg = load_config(REPO / "config" / "config.yaml")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"finished")
    (run / "train.signature").write_text(legacy_config_signature(cfg) + "\n")
    assert prepare_run_dir(run, "new-scheme", adopt=(legacy_config_signature(cfg),)) is False
    assert (run / "checkpoints" / "last.pt").read_bytes() == b"finished"
    assert (run / "train.signature").read_text().strip() == "new-scheme"
    (run / "train.signature").write_text("someotherconfig\n")
    assert prepare_run_dir(run, "new-scheme", adopt=(legacy_config_signature(cfg),)) is True


def test_one_more_dataset_leaves_the_other_runs_signatures():
    """`datasets: auto` finding one more dataset must not re-run the grid (Snakemake's param is
    `Plan.run_signature`). Mutation caught: `data.datasets` back in the signature."""
    from come.workflow.plan import Plan
    few = Plan.build(REPO / "config" / "tiny.yaml")
    rid = few.run_ids[0]
    datasets = few.cfg.data.datasets if isinstance(few.cfg.data.datasets, list) else []
    assert datasets, "tiny.yaml lists its datasets"
    cfg = few.configs[rid]
    more = load_config(REPO / "config" / "tiny.yaml", [f"data.datasets=[{', '.join(datasets + ['TUS'])}]"])
    more.run = cfg.run
    assert config_signature(more) == config_signature(cfg)
