"""``trm synthetic`` and ``trm fetch-ms2pip-models``.

``synthetic`` writes one instrument's synthetic data set (see
:mod:`trm.synth.generate`)::

    trm synthetic --fasta resources/fasta/UP000002311-S.cerevisiae.fasta.gz \\
        --instrument config/instruments/orbitrap_hcd.yaml \\
        --out results/synthetic/orbitrap_hcd --n-spectra 200000 --seed 1 --threads 2

``fetch-ms2pip-models`` downloads official ms2pip model files (needs network; run it
on a login node, then point compute jobs at the same ``--model-dir``)::

    trm fetch-ms2pip-models --model HCD2021 --model TTOF5600 --model-dir resources/ms2pip
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from trm.synth.peptides import DigestionSettings, PeptidoformSampler, SyntheticInputError

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "resources/ms2pip"


def _instrument_settings(path: str) -> dict:
    """The keys of an instrument YAML that the synthetic stage uses."""
    try:
        with open(path) as handle:
            settings = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise SyntheticInputError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(settings, dict):
        raise SyntheticInputError(f"{path}: expected a mapping of instrument settings")
    return {
        key: settings[key]
        for key in ("ms2pip_model", "charges", "charge_weights")
        if key in settings
    }


def run_synthetic(args: argparse.Namespace) -> None:
    """Handler of ``trm synthetic``."""
    from trm.synth.generate import SyntheticSettings, write_synthetic_dataset

    instrument = _instrument_settings(args.instrument) if args.instrument else {}
    model = args.ms2pip_model or instrument.get("ms2pip_model")
    if not model:
        raise SyntheticInputError("give --ms2pip-model or an --instrument file with ms2pip_model")
    charges = args.charges or instrument.get("charges") or [2, 3, 4]
    charge_weights = args.charge_weights or (
        None if args.charges else instrument.get("charge_weights")
    )
    fractions = dict(zip(("train", "validation", "test"), args.split_fractions, strict=True))
    settings = SyntheticSettings(
        model=model,
        model_dir=args.ms2pip_model_dir,
        digestion=DigestionSettings(
            enzyme=args.enzyme,
            missed_cleavages=args.missed_cleavages,
            min_length=args.min_length,
            max_length=args.max_length,
        ),
        sampler=PeptidoformSampler(
            fixed_modifications=tuple(args.fixed_mods),
            variable_modifications=tuple(args.variable_mods),
            variable_probability=args.variable_mod_probability,
            max_variable_mods=args.max_variable_mods,
            charges=tuple(int(z) for z in charges),
            charge_weights=None if charge_weights is None else tuple(charge_weights),
        ),
        split_fractions=fractions,
        n_spectra=args.n_spectra,
        seed=args.seed,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        threads=args.threads,
        run=args.run_name or Path(args.out).name,
    )
    write_synthetic_dataset(args.fasta, args.out, settings)


def run_fetch(args: argparse.Namespace) -> None:
    """Handler of ``trm fetch-ms2pip-models``."""
    from trm.synth.ms2pip_models import fetch_official_models

    fetch_official_models(args.model or None, args.model_dir)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synthetic`` and ``fetch-ms2pip-models`` subcommands."""
    synthetic = subparsers.add_parser(
        "synthetic",
        help="MS2PIP synthetic spectra of a FASTA's peptides, sharded by split",
        description=(
            "Digest a FASTA, split its peptides into train/validation/test, draw "
            "modifications and charges, predict spectra with an ms2pip model (offline), "
            "and write <out>/<split>/shard-NNNNN.parquet plus <out>/manifest.json."
        ),
    )
    synthetic.add_argument("--fasta", required=True, help="protein FASTA (plain or .gz)")
    synthetic.add_argument("--out", required=True, help="output directory of the data set")
    synthetic.add_argument(
        "--instrument",
        help="instrument YAML; its ms2pip_model, charges (and charge_weights) are used "
        "unless given explicitly",
    )
    synthetic.add_argument("--ms2pip-model", help="ms2pip model name, e.g. HCD2019-distilled")
    synthetic.add_argument(
        "--ms2pip-model-dir",
        default=DEFAULT_MODEL_DIR,
        help=f"ms2pip model files and models.json (default: {DEFAULT_MODEL_DIR})",
    )
    synthetic.add_argument("--charges", type=int, nargs="+", help="precursor charges")
    synthetic.add_argument(
        "--charge-weights", type=float, nargs="+", help="relative frequency of each charge"
    )
    synthetic.add_argument("--enzyme", default="trypsin", help="pyteomics enzyme name")
    synthetic.add_argument("--missed-cleavages", type=int, default=2)
    synthetic.add_argument("--min-length", type=int, default=7)
    synthetic.add_argument("--max-length", type=int, default=30)
    synthetic.add_argument(
        "--fixed-mods",
        nargs="*",
        default=["Carbamidomethyl@C"],
        metavar="NAME@SITES",
        help="fixed modifications (default: Carbamidomethyl@C; none: give the flag alone)",
    )
    synthetic.add_argument(
        "--variable-mods",
        nargs="*",
        default=["Oxidation@M"],
        metavar="NAME@SITES",
        help="variable modifications (default: Oxidation@M; none: give the flag alone)",
    )
    synthetic.add_argument(
        "--variable-mod-probability",
        type=float,
        default=0.3,
        help="chance that a site carries its variable modification (default: 0.3)",
    )
    synthetic.add_argument("--max-variable-mods", type=int, default=2)
    synthetic.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        default=[0.9, 0.05, 0.05],
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help="fraction of peptides per split (default: 0.9 0.05 0.05)",
    )
    synthetic.add_argument(
        "--n-spectra",
        type=int,
        help="spectra over all splits (default: one per peptide)",
    )
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--shard-size", type=int, default=100_000, help="spectra per shard")
    synthetic.add_argument(
        "--batch-size", type=int, default=5000, help="peptides per ms2pip call (bounds memory)"
    )
    synthetic.add_argument("--threads", type=int, default=1)
    synthetic.add_argument("--run-name", help="value of the run column (default: out dir name)")
    synthetic.set_defaults(func=run_synthetic)

    fetch = subparsers.add_parser(
        "fetch-ms2pip-models",
        help="download official ms2pip model files (needs network)",
        description=(
            "Download official ms2pip XGBoost model files with ms2pip's own downloader "
            "(SHA-1 checked) so that later runs predict offline."
        ),
    )
    fetch.add_argument(
        "--model",
        action="append",
        help="official model name (repeatable; default: all official models)",
    )
    fetch.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    fetch.set_defaults(func=run_fetch)
