# One training and one evaluation job per run of the expanded grid (results/runs/<run>/).
# The train rule's declared output is a marker touched on success, not the checkpoint: an
# interrupted job keeps checkpoints/last.pt and `come train` resumes from it on the next run,
# unless the run's config changed since (train.signature differs): then it starts afresh.


rule train_run:
    input:
        unpack(train_inputs),
    output:
        done=touch(f"{RES}/runs/{{run}}/train.done"),
    log:
        f"{LOGS}/train/{{run}}.log",
    benchmark:
        f"{BENCH}/train/{{run}}.tsv"
    threads: CFG.workflow.train_threads
    resources:
        mem_mb=CFG.workflow.train_mem_mb,
        runtime=CFG.workflow.train_runtime_min,
        gpu=CFG.workflow.train_gpus,
        tasks=1,
        **SLURM,
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
        out=parent("done"),
        launcher=PLAN.launcher(),
        # changes when the run's config changes -> Snakemake's params trigger re-runs it
        signature=lambda wildcards: PLAN.run_signature(wildcards.run),
    # `come train` resumes a checkpoint of the same signature and sets one of an older config
    # aside (checkpoints.stale/), so the changed run trains from scratch (come.engine.rundir).
    shell:
        "{params.launcher} train --config {params.cfg} --run {wildcards.run}"
        " --out {params.out} > {log} 2>&1"

rule evaluate_run:
    input:
        done=rules.train_run.output.done,
        test=lambda wildcards: PLAN.train_inputs(wildcards.run)["test"],
    output:
        metrics=f"{RES}/runs/{{run}}/metrics.json",
    log:
        f"{LOGS}/evaluate/{{run}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{run}}.tsv"
    threads: CFG.workflow.train_threads
    resources:
        mem_mb=CFG.workflow.eval_mem_mb,
        runtime=CFG.workflow.train_runtime_min,
        gpu=min(CFG.workflow.train_gpus, 1),
        **SLURM,
    conda:
        CONDA_ENV
    params:
        run_dir=parent("metrics"),
    shell:
        "come evaluate --run-dir {params.run_dir} > {log} 2>&1"


rule train:
    input:
        expand(rules.train_run.output.done, run=PLAN.run_ids),


rule evaluate:
    input:
        expand(rules.evaluate_run.output.metrics, run=PLAN.run_ids),
