from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    sample=alternatives(samples.index),
    instrument=alternatives(config["instruments"]),


include: "workflow/rules/convert.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/noise.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/denovo.smk"
include: "workflow/rules/casanovo.smk"
include: "workflow/rules/compare.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
