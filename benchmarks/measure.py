"""Time a command and record it in docs/measured.json, then refresh README's Measured table.

    python benchmarks/measure.py --name "make demo" -- make demo
    python benchmarks/measure.py --name ".ci/run" --note "all tiers" -- env CI=true bash .ci/run

One record per --name: a new measurement replaces the old one (history is in git log). The
record holds the command, its wall time, this machine (cores, memory, CPU, GPU), the commit it
ran on (`+dirty` when tracked files differed from it) and the date. A failing command is
reported and not recorded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    cores = os.cpu_count() or 0
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    return f"{cores} cores, {mem:.0f} GiB, {cpu}, {gpu}"


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def record(path: Path, rec: dict) -> None:
    records = json.loads(path.read_text()) if path.exists() else []
    records = [r for r in records if r["name"] != rec["name"]] + [rec]
    path.write_text(json.dumps(records, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="what is measured, e.g. 'make demo'")
    ap.add_argument("--note", default="", help="a short qualifier shown beside the name")
    ap.add_argument("--out", default=str(REPO / "docs" / "measured.json"))
    ap.add_argument("--no-readme", action="store_true", help="do not refresh README.md")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to time")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the command to time after --")
    rec = {"name": args.name, "command": shlex.join(cmd), "commit": commit(), "machine": machine(),
           "date": dt.date.today().isoformat(), "note": args.note}
    start = time.perf_counter()
    rc = subprocess.run(cmd, cwd=REPO).returncode
    rec["wall_s"] = round(time.perf_counter() - start, 1)
    if rc != 0:
        print(f"measure: `{rec['command']}` failed (exit {rc}) after {rec['wall_s']} s: not recorded",
              file=sys.stderr)
        return rc
    record(Path(args.out), rec)
    print(f"measure: {args.name}: {rec['wall_s']} s on {rec['commit']} -> {args.out}")
    if not args.no_readme:
        sys.path.insert(0, str(REPO))
        from come.cli import main as come_main
        return come_main(["readme", "--measured", args.out, "--readme", str(REPO / "README.md")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
