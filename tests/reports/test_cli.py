"""End to end on the fake results tree: summarize -> tables -> figures -> report."""
from __future__ import annotations

import json

import pytest
import torch

from come.cli import main
from come.reports.figures import FIGURES
from come.reports.paper import TABLE_ORDER


@pytest.fixture(scope="module")
def generated(fake_results):
    torch.set_num_threads(1)
    cfg, root = str(fake_results["config"]), fake_results["root"]
    assert main(["summarize", "--config", cfg]) == 0
    assert main(["tables", "--config", cfg]) == 0
    assert main(["figures", "--config", cfg]) == 0
    (root / "bench_real.md").write_text("| run | method | dataset | AP [95% CI] |\n|---|---|---|---|\n")
    assert main(["report", "--config", cfg]) == 0
    return root


def test_index_includes_the_real_data_benchmark_when_present(generated):
    """results/bench_real.md (benchmarks/bench_real.py report --out) gets its section (issue 16)."""
    index = (generated / "README.md").read_text()
    assert "## Real-data benchmark (BUS-BRA + DDTI, CPU scale)" in index
    assert "| run | method | dataset | AP [95% CI] |" in index


def test_tables_written_in_every_format(generated):
    for name in TABLE_ORDER:
        for ext in (".csv", "_long.csv", ".md", ".tex"):
            assert (generated / "tables" / f"{name}{ext}").stat().st_size > 0
    boot = json.loads((generated / "runs" / "topk-2" / "bootstrap.json").read_text())
    assert boot["resamples"] == 30 and set(boot["datasets"]) == {"BUSI", "BUV", "DDTI"}


def test_every_figure_written_png_and_pdf(generated):
    from PIL import Image
    manifest = json.loads((generated / "figures" / "figures.json").read_text())
    assert [e["name"] for e in manifest] == list(FIGURES)
    for e in manifest:
        assert e["status"] == "written", e
        png, pdf = generated / "figures" / f"{e['name']}.png", generated / "figures" / f"{e['name']}.pdf"
        assert pdf.read_bytes()[:4] == b"%PDF"
        with Image.open(png) as im:
            assert im.size[0] > 300 and im.size[1] > 200


def test_report_indexes_everything(generated):
    text = (generated / "README.md").read_text()
    for name in TABLE_ORDER:
        assert f"tables/{name}.md" in text
    for name in FIGURES:
        assert f"figures/{name}.png" in text
    for run in ("come-f2c-inter", "dino-inter-seed~2", "dg-come"):
        assert f"| {run} |" in text
    assert "code version:" in text and "Pipeline wall time" in text and "paper" in text


def test_summary_csv_consistent_with_tables(generated):
    import csv
    with (generated / "tables" / "table2_main_long.csv").open() as fh:
        long = {(r["paradigm"], r["method"], r["column"]): r for r in csv.DictReader(fh)}
    with (generated / "metrics" / "summary.csv").open() as fh:
        summ = [r for r in csv.DictReader(fh) if r["table"] == "table2_main" and r["method"] == "DAMEX"
                and r["dataset"] == "BUV"]
    assert len(summ) == 1
    assert float(long[("intra-organ", "DAMEX", "BUV")]["ours"]) == pytest.approx(float(summ[0]["value"]), rel=1e-5)
    assert long[("intra-organ", "DAMEX", "BUV")]["paper"] == "0.699"


def test_bad_run_file_gives_clear_error(fake_results, tmp_path, capsys):
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(fake_results["root"] / "runs" / "topk-2", runs / "topk-2")
    (runs / "topk-2" / "metrics.json").write_text('{"run": "topk-2", "datasets": 3}')
    rc = main(["summarize", "--config", str(fake_results["config"]), "--runs", str(runs),
               "--out", str(tmp_path / "s.csv")])
    assert rc == 1
    assert "topk-2/metrics.json: 'datasets' must be an object" in capsys.readouterr().err


def test_index_reports_the_shared_experts(tmp_path):
    from come.reports.index import experts_section
    from come.utils.io import write_json

    results, experts = tmp_path / "results", tmp_path / "results" / "experts"
    assert "No shared expert was built" in "\n".join(experts_section(results, experts))
    write_json(experts / "semantic_eval.json", {"model": "embedded", "zero_shot_accuracy": 0.807, "n_images": 57,
                                                "chance_level": 0.544, "p_value_vs_chance": 3e-5,
                                                "zero_shot_accuracy_before_finetune": 0.772})
    (experts / "mim_loss.png").write_bytes(b"png")
    text = "\n".join(experts_section(results, experts))
    assert "accuracy 0.807 on 57 held-out lesion images vs chance (majority class) 0.544" in text
    assert "[mim_loss.png](experts/mim_loss.png)" in text and "semantic_loss.png" not in text
