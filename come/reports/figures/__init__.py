"""Paper figures, one module per family; `draw_all` writes every figure it has inputs for."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from come.reports.figures import ablation, clustering, datacards, qualitative, routing, sweeps
from come.reports.figures.common import FigureInputs, FigureSkipped

# name -> (draw function, one-line description for results/README.md)
FIGURES: dict[str, tuple[Callable, str]] = {
    "fig3_qualitative": (qualitative.draw, "Fig. 3: detections per dataset (rows) for the intra-organ "
                                           "methods (columns); true boxes green, predictions red"),
    "fig4_ablation": (ablation.draw, "Fig. 4: mean AP per ablation variant, ours (bars) vs paper (markers)"),
    "fig5a_clustering_stages": (clustering.draw_stages, "Fig. 5(a): PCA of initial tokens coloured by "
                                                        "source, fine and coarse cluster"),
    "fig5b_multistep_rounds": (clustering.draw_multistep, "Fig. 5(b): PCA of tokens coloured by three "
                                                          "multi-step clustering rounds"),
    "fig_routing_heatmap": (routing.draw, "source x expert routing shares of the MoE runs"),
    "fig_experts_topk": (sweeps.draw, "mean AP vs number of experts and vs Top-K, ours and paper"),
    "fig_datacards": (datacards.draw, "data-card distributions: image sizes, boxes per image, box "
                                      "sizes, pathology balance"),
}


def draw_all(inputs: FigureInputs, out_dir: str | Path) -> list[dict]:
    """Draw every figure; returns manifest entries {name, description, files, status, reason}."""
    out = []
    for name, (fn, desc) in FIGURES.items():
        entry = {"name": name, "description": desc, "files": [], "status": "written", "reason": ""}
        try:
            entry["files"] = [p.name for p in fn(inputs, out_dir)]
        except FigureSkipped as exc:
            entry.update(status="skipped", reason=str(exc))
        out.append(entry)
    return out


__all__ = ["FIGURES", "FigureInputs", "FigureSkipped", "draw_all"]
