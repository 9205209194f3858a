from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    sample="|".join(map(str, samples.index)),


include: "workflow/rules/convert.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
