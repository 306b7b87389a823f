from snakemake.utils import min_version, validate

min_version("9.0")


# The paper's setup, unless the command line names another config (a merge would mix both model sets).
if not config:

    configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/teacher.smk"
include: "rules/memory.smk"
include: "rules/lora.smk"
include: "rules/eval.smk"
include: "rules/tables.smk"


rule all:
    default_target: True
    input:
        all_targets(),
