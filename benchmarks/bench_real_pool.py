"""Pool finished real-data runs across work directories (benchmarks/bench_real.py `import`).

A 1200-step run costs 30-75 min on 2 cores, so the seeds of the five-method row come from
several sessions. A run can be pooled with another only if both were scored on the same test
images, trained at the same budget, and ran the same model code:

- `import_runs(W, A)` copies A's finished inter-organ runs into W (predictions, metrics, train
  log, resolved config; never the checkpoints) after checking A's test splits hold the same
  images and boxes as W's and that A's budget (`bench.yaml` train section, `overrides.json`) equals W's. It never
  overwrites a run W already has.
- `stamp(W, run)` writes `bench_provenance.json` into a run directory: the commit and the git
  tree hashes of `come/` and `config/` (what decides whether two runs are comparable), and
  whether those folders had uncommitted edits. `bench_real.py run` stamps each run as it starts
  and as it resumes; a run resumed under other code is labelled "mixed".
- `code_key(W, run)` reads it back for the report, which names any pair whose runs ran
  different code.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROVENANCE = "bench_provenance.json"
DATASETS = ("BUSBRA", "DDTI")


class PoolError(SystemExit):
    """A refusal that names the file and what is wrong (exit status 2)."""

    def __init__(self, message: str):
        super().__init__(f"bench_real import: {message}")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_identity() -> dict:
    """{"commit", "come_tree", "config_tree", "dirty"} of this checkout; None fields outside git."""
    dirty = _git("status", "--porcelain", "--", "come", "config")
    return {"commit": _git("rev-parse", "HEAD"), "come_tree": _git("rev-parse", "HEAD:come"),
            "config_tree": _git("rev-parse", "HEAD:config"), "dirty": bool(dirty) if dirty is not None else None}


_CODE = ("come_tree", "config_tree", "dirty")


def stamp(work: Path, run_id: str, identity: dict | None = None) -> None:
    """Record the code a run is trained with (written before training starts, and again before
    each resume: a resume under other code keeps the earlier code in `earlier`)."""
    path = work / "results" / "runs" / run_id / PROVENANCE
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {**(identity or code_identity()), "work": str(work)}
    if path.is_file():
        old = json.loads(path.read_text())
        earlier = list(old.get("earlier", []))
        if any(old.get(k) != entry.get(k) for k in _CODE):
            earlier.append({k: old.get(k) for k in ("commit", *_CODE)})
        if earlier:
            entry["earlier"] = earlier
    path.write_text(json.dumps(entry, indent=1))


def _label(p: dict) -> str:
    if not p.get("come_tree"):
        return "unknown"
    return f"{p['come_tree'][:8]}/{(p.get('config_tree') or '?')[:8]}" + ("+dirty" if p.get("dirty") else "")


def code_key(work: Path, run_id: str) -> str:
    """Short label of a run's model code: `<come tree>/<config tree>[+dirty]`; "mixed: a -> b"
    for a run resumed under other code, "not recorded" for runs from before stamping, "unknown"
    outside git."""
    path = work / "results" / "runs" / run_id / PROVENANCE
    if not path.is_file():
        return "not recorded"
    p = json.loads(path.read_text())
    if p.get("earlier"):
        return "mixed: " + " -> ".join(_label(e) for e in [*p["earlier"], p])
    return _label(p)


def _split_digest(path: Path) -> str:
    """sha256 of a test split's content: its images, annotations, categories and split settings,
    without `info.annotations` (the absolute path of the converted file, which names the work
    directory and so differs between two work directories holding the same split)."""
    coco = json.loads(path.read_text())
    info = {k: v for k, v in (coco.get("info") or {}).items() if k != "annotations"}
    return hashlib.sha256(json.dumps({**coco, "info": info}, sort_keys=True).encode()).hexdigest()


def _check_same(work: Path, source: Path) -> None:
    for ds in DATASETS:
        mine, theirs = work / "splits" / ds / "test.json", source / "splits" / ds / "test.json"
        for p in (mine, theirs):
            if not p.is_file():
                raise PoolError(f"{p} not found (run `bench_real.py prepare` for that work directory first)")
        if _split_digest(mine) != _split_digest(theirs):
            raise PoolError(f"{theirs} differs from {mine}: runs scored on other test images cannot be paired")
    for name in ("bench.yaml", "overrides.json"):
        mine, theirs = work / name, source / name
        if not theirs.is_file():
            raise PoolError(f"{theirs} not found: {source} is not a bench_real work directory")
        a, b = yaml.safe_load(mine.read_text()), yaml.safe_load(theirs.read_text())
        if name == "bench.yaml":
            a, b = a.get("train"), b.get("train")
        if a != b:
            raise PoolError(f"{theirs} sets {b}, {mine} sets {a}: runs of another budget cannot be pooled")


def import_runs(work: Path, source: Path, known: list[str], runs: list[str] | None = None) -> list[str]:
    """Copy `source`'s finished runs among `known` (W's inter-organ run ids) into `work`; returns
    the ids copied. A run W already has (finished or not) is kept and reported, never replaced."""
    work, source = work.resolve(), source.resolve()
    if work == source:
        raise PoolError(f"{source} is the work directory itself")
    _check_same(work, source)
    found = sorted(p.parent.name for p in (source / "results" / "runs").glob("*/metrics.json"))
    if runs:
        missing = [r for r in runs if r not in found]
        if missing:
            raise PoolError(f"{source}/results/runs has no finished run {missing} (finished: {found})")
        found = [r for r in found if r in runs]
    unknown = [r for r in found if r not in known]
    if unknown and runs:
        raise PoolError(f"{unknown} are not inter-organ runs of {work} (its runs: {known}; "
                        "`prepare --seeds` sets which seeds it has)")
    for rid in unknown:
        print(f"skipped {rid}: not an inter-organ run of {work} (`prepare --seeds` sets its seeds)", flush=True)
    copied = []
    for rid in (r for r in found if r in known):
        dst = work / "results" / "runs" / rid
        if dst.exists():
            print(f"kept {dst}: the work directory already has this run", flush=True)
            continue
        shutil.copytree(source / "results" / "runs" / rid, dst, ignore=shutil.ignore_patterns("checkpoints"))
        prov = dst / PROVENANCE
        entry = json.loads(prov.read_text()) if prov.is_file() else {}
        prov.write_text(json.dumps({**entry, "imported_from": str(source)}, indent=1))
        copied.append(rid)
    return copied
