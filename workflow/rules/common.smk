# Helpers shared by the stage files: the samples sheet, the instrument files, input
# functions and the command that runs the trm package. Rule files hold rules only.
import os
import re
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

# The instrument files are checked at parse time by the package's own reader (it needs
# only PyYAML), from this checkout whatever environment runs snakemake.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from trm.instrument import (  # noqa: E402
    DEFAULT_DECODER,
    InstrumentFileError,
    InstrumentSettings,
)

#: Folders of results/ that are not samples.
RESERVED_FOLDERS = {"mzml", "synthetic", "models", "labels", "casanovo", "noise"}


def alternatives(names):
    """A wildcard constraint matching exactly one of the names."""
    return "|".join(re.escape(str(name)) for name in names)


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
    reserved = sorted(set(sheet["sample"]) & RESERVED_FOLDERS)
    if reserved:
        raise WorkflowError(
            f"samples sheet {path}: sample name(s) {reserved} are taken by folders of "
            f"results/ ({sorted(RESERVED_FOLDERS)}); rename the sample(s)"
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
        # The checks the schema cannot express (orderings, lengths), by the one reader
        # every stage uses, before any job runs.
        try:
            InstrumentSettings.from_mapping(settings, path)
        except InstrumentFileError as error:
            raise WorkflowError(f"instrument {name!r}: {error}")
        instruments[name] = settings
    return instruments


def check_finetune_settings(settings):
    """What the schema cannot say about `finetune:`, checked before any job runs."""
    if abs(sum(settings["split"]) - 1.0) > 1e-6:
        raise WorkflowError(
            f"finetune: split {settings['split']} must sum to 1 (train, validation, test)"
        )
    if settings["split"][0] <= 0 or settings["split"][1] <= 0:
        raise WorkflowError(
            f"finetune: split {settings['split']} needs train and validation shares"
        )
    if settings["strategy"] == "adversarial" and settings["freeze_encoder"]:
        raise WorkflowError(
            "finetune: freeze_encoder cannot go with strategy adversarial (its domain "
            "loss trains the encoder alone)"
        )


def check_calibrate_settings(settings):
    """What the schema cannot say about `calibrate:`, checked before any job runs."""
    if settings["teacher_forcing"] and settings["predicted_intensities"]:
        raise WorkflowError(
            "calibrate: teacher_forcing and predicted_intensities each choose among the "
            "candidates their own way (graph score plus the model's teacher-forced "
            "log-likelihood; a fitted choice by predicted intensities): set one of them "
            "to false"
        )


def calibrate_choice_options():
    """How `calibrate` (and so de novo) chooses among the hybrid decoder's candidates:
    `--teacher-forcing --forced-candidates N`, `--predicted-intensities`, or neither."""
    settings = config["calibrate"]
    if settings["predicted_intensities"]:
        return "--predicted-intensities"
    if settings["teacher_forcing"]:
        return f"--teacher-forcing --forced-candidates {settings['forced_candidates']}"
    return ""


def check_search_settings(settings):
    """What the schema cannot say about `search:`, checked before any job runs."""
    if settings["min_peptide_length"] > settings["max_peptide_length"]:
        raise WorkflowError(
            f"search: min_peptide_length {settings['min_peptide_length']} exceeds "
            f"max_peptide_length {settings['max_peptide_length']}"
        )
    if settings["min_peptide_mass"] >= settings["max_peptide_mass"]:
        raise WorkflowError(
            f"search: min_peptide_mass {settings['min_peptide_mass']} is not below "
            f"max_peptide_mass {settings['max_peptide_mass']}"
        )
    both = sorted(
        set(settings["fixed_modifications"]) & set(settings["variable_modifications"])
    )
    if both:
        raise WorkflowError(f"search: {both} cannot be both fixed and variable")


def check_search_fastas():
    """Every FASTA a sample is searched against exists, before any job runs."""
    for sample in searched_samples():
        fasta = sample_fasta(sample)
        if not os.path.exists(fasta):
            raise WorkflowError(
                f"sample {sample!r}: FASTA {fasta!r} (samples sheet `fasta`, else "
                "`search: fasta`) does not exist"
            )


samples = load_samples(config["samples"])
instruments = load_instruments(config["instruments"])
check_finetune_settings(config["finetune"])
check_calibrate_settings(config["calibrate"])
check_search_settings(config["search"])

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


def project_path(path):
    """A configured path: as given when it exists from the working directory (or is
    absolute), else inside the workflow's folder (files shipped with the workflow)."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    shipped = Path(workflow.basedir) / path
    return str(shipped) if shipped.exists() else path


def used_instruments():
    """Instruments that at least one sample was acquired on (only those are trained)."""
    return sorted(set(samples["instrument"]))


def job_instrument(wildcards):
    """The instrument of a job: its `instrument` wildcard, else its sample's."""
    name = getattr(wildcards, "instrument", None)
    return samples.loc[wildcards.sample, "instrument"] if name is None else name


def instrument_file(wildcards):
    """The YAML file of a sample's or an instrument's instrument."""
    return config["instruments"][job_instrument(wildcards)]


def has_supplied_labels(sample):
    """Whether the samples sheet gives a sample's identifications (`identifications`)."""
    return samples.loc[sample, "identifications"] != ""


def sample_fasta(sample):
    """The FASTA a sample is searched against (its `fasta` cell, else `search: fasta`),
    or "" when it is not searched."""
    own = samples.loc[sample].get("fasta", "") if "fasta" in samples.columns else ""
    return project_path(own or config["search"]["fasta"])


def searched(sample):
    """Whether a sample is searched against a FASTA (rule `search`)."""
    return sample_fasta(sample) != ""


def labels_from_search(sample):
    """Whether a sample's labels are its search's PSMs: searched, none supplied."""
    return searched(sample) and not has_supplied_labels(sample)


def has_labels(sample):
    """Whether a sample has labels: identifications of its own, or its search's PSMs
    (which may turn out to be none: the downstream rules then say so)."""
    return has_supplied_labels(sample) or searched(sample)


def labelled_samples():
    return [sample for sample in samples.index if has_labels(sample)]


def searched_samples():
    return [sample for sample in samples.index if searched(sample)]


def label_sources(wildcards):
    """The files the labels of a sample are read from: a vendor file's identifications
    are matched against its converted mzML (the raw file itself cannot be read); a
    search's PSMs against the mzML it searched."""
    row = samples.loc[wildcards.sample]
    if labels_from_search(wildcards.sample):
        return {
            "spectra": f"results/mzml/{wildcards.sample}.mzML",
            "identifications": f"results/{wildcards.sample}/search.tsv",
        }
    if row["identifications"] == "annotated":
        return {"spectra": row["spectra"]}
    spectra = row["spectra"]
    if Path(spectra).suffix.lower() == ".raw":
        spectra = f"results/mzml/{wildcards.sample}.mzML"
    return {"spectra": spectra, "identifications": row["identifications"]}


def identifications_option(wildcards, input):
    """`--identifications FILE` when the labels come from an identification file; for a
    search's PSMs, with their file type and the search's FDR."""
    if labels_from_search(wildcards.sample):
        return (
            f"--identifications '{input.identifications}' --id-filetype tsv"
            f" --q-value {config['search']['fdr']}"
        )
    if "identifications" in input.keys():
        return f"--identifications '{input.identifications}'"
    return ""


#: Keys of `search:` the workflow itself uses; the others are `trm search` options.
SEARCH_WORKFLOW_KEYS = ("fasta", "candidate_score")


def search_fasta(wildcards):
    """The FASTA rule `search` reads for a sample."""
    return sample_fasta(wildcards.sample)


def supplied_labels(wildcards):
    """The labels table of a searched sample's own identifications, which the search is
    compared with; [] when it has none."""
    if has_supplied_labels(wildcards.sample):
        return [f"results/labels/{wildcards.sample}.parquet"]
    return []


def supplied_labels_option(wildcards, input):
    """`--supplied-labels FILE` when the searched sample has identifications of its own."""
    return f"--supplied-labels '{input.supplied[0]}'" if input.supplied else ""


def search_options():
    """The `search:` settings as `trm search` options."""
    return setting_options("search", SEARCH_WORKFLOW_KEYS)


def empty_labels_option(wildcards):
    """`--empty-labels-ok` where the labels are a search's PSMs, which may be none (a
    run too small for target-decoy competition): metrics then say so."""
    return "--empty-labels-ok" if labels_from_search(wildcards.sample) else ""


def denovo_labels(wildcards):
    """The labels a sample's de novo q-values are grounded on: its own labels table, or
    for an unlabelled sample those of its instrument's labelled samples; and the
    fine-tuning split to leave out. Empty when the instrument has no labelled sample."""
    sample = wildcards.sample
    if has_labels(sample):
        labelled = [sample]
    else:
        labelled = instrument_labelled_samples(samples.loc[sample, "instrument"])
    if not labelled:
        return {}
    inputs = {"labels": expand("results/labels/{sample}.parquet", sample=labelled)}
    split = sample_finetune_split(wildcards)
    if split:
        inputs["finetune_split"] = split[0]
    return inputs


def denovo_labels_option(wildcards, input):
    """`--database-labels FILE...` (and `--finetune-split FILE`) for `trm denovo`."""
    options = ""
    if "labels" in input.keys():
        options += "--database-labels " + " ".join(f"'{path}'" for path in input.labels)
    if "finetune_split" in input.keys():
        options += f" --finetune-split '{input.finetune_split}'"
    return options


def comparison_inputs(wildcards):
    """Both tools' results of a sample, their timings, and its labels when it has any."""
    folder = f"results/{wildcards.sample}"
    inputs = {
        "denovo": f"{folder}/denovo.tsv",
        "unsequenced": f"{folder}/unsequenced.tsv",
        "trm_timing": f"{folder}/trm_timing.json",
        "casanovo": f"{folder}/casanovo.tsv",
        "casanovo_timing": f"{folder}/casanovo.json",
        "instrument": instrument_file(wildcards),
    }
    if has_labels(wildcards.sample):
        inputs["labels"] = f"results/labels/{wildcards.sample}.parquet"
        inputs["finetune_split"] = sample_finetune_split(wildcards)
    return inputs


def labels_option(wildcards, input):
    """`--spectra LABELS` for `trm compare` when the sample has labels."""
    return f"--spectra '{input.labels}'" if "labels" in input.keys() else ""


def instrument_labelled_samples(instrument):
    """Labelled samples acquired on an instrument."""
    return [s for s in labelled_samples() if samples.loc[s, "instrument"] == instrument]


def noise_fit_labels(wildcards):
    """The labelled runs an instrument's noise model is fitted from."""
    return expand(
        "results/labels/{sample}.parquet",
        sample=instrument_labelled_samples(wildcards.instrument),
    )


def shipped_noise_model(instrument):
    """The noise model an instrument file names (`noise_model:`), or None."""
    path = instruments[instrument].get("noise_model")
    return project_path(path) if path else None


def noise_fallback_option(wildcards):
    """`--fallback FILE` for `trm fit-noise` when the instrument names a shipped model."""
    shipped = shipped_noise_model(wildcards.instrument)
    return f"--fallback '{shipped}'" if shipped else ""


def shipped_peptide_mix(instrument):
    """The peptide mix an instrument file names (`peptide_mix:`), or None."""
    path = instruments[instrument].get("peptide_mix")
    return project_path(path) if path else None


def synthetic_peptide_mix(wildcards):
    """The peptide mix an instrument's synthetic spectra are drawn from (`synthetic:
    peptide_mix: fitted`): fitted from its labelled runs, else the one its file names; []
    for every peptide equally often (`uniform`, or neither)."""
    if config["synthetic"]["peptide_mix"] == "uniform":
        return []
    if instrument_labelled_samples(wildcards.instrument):
        return [f"results/peptide_mix/{wildcards.instrument}.yaml"]
    shipped = shipped_peptide_mix(wildcards.instrument)
    return [shipped] if shipped else []


def peptide_mix_fallback_option(wildcards):
    """`--fallback FILE` for `trm peptide-mix` when the instrument names a shipped mix."""
    shipped = shipped_peptide_mix(wildcards.instrument)
    return f"--fallback '{shipped}'" if shipped else ""


def peptide_mix_option(wildcards, input):
    """`--peptide-mix FILE --mix-share S` for `trm synthetic` when it draws from a mix."""
    if not input.mix:
        return ""
    return (
        f"--peptide-mix '{input.mix[0]}' --mix-share {config['synthetic']['mix_share']}"
    )


def training_noise_model(wildcards):
    """The noise model pretraining and calibration use: fitted from the instrument's
    labelled runs, else the one its file names; [] for the hand-set ramp."""
    if config["pretrain"]["noise"] == "ramp":
        return []
    if instrument_labelled_samples(wildcards.instrument):
        return [f"results/noise/{wildcards.instrument}.yaml"]
    shipped = shipped_noise_model(wildcards.instrument)
    return [shipped] if shipped else []


def noise_model_option(wildcards, input):
    """`--noise-model FILE` when a noise model is used."""
    return f"--noise-model '{input.noise[0]}'" if input.noise else ""


def finetuned(instrument):
    """Whether an instrument's model is fine-tuned (`finetune: enabled` and labelled runs)."""
    return config["finetune"]["enabled"] and bool(
        instrument_labelled_samples(instrument)
    )


def finetune_outputs(instrument):
    """The files rule `finetune` writes for an instrument."""
    folder = f"results/models/{instrument}"
    return {
        "checkpoint": f"{folder}/finetuned.pt",
        "metrics": f"{folder}/finetune.csv",
        "split": f"{folder}/finetune_split.tsv",
        "validation": f"{folder}/finetune_validation.parquet",
    }


def finetune_labels(wildcards):
    """The labelled runs an instrument's model is fine-tuned on."""
    return expand(
        "results/labels/{sample}.parquet",
        sample=instrument_labelled_samples(wildcards.instrument),
    )


def calibration_model(wildcards):
    """The model `calibrate` calibrates: fine-tuned where the instrument is, else pretrained."""
    if finetuned(wildcards.instrument):
        return finetune_outputs(wildcards.instrument)["checkpoint"]
    return f"results/models/{wildcards.instrument}/pretrained.pt"


def sample_finetune_split(wildcards):
    """The fine-tuning split table of a sample's instrument, or [] when not fine-tuned."""
    instrument = samples.loc[wildcards.sample, "instrument"]
    return [finetune_outputs(instrument)["split"]] if finetuned(instrument) else []


def finetune_split_option(wildcards, input):
    """`--finetune-split FILE`: evaluation leaves the fine-tuning spectra out."""
    if "finetune_split" in input.keys() and input.finetune_split:
        return f"--finetune-split '{input.finetune_split[0]}'"
    return ""


#: Fewest usable validation spectra a fine-tuned model is calibrated on; with fewer it is
#: calibrated on the synthetic validation split, as a pretrained one is.
MIN_CALIBRATION_LABELS = 50


def calibration_labels(wildcards):
    """The real spectra calibration is fitted on: a fine-tuned model's validation split;
    the instrument's labelled runs with `calibrate: spectra: labelled`; else []."""
    if finetuned(wildcards.instrument):
        return [finetune_outputs(wildcards.instrument)["validation"]]
    if config["calibrate"]["spectra"] != "labelled":
        return []
    labelled = instrument_labelled_samples(wildcards.instrument)
    if not labelled:
        raise WorkflowError(
            f"calibrate: spectra: labelled, but instrument {wildcards.instrument!r} has no "
            "labelled run in the samples sheet; use `spectra: synthetic`"
        )
    return expand("results/labels/{sample}.parquet", sample=labelled)


def calibration_spectra_option(wildcards, input):
    """`trm calibrate`'s spectra: the lab's labelled runs (a fine-tuned model's
    validation split), with the synthetic validation split under the instrument's noise
    model as the fallback when they are few (a search may label none); else the
    synthetic spectra."""
    synthetic = f"--validation-dir '{input.synthetic}/validation'"
    synthetic += f" --noise-model '{input.noise[0]}'" if input.noise else ""
    if not input.labels:
        return synthetic
    labels = "--labels " + " ".join(f"'{path}'" for path in input.labels)
    return f"{labels} {synthetic} --min-labelled {MIN_CALIBRATION_LABELS}"


def setting_options(section, workflow_keys):
    """A config section as options of its `trm` command: every key but `workflow_keys`
    (those the workflow itself uses) becomes `--key-name value`. The command makes its
    options from its settings dataclass (trm.options), so a new setting needs a dataclass
    field and its schema entry, and no change here or in the rule."""
    options = []
    for key, value in config[section].items():
        if key in workflow_keys:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        options.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(options)


def decoder_option():
    """`--decoder NAME` when the config names a decoder for every instrument (else each
    instrument file's, or the default, decides)."""
    decoder = config["denovo"].get("decoder")
    return f"--decoder {decoder}" if decoder else ""


def instrument_decoder(instrument):
    """The decoder an instrument's spectra get: the config's for every instrument, else
    the instrument file's, else trm's default."""
    return (
        config["denovo"].get("decoder")
        or instruments[instrument].get("decoder")
        or DEFAULT_DECODER
    )


def refinement_steps_option(wildcards):
    """`--refinement-steps N` from the config's count for the decoder of the job's
    instrument (`denovo: refinement_steps:`); none (as trained) where it gives none."""
    steps = (config["denovo"].get("refinement_steps") or {}).get(
        instrument_decoder(job_instrument(wildcards))
    )
    return f"--refinement-steps {steps}" if steps else ""


def pretrain_init():
    """The base model pretraining starts from (config `pretrain: init:`), or []."""
    init = config["pretrain"]["init"]
    return [project_path(init)] if init else []


def init_option(wildcards, input):
    """`--init FILE` when pretraining starts from a base model."""
    return f"--init '{input.init[0]}'" if input.init else ""


def synthetic_fastas():
    """The proteome FASTA(s) of the synthetic spectra (one path or a list in the config)."""
    fasta = config["synthetic"]["fasta"]
    return [project_path(f) for f in ([fasta] if isinstance(fasta, str) else fasta)]


def sample_model(wildcards):
    """The calibrated model of the sample's instrument."""
    return f"results/models/{samples.loc[wildcards.sample, 'instrument']}/model.pt"


def casanovo_budget():
    """Training spectra of the Casanovo baseline: `casanovo: train_spectra`, or (0) as many
    as the recursive model sees in this run's pretraining."""
    spectra = config["casanovo"]["train_spectra"]
    if spectra:
        return spectra
    pretrain = config["pretrain"]
    budget = pretrain["steps"] * pretrain["batch_size"] * max(1, pretrain["gpus"])
    if budget == 0:
        raise WorkflowError(
            "casanovo: train_spectra is 0 (as many as pretraining) but pretrain: steps is 0; "
            "set casanovo: train_spectra to the baseline's training spectra"
        )
    return budget


def pretrain_launcher():
    """`python -m trm` on CPU or one GPU; torchrun with one process per GPU for DDP."""
    gpus = config["pretrain"]["gpus"]
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m trm"
    return "python -m trm"


def casanovo_checkpoint(wildcards):
    """Official weights from the config, else the baseline trained for the instrument."""
    settings = config["casanovo"]
    if settings["checkpoint"]:
        return project_path(settings["checkpoint"])
    if not settings["train_baseline"]:
        raise WorkflowError(
            "casanovo: give `checkpoint` (official weights) or set `train_baseline: true`"
        )
    instrument = samples.loc[wildcards.sample, "instrument"]
    return f"results/casanovo/{instrument}/baseline.ckpt"


def casanovo_executable():
    """Casanovo's executable in its own environment (a venv made by `make install`, or a
    conda env created from envs/casanovo.yaml at that path); trm itself runs in the
    workflow's environment and calls it by path."""
    return project_path(config["casanovo"]["executable"])


def final_outputs():
    """The targets of the default rule (all), one set per stage."""
    per_sample = [
        "results/{sample}/denovo.tsv",
        "results/{sample}/denovo.mztab",
        "results/{sample}/comparison.tsv",
    ]
    return [
        *expand(per_sample, sample=samples.index),
        *expand("results/{sample}/metrics.json", sample=labelled_samples()),
        *expand("results/{sample}/denovo_vs_database.tsv", sample=searched_samples()),
        *expand(
            "results/models/{instrument}/training.png", instrument=used_instruments()
        ),
        "results/comparison_summary.tsv",
    ]


check_search_fastas()
