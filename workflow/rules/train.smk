# One job per run of the expanded grid (results/runs/<run>/): `come train` trains, then evaluates
# in the same process (metrics.json, predictions/, qualitative.png, routing statistics), so a run
# pays one interpreter start, one torch import and one model build.
# The train rule's declared output is a marker touched on success, not the checkpoint: an
# interrupted job keeps checkpoints/last.pt and `come train` resumes from it on the next run,
# unless the run's config changed since (train.signature differs): then it starts afresh.


rule train_run:
    input:
        unpack(train_inputs),
    output:
        done=touch(f"{RES}/runs/{{run}}/train.done"),
        metrics=f"{RES}/runs/{{run}}/metrics.json",
    log:
        f"{LOGS}/train/{{run}}.log",
    benchmark:
        f"{BENCH}/train/{{run}}.tsv"
    threads: CFG.workflow.train_threads
    resources:
        mem_mb=max(CFG.workflow.train_mem_mb, CFG.workflow.eval_mem_mb),   # evaluates in process
        runtime=CFG.workflow.train_runtime_min,
        cpus_per_task=CFG.workflow.train_threads,  # = threads (the profile's default is 1)
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


rule train:
    input:
        expand(rules.train_run.output.done, run=PLAN.run_ids),


rule evaluate:
    input:
        expand(rules.train_run.output.metrics, run=PLAN.run_ids),
