"""Fig. 5: token features at the clustering stages, 2-D PCA of `cluster_features.npz`.

(a) the initial tokens coloured by source, by fine cluster, by coarse cluster (a Fine2Coarse
run); (b) three of the multi-step rounds (first, middle, last) of a Multi-Step run. Arrays are
used when present: features [N, D], source [N], fine [N], coarse [N], multistep [R, N],
optional source_names [S]. The MoE recorder's names (`come.model.moe.stats`: source_ids,
labels_fine, labels_coarse, labels_step1..R) are mapped onto these.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from come.reports.figures.common import FigureInputs, FigureSkipped, save
from come.reports.runs import RunInfo

MAX_POINTS = 3000


def _normalise(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map the recorder's key names onto source / fine / coarse / multistep."""
    out = dict(data)
    for src, dst in (("source_ids", "source"), ("labels_fine", "fine"), ("labels_coarse", "coarse")):
        if src in out and dst not in out:
            out[dst] = out.pop(src)
    steps = sorted((k for k in out if k.startswith("labels_step")), key=lambda k: int(k[11:] or 0))
    if steps and "multistep" not in out:
        out["multistep"] = np.stack([out[k].reshape(-1) for k in steps])
    for k in ("source", "fine", "coarse"):
        if k in out:
            out[k] = out[k].reshape(-1)
    return out


def load_features(run: RunInfo) -> dict[str, np.ndarray]:
    path = run.path / "cluster_features.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = _normalise({k: z[k] for k in z.files})
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read cluster features: {exc}") from None
    f = data.get("features")
    if f is None or f.ndim != 2:
        raise ValueError(f"{path}: 'features' must be a [N, D] array")
    for k, v in data.items():
        if k in ("source", "fine", "coarse") and v.shape[0] != f.shape[0]:
            raise ValueError(f"{path}: {k!r} has {v.shape[0]} entries but features has {f.shape[0]} rows")
    return data


def embed(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices kept [M], 2-D PCA coordinates [M, 2]) of at most MAX_POINTS rows."""
    from sklearn.decomposition import PCA
    n = features.shape[0]
    idx = np.arange(n) if n <= MAX_POINTS else np.sort(
        np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))
    x = features[idx].astype(np.float64)
    if x.shape[1] < 2:
        x = np.concatenate([x, np.zeros((x.shape[0], 2 - x.shape[1]))], axis=1)
    return idx, PCA(n_components=2, random_state=seed).fit_transform(x)


def _pick(runs: list[RunInfo], want: str, key: str) -> tuple[RunInfo, dict] | None:
    cands = [r for r in runs if (r.path / "cluster_features.npz").is_file()]
    cands.sort(key=lambda r: (r.method != want, r.paradigm != "inter-organ", r.variant not in ("", "full"),
                              r.seed, r.run))
    for r in cands:
        data = load_features(r)
        if key in data:
            return r, data
    return None


def _scatter(ax, xy: np.ndarray, labels: np.ndarray, names: dict[int, str] | None, title: str) -> None:
    uniq = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(uniq) <= 10 else "tab20")
    for i, u in enumerate(uniq):
        m = labels == u
        name = names.get(int(u), f"source {u}") if names else str(u)
        ax.scatter(xy[m, 0], xy[m, 1], s=5, alpha=0.6, color=cmap(i % cmap.N), label=name)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ncol = 1 if len(uniq) <= 8 else 2
    ax.legend(fontsize=6, markerscale=2, ncol=ncol, loc="best", title="cluster" if not names else "source",
              title_fontsize=6)


def _source_names(run: RunInfo, data: dict) -> dict[int, str]:
    if "source_names" in data:
        return {i: str(n) for i, n in enumerate(data["source_names"].tolist())}
    return {i: n for i, n in enumerate(run.train_datasets)}


def draw_stages(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    found = _pick(inputs.runs, "COME (Fine2Coarse)", "source")
    if found is None:
        raise FigureSkipped("no run wrote cluster_features.npz with 'features' and 'source'")
    run, data = found
    idx, xy = embed(data["features"], inputs.seed)
    panels = [("source", "initial tokens by source")]
    panels += [(k, f"{k} clusters ({len(np.unique(data[k]))})") for k in ("fine", "coarse") if k in data]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 4.0), squeeze=False)
    for ax, (k, title) in zip(axes[0], panels):
        _scatter(ax, xy, data[k][idx], _source_names(run, data) if k == "source" else None, title)
    fig.suptitle(f"Fig. 5(a): token features across clustering stages (PCA), run {run.run}", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "fig5a_clustering_stages")


def draw_multistep(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    found = _pick(inputs.runs, "COME (Multi-Step)", "multistep")
    if found is None:
        raise FigureSkipped("no run wrote cluster_features.npz with 'multistep' round labels")
    run, data = found
    rounds = data["multistep"]
    if rounds.ndim != 2 or rounds.shape[1] != data["features"].shape[0]:
        raise ValueError(f"{run.path / 'cluster_features.npz'}: 'multistep' must be [R, N] with "
                         f"N = {data['features'].shape[0]}")
    r = rounds.shape[0]
    shown = sorted({0, r // 2, r - 1})
    idx, xy = embed(data["features"], inputs.seed)
    fig, axes = plt.subplots(1, len(shown), figsize=(4.3 * len(shown), 4.0), squeeze=False)
    for ax, k in zip(axes[0], shown):
        _scatter(ax, xy, rounds[k][idx], None, f"step {k + 1} of {r}")
    fig.suptitle(f"Fig. 5(b): multi-step clustering rounds (PCA), run {run.run}", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "fig5b_multistep_rounds")
