# Shared experts of COME, built only when a COME run of the grid uses them. No leakage: the
# structure expert (USFM weights, or MIM on a synthetic corpus with its own seed) never sees a
# benchmark image, so one serves every run; the semantic expert (CLIP fine-tuned on diagnosis
# prompts) is fine-tuned once per distinct training set, on that set's training images only
# (results/experts/trainset/<key>/, key = come.experts.trainset.trainset_key).


rule pretrain_structure:
    output:
        encoder=f"{EXPERTS}/structure/encoder.pt",
        loss=f"{EXPERTS}/mim_loss.png",
        recon=f"{EXPERTS}/mim_reconstructions.png",
    log:
        f"{LOGS}/experts/structure.log",
    benchmark:
        f"{BENCH}/experts/structure.tsv"
    threads: CFG.workflow.experts_threads
    resources:
        mem_mb=CFG.workflow.train_mem_mb,
        runtime=CFG.workflow.train_runtime_min,
        cpus_per_task=CFG.workflow.experts_threads,  # = threads (the profile's default is 1)
        gpu=min(CFG.workflow.train_gpus, 1),
        **SLURM,
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
        out=parent("encoder"),
    shell:
        "come pretrain-structure --config {params.cfg} --out {params.out} > {log} 2>&1"


rule pretrain_semantic:
    # Only for the embedded CLIP (no BiomedCLIP): a synthetic image-text corpus with its own seed
    # stands in for BiomedCLIP's pretraining (come.experts.semantic_pretrain).
    output:
        clip=f"{EXPERTS}/semantic_pretrain/clip.pt",
        log=f"{EXPERTS}/semantic_pretrain/pretrain_log.json",
    log:
        f"{LOGS}/experts/semantic_pretrain.log",
    benchmark:
        f"{BENCH}/experts/semantic_pretrain.tsv"
    threads: CFG.workflow.experts_threads
    resources:
        mem_mb=CFG.workflow.train_mem_mb,
        runtime=CFG.workflow.train_runtime_min,
        cpus_per_task=CFG.workflow.experts_threads,  # = threads (the profile's default is 1)
        gpu=min(CFG.workflow.train_gpus, 1),
        **SLURM,
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
        out=parent("clip"),
    shell:
        "come pretrain-semantic --config {params.cfg} --out {params.out} > {log} 2>&1"


rule finetune_semantic:
    input:
        train=lambda wildcards: PLAN.semantic_inputs(wildcards.tset)["train"],
        test=lambda wildcards: PLAN.semantic_inputs(wildcards.tset)["test"],
        init=PLAN.semantic_init,
    output:
        encoder=f"{EXPERTS}/trainset/{{tset}}/semantic/encoder.pt",
        evaluation=f"{EXPERTS}/trainset/{{tset}}/semantic_eval.json",
        loss=f"{EXPERTS}/trainset/{{tset}}/semantic_loss.png",
    log:
        f"{LOGS}/experts/semantic_{{tset}}.log",
    benchmark:
        f"{BENCH}/experts/semantic_{{tset}}.tsv"
    wildcard_constraints:
        tset="|".join(re.escape(k) for k in PLAN.trainsets) or "none",
    threads: CFG.workflow.experts_threads
    resources:
        mem_mb=CFG.workflow.train_mem_mb,
        runtime=CFG.workflow.train_runtime_min,
        cpus_per_task=CFG.workflow.experts_threads,  # = threads (the profile's default is 1)
        gpu=min(CFG.workflow.train_gpus, 1),
        **SLURM,
    conda:
        CONDA_ENV
    params:
        cfg=COME_CONFIG,
        out=parent("encoder"),
    shell:
        "come finetune-semantic --config {params.cfg} --train {input.train}"
        " --test {input.test} --out {params.out}"
        + (" --init {input.init}" if PLAN.semantic_init else "")
        + " > {log} 2>&1"


rule experts:
    input:
        PLAN.expert_files,
    output:
        # a marker so results/experts exists (DVC stage output) even when no run needs experts
        touch(f"{EXPERTS}/experts.done"),
