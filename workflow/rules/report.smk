# Collect every run's metrics, build the paper tables beside the paper's numbers, the figures
# and the results index (results/README.md).


rule grid_index:
    input:
        grid=CFG.grid.file,
        methods=str(PLAN.grid.path.parent / "methods.yaml"),
    output:
        f"{RES}/metrics/grid.csv",
    log:
        f"{LOGS}/report/grid_index.log",
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
    shell:
        "come grid list --all --format csv --config {params.cfg} --out {output} > {log} 2>&1"


rule summarize:
    input:
        metrics=rules.evaluate.input,
        grid=rules.grid_index.output,
    output:
        csv=f"{RES}/metrics/summary.csv",
        json=f"{RES}/metrics/summary.json",
    log:
        f"{LOGS}/report/summarize.log",
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
        runs=lambda wildcards, input: os.path.join(parent("grid", 2, "input")(wildcards, input, None), "runs"),
    shell:
        "come summarize --config {params.cfg} --runs {params.runs} --out {output.csv} > {log} 2>&1"


rule tables:
    input:
        summary=rules.summarize.output.csv,
        paper=CFG.paper_tables,
    output:
        directory(f"{RES}/tables"),
    log:
        f"{LOGS}/report/tables.log",
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
    shell:
        "come tables --config {params.cfg} --summary {input.summary} --paper {input.paper}"
        " --out {output} > {log} 2>&1"


rule figures:
    input:
        summary=rules.summarize.output.csv,
        datacards=rules.data.input,
        experts=([f"{EXPERTS}/mim_loss.png"] if "structure" in PLAN.experts_needed else [])
        + [f"{EXPERTS}/trainset/{key}/semantic_eval.json" for key in PLAN.trainsets],
    output:
        directory(f"{RES}/figures"),
    log:
        f"{LOGS}/report/figures.log",
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
    shell:
        "come figures --config {params.cfg} --out {output} > {log} 2>&1"


rule report:
    input:
        tables=rules.tables.output,
        figures=rules.figures.output,
        summary=rules.summarize.output.csv,
    output:
        f"{RES}/README.md",
    log:
        f"{LOGS}/report/report.log",
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
    shell:
        "come report --config {params.cfg} --out {output} > {log} 2>&1"
