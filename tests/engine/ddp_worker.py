"""torchrun worker for test_ddp.py: trains the stand-in detector on the toy benchmark.

    python -m torch.distributed.run --nproc_per_node 2 tests/engine/ddp_worker.py BENCH OUT [KILL_AT]

BENCH is a `make_benchmark` folder (data/, splits/), written before the launch.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.engine.conftest import tiny_config, tiny_parts  # noqa: E402

from come.engine.train import train  # noqa: E402


def main() -> int:
    bench, out = Path(sys.argv[1]), Path(sys.argv[2])
    kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    torch.set_num_threads(1)
    cfg = tiny_config(bench / "data", bench / "splits", train__checkpoint_every=2)

    def hook(step: int) -> None:
        if step == kill_at:
            raise SystemExit(3)

    train(cfg, out, tiny_parts(), step_hook=hook if kill_at else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
