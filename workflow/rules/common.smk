# Helpers shared by the stage files: the samples sheet, the instrument files, input
# functions and the command that runs the trm package. Rule files hold rules only.
import os
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate


def load_samples(path):
    """The samples sheet as a DataFrame indexed by sample, validated."""
    try:
        sheet = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, comment="#"
        )
    except (OSError, pd.errors.ParserError) as error:
        raise WorkflowError(f"samples sheet {path}: {error}")
    if sheet.empty:
        raise WorkflowError(f"samples sheet {path} lists no samples")
    validate(sheet, "../schemas/samples.schema.yaml")
    duplicated = sorted(set(sheet["sample"][sheet["sample"].duplicated()]))
    if duplicated:
        raise WorkflowError(
            f"samples sheet {path}: sample names must be unique, repeated: {duplicated}"
        )
    unknown = sorted(set(sheet["instrument"]) - set(config["instruments"]))
    if unknown:
        raise WorkflowError(
            f"samples sheet {path}: instrument(s) {unknown} are not keys of "
            f"`instruments` in the config (known: {sorted(config['instruments'])})"
        )
    return sheet.set_index("sample", drop=False)


def load_instruments(paths):
    """Instrument name -> validated settings, from the config's `instruments` map."""
    instruments = {}
    for name, path in paths.items():
        try:
            with open(path) as handle:
                settings = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as error:
            raise WorkflowError(f"instrument {name!r}: cannot read {path}: {error}")
        try:
            validate(settings, "../schemas/instrument.schema.yaml")
        except WorkflowError as error:
            raise WorkflowError(f"instrument {name!r} ({path}) is invalid:\n{error}")
        instruments[name] = settings
    return instruments


samples = load_samples(config["samples"])
instruments = load_instruments(config["instruments"])

# Every rule runs `python -m trm` from this checkout's src/. Without --sdm conda, `python`
# must be the interpreter running snakemake, so its directory goes first on PATH (a
# virtual environment then need not be activated); with conda it is the env's python.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(
            None, [str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")]
        )
    )
)
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    os.environ.update(
        PATH=os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        )
    )


def sample_spectra(wildcards):
    """Path of the run a sample was acquired as."""
    return samples.loc[wildcards.sample, "spectra"]


def final_outputs():
    """The targets of the default rule (all), one set per stage."""
    return expand("results/mzml/{sample}.mzML", sample=samples.index)
