from snakemake.utils import min_version

from duomem.config_check import check_or_exit

min_version("9.0")


report: "report/workflow.rst"


# The paper's setup, unless the command line names another config (a merge would mix both model sets).
if not config:

    configfile: "config.yaml"


# Duplicate keys, the schema (which fills the defaults), cross-key checks: a mistake stops here,
# before any job, with one line naming the key and its allowed values.
check_or_exit(
    config, workflow.configfiles, f"{workflow.basedir}/schemas/config.schema.yaml"
)


# The executor is known only now: on a cluster (SLURM) the jobs run on other machines, so a
# loopback endpoint is refused before the first submission.
onstart:
    if workflow.non_local_exec:
        check_or_exit(config, workflow.configfiles, cluster=True)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/teacher.smk"
include: "rules/memory.smk"
include: "rules/lora.smk"
include: "rules/eval.smk"
include: "rules/tables.smk"
include: "rules/figures.smk"
include: "rules/report.smk"


# Light jobs (seconds each: manifests, adapter selection, tables, figures, viewer pages) run inside
# Snakemake itself under a cluster executor instead of waiting in the SLURM queue.
localrules:
    manifest,
    select_adapter,
    select_strategy_adapter,
    table1,
    table2,
    table3,
    table4,
    table5,
    table6,
    table7,
    table8,
    table9,
    table10,
    paper_comparison,
    figure3,
    figure_success_by_type,
    figure_efficiency,
    figure_lora_grid,
    figure_loss_curves,
    learning_curve,
    viewer,


rule all:
    default_target: True
    input:
        all_targets(),
