from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# `denovo: refinement_steps:` was one count for every decoder before it became a map.
if isinstance((config.get("denovo") or {}).get("refinement_steps"), int):
    raise WorkflowError(
        "denovo: refinement_steps is a count per decoder, e.g. "
        f"`refinement_steps: {{hybrid: {config['denovo']['refinement_steps']}}}` "
        "(a decoder left out runs the steps the model was trained with)"
    )

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
