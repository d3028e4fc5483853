"""`come report`: write `results/README.md`, the index of every table, figure and run."""
from __future__ import annotations

from pathlib import Path

from come.commands import add_config_args


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--out", default=None, help="index file (default: <results>/README.md)")
    parser.add_argument("--tables", default=None, help="tables folder (default: <results>/tables)")
    parser.add_argument("--figures", default=None, help="figures folder (default: <results>/figures)")
    parser.add_argument("--runs", default=None, help="runs folder (default: <results>/runs)")
    parser.add_argument("--no-claims", action="store_true", help="skip the claims section (no bootstrap)")


def run(args) -> int:
    import yaml

    from come.config import load_config
    from come.config.loader import to_dict
    from come.reports.index import build_index
    from come.reports.paper import paper_layouts
    from come.reports.runs import discover_runs
    from come.utils.io import atomic_write_bytes

    cfg = load_config(args.config, args.overrides)
    results = Path(cfg.results)
    out = Path(args.out or results / "README.md")
    runs = discover_runs(args.runs or results / "runs")
    claims = None
    if not args.no_claims and cfg.eval.bootstrap > 0:
        from come.reports.bootstrap import run_bootstrap
        from come.reports.claims import claims_markdown, evaluate_claims
        from come.utils.io import write_json

        found = evaluate_claims(runs, lambda r: run_bootstrap(r, cfg.data.splits_root, cfg.eval.bootstrap,
                                                              cfg.eval.max_dets), Path(cfg.paper_tables),
                                ap_floor=cfg.eval.claim_ap_floor)
        claims = claims_markdown(found)
        write_json(results / "metrics" / "claims.json", [
            {"claim": c.claim.text, "a": c.claim.a, "b": list(c.claim.b), "kind": c.claim.kind,
             "metric": c.claim.metric, "diff": c.diff, "ci95": [c.lo, c.hi], "seeds": c.seeds,
             "paper_diff": c.paper_diff, "verdict": c.verdict, "note": c.note, "best_ap": c.best_ap,
             "ap_floor": cfg.eval.claim_ap_floor} for c in found])
    from come.reports.lowcells import low_cells_markdown
    claims = (claims or []) + low_cells_markdown(runs)      # under the claims table: why cells are low
    text = build_index(results, Path(args.tables or results / "tables"), Path(args.figures or results / "figures"),
                       paper_layouts(cfg.paper_tables), runs,
                       args.config, yaml.safe_dump(to_dict(cfg), sort_keys=True), experts=Path(cfg.experts.root),
                       claims=claims)
    atomic_write_bytes(out, text.encode())
    print(f"wrote {out}")
    return 0
