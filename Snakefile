# COME-Repro workflow: raw data -> splits -> shared experts -> every grid run -> tables, figures.
#   snakemake --cores 2 all                                   (embedded default, CPU)
#   snakemake --profile slurm --configfile config/paper.yaml all
# The come config (config/config.yaml unless --configfile is given) is validated against
# workflow/schemas/config.schema.yaml and by come.config.load_config before any job runs.
# Rules call the `come` CLI only (docs/architecture.md, "CLI contract").

configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/experts.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    data,
    experts,
    train,
    evaluate,


rule all:
    input:
        rules.report.output,
        rules.tables.output,
        rules.figures.output,
        rules.data.input,
