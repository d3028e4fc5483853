"""The tables name the interpretation each COME row used (issue 12 acceptance), read from the
runs' config.yaml. Fails on the old code: no come.reports.interpretation, no note under tables."""
from pathlib import Path

import yaml

from come.cli import main
from come.config.loader import to_dict
from come.config.schema import Config
from come.reports.interpretation import describe_ffn, interpretation_notes
from come.reports.summary import SUMMARY_COLUMNS, rows_to_csv

ROOT = Path(__file__).resolve().parents[2]


def come_config(clustering: str, **ffn) -> dict:
    cfg = Config()
    f = cfg.model.ffn
    f.type, f.clustering, f.stages, f.layers, f.top_k = "come", clustering, ["decoder"], [0, 2, 4], 3
    for k, v in ffn.items():
        setattr(f, k, v)
    return to_dict(cfg)


def write_run(root: Path, run: str, config: dict) -> None:
    (root / run).mkdir(parents=True)
    (root / run / "config.yaml").write_text(yaml.safe_dump(config))


def test_describe_names_the_clustering_reading():
    ms = describe_ffn(come_config("multistep")["model"]["ffn"])
    assert "Multi-Step residual (5 x k=4" in ms and "decoder layers [0, 2, 4]" in ms
    assert "top-3 of 8" in ms
    old = come_config("multistep")["model"]["ffn"]
    old.pop("multistep_mode")                          # a config written before issue 12
    assert "Multi-Step repeat" in describe_ffn(old)
    assert "Mixing = mean of Fine2Coarse 16->8 and Multi-Step residual" in \
        describe_ffn(come_config("mixing")["model"]["ffn"])
    assert describe_ffn({"type": "damex"}) == ""


def test_notes_per_come_row_and_missing_configs(tmp_path):
    write_run(tmp_path, "a", come_config("multistep"))
    write_run(tmp_path, "b", come_config("multistep", multistep_mode="repeat"))
    rows = [{"method": "COME (Multi-Step)", "variant": "", "run": r} for r in ("a", "b", "c")]
    rows.append({"method": "DINO", "variant": "", "run": "d"})
    notes = interpretation_notes(rows, tmp_path)
    assert len(notes) == 1 and notes[0].startswith("COME (Multi-Step): ")
    assert "residual" in notes[0] and "repeat" in notes[0] and "no config.yaml for runs c" in notes[0]


def test_come_tables_prints_the_note_under_table6(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "inter-come-ms", come_config("multistep"))
    base = {"table": "table6_clustering", "paradigm": "", "method": "COME (Multi-Step)",
            "variant": "Multi-Step", "seed": 0, "run": "inter-come-ms"}
    rows = [{**base, "dataset": "inter-organ", "metric": "AP", "value": 0.5},
            {**base, "dataset": "inter-organ", "metric": "clustering_ms_per_step", "value": 3.0}]
    assert set(rows[0]) == set(SUMMARY_COLUMNS)
    summary = tmp_path / "metrics" / "summary.csv"
    summary.parent.mkdir()
    summary.write_text(rows_to_csv(rows))
    out = tmp_path / "tables"
    assert main(["tables", "--config", str(ROOT / "config" / "config.yaml"), "--summary", str(summary),
                 "--paper", str(ROOT / "config" / "paper_tables.csv"), "--out", str(out),
                 "--runs", str(runs), "--no-bootstrap"]) == 0
    md = (out / "table6_clustering.md").read_text()
    assert "Interpretation used by the COME rows" in md
    assert "COME (Multi-Step) [Multi-Step]: clustering Multi-Step residual" in md
    assert "Multi-Step residual" in (out / "table6_clustering.tex").read_text()
    others = [p for p in out.glob("*.md") if p.name != "table6_clustering.md"]
    assert others and not any("Interpretation" in p.read_text() for p in others)   # no COME rows there
