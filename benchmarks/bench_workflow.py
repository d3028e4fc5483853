"""Workflow performance figures: grid validation, per-run config resolution, DAG building.

Targets: the paper dry run (every job of the 56-run grid) under 10 s; resolving one run's
config under 50 ms (every `come train --run` pays it). Run: python benchmarks/bench_workflow.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> int:
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    from come.config import load_config
    from come.workflow import grid as grid_mod
    from come.workflow.coverage import coverage
    from come.workflow.plan import Plan

    cfg = load_config("config/paper.yaml")

    def fresh_grid():
        grid_mod._CACHE.clear()
        return grid_mod.load_grid(cfg.grid.file, cfg.paper_tables)

    t_grid = timed(fresh_grid, 3)
    grid = fresh_grid()
    specs = grid_mod.expand_runs(cfg, grid)
    t_resolve = timed(lambda: [grid_mod.resolve_run("config/paper.yaml", s.id) for s in specs]) / len(specs)
    t_cov = timed(lambda: coverage(cfg, grid), 3)
    t_plan = timed(lambda: Plan.build("config/paper.yaml"), 3)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    snake = str(Path(sys.executable).parent / "snakemake")
    t_dry = timed(lambda: subprocess.run([snake, "-n", "--quiet", "all", "--configfile",
                                          "config/paper.yaml"], env=env, capture_output=True,
                                         check=True))
    t_lint = timed(lambda: subprocess.run([snake, "--lint"], env=env, capture_output=True, check=True))
    print(f"grid rows / runs (paper.yaml):        {len(grid.rows)} / {len(specs)}")
    print(f"load + validate grid (no cache):      {t_grid * 1000:8.1f} ms")
    print(f"resolve_run per run (cached grid):    {t_resolve * 1000:8.1f} ms   (target < 50 ms)")
    print(f"paper coverage check:                 {t_cov * 1000:8.1f} ms")
    print(f"Plan.build (what the Snakefile does): {t_plan * 1000:8.1f} ms")
    print(f"snakemake -n all, paper.yaml:         {t_dry:8.2f} s    (target < 10 s)")
    print(f"snakemake --lint:                     {t_lint:8.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
