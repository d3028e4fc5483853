"""Which reading of the paper each COME row of a table used, read from its runs' config.yaml.

    notes = interpretation_notes(rows, runs_root)    # list[str], one per (method, variant)
    text = describe_ffn(ffn: dict)                   # one run's model.ffn -> a short description

The paper is silent on several parts of COME (docs/method.md: clustering, moe-placement,
traceability, dn-clustering); the tables print, under every table with COME rows, the reading
its runs were trained with. A resolved config without `multistep_mode` was written before the
residual Multi-Step existed: its Multi-Step is the old "repeat" reading (one longer K-means).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from come.config.loader import read_yaml


def _multistep(ffn: dict) -> str:
    mode = ffn.get("multistep_mode", "repeat")
    steps = f"{ffn.get('multistep_rounds', 5)} x k={ffn.get('multistep_k', 4)}"
    if mode == "residual":
        return (f"Multi-Step residual ({steps}; each step clusters what the previous left, "
                f"clusters < {100 * float(ffn.get('multistep_min_frac', 0.05)):g} % merged)")
    return f"Multi-Step repeat ({steps} from the previous centres = one longer K-means)"


def describe_ffn(ffn: dict) -> str:
    """A one-line description of a COME run's clustering, placement and router ('' if not COME)."""
    if ffn.get("type") != "come":
        return ""
    cl = ffn.get("clustering", "fine2coarse")
    f2c = f"Fine2Coarse {ffn.get('fine_k', 16)}->{ffn.get('coarse_k', 8)}"
    clustering = {"fine2coarse": f2c, "multistep": _multistep(ffn),
                  "mixing": f"Mixing = mean of {f2c} and {_multistep(ffn)}",
                  "none": "none"}.get(cl, str(cl))
    layers = ffn.get("layers")
    place = "+".join(ffn.get("stages") or []) + (f" layers {layers}" if layers is not None else " (all layers)")
    router = (f"top-{ffn.get('top_k')} of {ffn.get('num_experts')} experts, normalize_gate "
              f"{'on' if ffn.get('normalize_gate', True) else 'off'}, batch-prioritised "
              f"{'on' if ffn.get('batch_prioritized_routing', False) else 'off'}")
    return f"clustering {clustering}; MoE in {place}; {router}"


def _run_description(runs_root: Path, run_id: str, cache: dict[str, Optional[str]]) -> Optional[str]:
    if run_id not in cache:
        path = runs_root / run_id / "config.yaml"
        cache[run_id] = describe_ffn(((read_yaml(path).get("model") or {}).get("ffn") or {})) \
            if path.is_file() else None
    return cache[run_id]


def interpretation_notes(rows: list[dict], runs_root: str | Path,
                         cache: Optional[dict[str, Optional[str]]] = None) -> list[str]:
    """One note per COME (method, variant) of `rows` (summary rows of one table): the
    reading(s) its runs used, or which runs have no config.yaml under `runs_root`."""
    cache = {} if cache is None else cache
    groups: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if str(r.get("method", "")).startswith("COME"):
            runs = groups.setdefault((r["method"], r.get("variant", "")), [])
            if r["run"] not in runs:
                runs.append(r["run"])
    notes = []
    for (method, variant), runs in sorted(groups.items()):
        label = f"{method} [{variant}]" if variant else method
        found = {d for run in runs if (d := _run_description(Path(runs_root), run, cache))}
        missing = [run for run in runs if _run_description(Path(runs_root), run, cache) is None]
        text = " | ".join(sorted(found)) if found else "unknown"
        if missing:
            text += f" (no config.yaml for runs {', '.join(missing)} under {runs_root})"
        notes.append(f"{label}: {text}")
    return notes
