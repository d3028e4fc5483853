# Config validation and the plan every rule reads (come.workflow.plan.Plan).
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from come.config import ConfigError
from come.utils import warm
from come.workflow.plan import Plan

min_version("9.0")

# The come config file: the last --configfile (relative to the working directory when it lies
# inside it), else the Snakefile's default.
COME_CONFIG = (
    str(workflow.overwrite_configfiles[-1])
    if workflow.overwrite_configfiles
    else "config/config.yaml"
)
if os.path.isabs(COME_CONFIG) and not os.path.relpath(COME_CONFIG).startswith(".."):
    COME_CONFIG = os.path.relpath(COME_CONFIG)

if workflow.config_settings.config:
    # `come` commands read the config file, so `--config k=v` would be validated but ignored.
    raise WorkflowError(
        "snakemake --config is not supported: write a config file with `base: config.yaml` "
        "and the keys to change, and pass it with --configfile"
    )
# come's loader first (its errors name the file and the dotted key), then the JSON schema.
try:
    PLAN = Plan.build(COME_CONFIG)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}")
validate(config, "../schemas/config.schema.yaml")

CFG = PLAN.cfg
RES = PLAN.results                 # results/ (runs, metrics, tables, figures, logs, benchmarks)
DATA = PLAN.data_root              # results/data/<DS>/annotations.json
RAW = CFG.data.raw_root            # data/raw/<DS> (real data)
SPLITS = PLAN.splits_root          # results/splits/<DS>/{train,test}.json, merged/<group>/
EXPERTS = PLAN.experts_root        # results/experts/{structure,semantic}/encoder.pt
LOGS = f"{RES}/logs"
BENCH = f"{RES}/benchmarks"
CONDA_ENV = "../envs/come.yaml"
# Slurm placement of the heavy rules (workflow.slurm_partition / slurm_account; "" = default).
SLURM = {
    key: value
    for key, value in (
        ("slurm_partition", CFG.workflow.slurm_partition),
        ("slurm_account", CFG.workflow.slurm_account),
    )
    if value
}    # used with --use-conda only; paths are relative to rules/


wildcard_constraints:
    ds="|".join(PLAN.datasets),
    group="|".join(PLAN.groups) or "none",
    run="|".join(re.escape(r) for r in PLAN.run_ids) or "none",


def merge_inputs(wildcards):
    """Split files of the datasets of one merge group."""
    members = PLAN.groups[wildcards.group]
    return [PLAN.split(d, part) for d in members for part in ("train", "test")]


def split_inputs(wildcards):
    """The dataset's annotations, plus the DDTI split TUS aligns to (TUS is DDTI re-processed)
    when both are present and data.tus_ddti_dedup is on."""
    out = {"coco": f"{DATA}/{wildcards.ds}/annotations.json"}
    if PLAN.align_reference(wildcards.ds):
        out["align"] = [PLAN.split(PLAN.align_reference(wildcards.ds), "test")]
    return out


def train_inputs(wildcards):
    return PLAN.train_inputs(wildcards.run)


def parent(name, up=1, kind="output"):
    """A params function: the folder `up` levels above output (or input) `name`, so folder
    arguments are derived from the declared files instead of hard-coded."""

    def folder(wildcards, input, output):
        path = (output if kind == "output" else input)[name]
        path = path[0] if isinstance(path, list) else path
        for _ in range(up):
            path = os.path.dirname(path)
        return path

    return folder


# Warm start (docs/workflow.md, "Warm start"): on a local run one server imports torch, timm and
# the detector once and every `come` job forks from it instead of importing them again. Off with
# COME_WARM=0; never with a cluster executor (its jobs run on other machines). A server that
# cannot start leaves the jobs to start their own interpreters, as they do without it.
WARM_SOCKET = warm.default_socket(RES)


def warm_enabled():
    return workflow.local_exec and os.environ.get("COME_WARM", "1") != "0"


onstart:
    if warm_enabled():
        try:
            shell(f"come warm start --wait 0 --socket {WARM_SOCKET} --owner-pid {os.getpid()}"
                  f" --log {LOGS}/warm.log")
            os.environ[warm.ENV_SOCKET] = WARM_SOCKET
        except Exception as exc:  # noqa: BLE001 (jobs then run cold; the cause is in warm.log)
            print(f"warm start unavailable ({exc}); every job starts its own interpreter")


onsuccess:
    if os.environ.get(warm.ENV_SOCKET) == WARM_SOCKET:
        shell(f"come warm stop --socket {WARM_SOCKET}")


onerror:
    if os.environ.get(warm.ENV_SOCKET) == WARM_SOCKET:
        shell(f"come warm stop --socket {WARM_SOCKET}")
