"""Training engine: train loop, checkpoint/resume, optimiser, distributed, COCO evaluation.

Entry points: `come.engine.train.train(cfg, out_dir)` and
`come.engine.evaluate.evaluate_run(cfg, run_dir)` (used by `come train` / `come evaluate`).
"""
