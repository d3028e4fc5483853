# Data: synthetic benchmark (data.source == "synth") or fetch + convert ("real"), then data
# cards, the per-dataset 8:2 split and the breast / thyroid / all merges, and the text prompts.

if CFG.data.source == "synth":

    rule synth:
        output:
            coco=expand(f"{DATA}/{{ds}}/annotations.json", ds=PLAN.datasets),
            sheet=f"{DATA}/synth_contact_sheet.png",
        log:
            f"{LOGS}/data/synth.log",
        conda:
            CONDA_ENV
        params:
            cfg=COME_CONFIG,
            out=parent("sheet"),
        shell:
            "come synth --config {params.cfg} --out {params.out} > {log} 2>&1"

else:

    rule fetch:
        output:
            flag=touch(f"{RAW}/{{ds}}/.fetched"),
        log:
            f"{LOGS}/data/fetch_{{ds}}.log",
        conda:
            CONDA_ENV
        params:
            cfg=COME_CONFIG,
            dest=parent("flag"),
        shell:
            "come fetch {wildcards.ds} --config {params.cfg} --dest {params.dest} > {log} 2>&1"

    rule convert:
        input:
            flag=f"{RAW}/{{ds}}/.fetched",
        output:
            coco=f"{DATA}/{{ds}}/annotations.json",
        log:
            f"{LOGS}/data/convert_{{ds}}.log",
        conda:
            CONDA_ENV
        params:
            cfg=COME_CONFIG,
            raw=parent("flag", kind="input"),
            out=parent("coco"),
        shell:
            "come convert {wildcards.ds} --config {params.cfg} --raw {params.raw} --out {params.out}"
            " > {log} 2>&1"


rule datacard:
    input:
        f"{DATA}/{{ds}}/annotations.json",
    output:
        # flat results/datacards/<DS>.{json,png}: the layout the figures read
        json=f"{RES}/datacards/{{ds}}.json",
        png=f"{RES}/datacards/{{ds}}.png",
    log:
        f"{LOGS}/data/datacard_{{ds}}.log",
    conda:
        CONDA_ENV
    params:
        out=parent("json"),
    shell:
        "come datacard --coco {input} --out {params.out} > {log} 2>&1"


rule split:
    input:
        unpack(split_inputs),
    output:
        train=f"{SPLITS}/{{ds}}/train.json",
        test=f"{SPLITS}/{{ds}}/test.json",
    log:
        f"{LOGS}/data/split_{{ds}}.log",
    conda:
        CONDA_ENV
    params:
        out=parent("train"),
        seed=CFG.data.split_seed,
        fraction=CFG.data.test_fraction,
        align=lambda wildcards, input: (
            f"--align-with {os.path.dirname(input.align[0])}" if input.get("align") else ""
        ),
    shell:
        "come split --coco {input.coco} --out {params.out} --seed {params.seed}"
        " --test-fraction {params.fraction} {params.align} > {log} 2>&1"


rule merge:
    input:
        merge_inputs,
    output:
        train=f"{SPLITS}/merged/{{group}}/train.json",
        test=f"{SPLITS}/merged/{{group}}/test.json",
    log:
        f"{LOGS}/data/merge_{{group}}.log",
    conda:
        CONDA_ENV
    params:
        root=parent("train", up=3),
        datasets=lambda wildcards: " ".join(PLAN.groups[wildcards.group]),
        out=parent("train"),
    shell:
        "come merge --splits-root {params.root} --datasets {params.datasets}"
        " --out {params.out} > {log} 2>&1"


rule prompts:
    input:
        PLAN.merged("all", "train"),
    output:
        PLAN.prompts,
    log:
        f"{LOGS}/data/prompts.log",
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
    shell:
        "come prompts --config {params.cfg} --train {input} --out {output} > {log} 2>&1"


rule data:
    input:
        expand(f"{RES}/datacards/{{ds}}.json", ds=PLAN.datasets),
        expand(f"{SPLITS}/{{ds}}/{{part}}.json", ds=PLAN.datasets, part=["train", "test"]),
        expand(
            f"{SPLITS}/merged/{{group}}/{{part}}.json",
            group=list(PLAN.groups),
            part=["train", "test"],
        ),
        PLAN.prompts,
