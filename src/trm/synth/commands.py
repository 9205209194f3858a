"""``trm synthetic`` and ``trm fetch-ms2pip-models``.

``synthetic`` writes one instrument's synthetic data set (see
:mod:`trm.synth.generate`)::

    trm synthetic --fasta resources/fasta/UP000002311-S.cerevisiae.fasta.gz [more.fasta.gz] \\
        --instrument config/instruments/orbitrap_hcd.yaml \\
        --out results/synthetic/orbitrap_hcd --n-spectra 200000 --seed 1 --threads 2

``fetch-ms2pip-models`` downloads official ms2pip model files (needs network; run it
on a login node, then point compute jobs at the same ``--model-dir``)::

    trm fetch-ms2pip-models --model HCD2021 --model TTOF5600 --model-dir resources/ms2pip
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np

from trm.synth.mix import MIN_MIX_PEPTIDES, PeptideMix, PeptideMixError
from trm.synth.ms2pip_models import DEFAULT_MODEL_DIR
from trm.synth.peptides import DigestionSettings, PeptidoformSampler, SyntheticInputError

log = logging.getLogger(__name__)


def run_synthetic(args: argparse.Namespace) -> None:
    """Handler of ``trm synthetic``."""
    from trm.instrument import load_instrument
    from trm.synth.generate import SyntheticSettings, write_synthetic_dataset

    instrument = load_instrument(args.instrument) if args.instrument else None
    model = args.ms2pip_model or (instrument.ms2pip_model if instrument else None)
    if not model:
        raise SyntheticInputError("give --ms2pip-model or an --instrument file with ms2pip_model")
    charges = args.charges or (list(instrument.charges) if instrument else [2, 3, 4])
    charge_weights = args.charge_weights or (
        None if args.charges or instrument is None else instrument.charge_weights
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
        mix=None if args.peptide_mix is None else PeptideMix.read(args.peptide_mix),
        mix_share=args.mix_share,
    )
    write_synthetic_dataset(args.fasta, args.out, settings, exclude_fasta=args.exclude_fasta)


def run_fit_noise(args: argparse.Namespace) -> None:
    """Handler of ``trm fit-noise``."""
    import datetime

    import polars as pl

    from trm import __version__
    from trm.atomic import atomic_output
    from trm.instrument import load_instrument
    from trm.noise_model import NoiseModelParameters
    from trm.synth.noise_fit import MIN_SPECTRA, TooFewSpectraError, fit_noise_model, noise_figure

    instrument = load_instrument(args.instrument)
    tables = []
    for path in args.labels:
        try:
            tables.append(pl.read_parquet(path))
        except Exception as error:  # noqa: BLE001 - polars raises several kinds
            raise SyntheticInputError(
                f"{path}: not a readable labelled-spectra table ({error})"
            ) from error
    sources = [
        {"file": Path(p).name, "spectra": t.height}
        for p, t in zip(args.labels, tables, strict=True)
    ]
    try:
        parameters, report = fit_noise_model(
            tables,
            fragment_tolerance_da=instrument.fragment_tolerance_da,
            precursor_tolerance_ppm=instrument.precursor_tolerance_ppm,
            isotope_errors=instrument.isotope_errors,
            ms2pip_model=instrument.ms2pip_model,
            ms2pip_model_dir=args.ms2pip_model_dir,
            threads=args.threads,
            min_spectra=MIN_SPECTRA if args.min_spectra is None else args.min_spectra,
        )
        parameters.provenance = {
            "fitted_from": sources,
            "excluded": dict(sorted(report.excluded.items())),
            "peak_categories": report.category_peaks,
            "intensity_categories": report.category_intensity,
            "instrument": Path(args.instrument).name,
            "ms2pip_model": instrument.ms2pip_model,
            "made_by": f"trm {__version__} fit-noise",
            **({"note": args.note} if args.note else {}),
            "date": datetime.date.today().isoformat(),
        }
    except TooFewSpectraError as error:
        if args.fallback is None:
            raise
        log.warning("%s; using the fallback noise model %s", error, args.fallback)
        parameters = NoiseModelParameters.read(args.fallback)
        parameters.provenance = {
            **parameters.provenance,
            "fallback": f"{Path(args.fallback).name} used instead of a fit: {error}",
        }
    parameters.write(args.out)
    if args.plot is not None:
        figure = noise_figure(parameters)
        with atomic_output(args.plot) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
    log.info("wrote noise model %s", args.out)


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
    synthetic.add_argument(
        "--fasta",
        required=True,
        nargs="+",
        help="protein FASTA file(s), plain or .gz; several proteomes are pooled",
    )
    synthetic.add_argument(
        "--exclude-fasta",
        nargs="+",
        default=[],
        help="leave out every peptide of these proteomes (for a held-out evaluation set)",
    )
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
    synthetic.add_argument(
        "--peptide-mix",
        type=Path,
        help="draw the spectra's peptide lengths, charges and missed cleavages from this "
        "mix of identified spectra (trm peptide-mix; needs --n-spectra); default: every "
        "peptide equally often, charges as --charges",
    )
    synthetic.add_argument(
        "--mix-share",
        type=float,
        default=1.0,
        help="share of the spectra drawn from --peptide-mix; the others as without it "
        "(every peptide equally often, charges as --charges), which keeps long peptides "
        "and high charges that the mix rarely holds (default: 1)",
    )
    synthetic.set_defaults(func=run_synthetic)

    mix = subparsers.add_parser(
        "peptide-mix",
        help="length, charge and missed cleavages of identified spectra, for synthetic sets",
        description="Fit the joint distribution of peptide length bin, precursor charge and "
        "missed cleavages of labelled spectra (tables of trm labelled-spectra) and write it "
        "as YAML for trm synthetic --peptide-mix.",
    )
    mix.add_argument("--labels", type=Path, nargs="+", required=True, help="labelled tables")
    mix.add_argument("--instrument", type=Path, required=True, help="instrument YAML: its charges")
    mix.add_argument("--out", type=Path, required=True, help="output: peptide mix YAML")
    mix.add_argument(
        "--min-peptides",
        type=int,
        default=MIN_MIX_PEPTIDES,
        help="fewest distinct identified peptides and charges to fit from "
        f"(default: {MIN_MIX_PEPTIDES})",
    )
    mix.add_argument(
        "--fallback",
        type=Path,
        help="peptide mix YAML written instead (with a note) when fewer are identified",
    )
    mix.set_defaults(func=run_peptide_mix)

    fit = subparsers.add_parser(
        "fit-noise",
        help="fit an instrument's noise model from its labelled spectra",
        description=(
            "Annotate labelled real spectra against their peptides and the instrument's "
            "MS2PIP predictions, and estimate a noise model (fragment dropout, intensity and "
            "m/z error, isotopes, a ions, losses, immonium, precursor and unexplained peaks) "
            "that trm pretrain samples onto synthetic spectra."
        ),
    )
    fit.add_argument(
        "--labels", nargs="+", required=True, help="labelled-spectra tables (.parquet)"
    )
    fit.add_argument("--instrument", required=True, help="instrument YAML")
    fit.add_argument(
        "--ms2pip-model-dir",
        default=DEFAULT_MODEL_DIR,
        help=f"ms2pip model files and models.json (default: {DEFAULT_MODEL_DIR})",
    )
    fit.add_argument("--out", required=True, help="noise model YAML to write")
    fit.add_argument("--plot", help="PNG figure of the fitted model")
    fit.add_argument(
        "--fallback",
        help="noise model YAML written instead (with a note) when too few spectra are usable",
    )
    fit.add_argument(
        "--min-spectra",
        type=int,
        help="fewest usable labelled spectra to fit from (default: trm.synth.noise_fit's "
        "MIN_SPECTRA, 50)",
    )
    fit.add_argument("--note", help="free text recorded in the model's provenance")
    fit.add_argument("--threads", type=int, default=1)
    fit.set_defaults(func=run_fit_noise)

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


def run_peptide_mix(args: argparse.Namespace) -> None:
    """Handler of ``trm peptide-mix``."""
    import polars as pl

    from trm.atomic import atomic_output
    from trm.chem import UnsupportedPeptideError, parse_peptidoform
    from trm.instrument import load_instrument

    instrument = load_instrument(args.instrument)
    peptides, charges = [], []
    for path in args.labels:
        table = pl.read_parquet(path, columns=["peptide", "charge"]).drop_nulls()
        for peptide, charge in table.iter_rows():
            try:
                tokens, _ = parse_peptidoform(peptide)
            except UnsupportedPeptideError:
                continue
            peptides.append("".join(t[0] for t in tokens if not t.endswith("-")))
            charges.append(int(charge))
    # Each peptide and charge once: a library's many spectra of one peptide (or a run's
    # repeated identifications) say nothing more about which peptides a sample holds.
    pairs = sorted(
        (p, z) for p, z in set(zip(peptides, charges, strict=True)) if z in instrument.charges
    )
    peptides, charges = [p for p, _ in pairs], [z for _, z in pairs]
    sources = ", ".join(path.name for path in args.labels)
    if len(pairs) < args.min_peptides:
        reason = (
            f"{sources}: {len(pairs)} distinct identified peptides and charges of the "
            f"instrument's charges {list(instrument.charges)}, fewer than the "
            f"{args.min_peptides} a peptide mix is fitted from (--min-peptides)"
        )
        if args.fallback is None:
            raise PeptideMixError(
                reason + "; give --fallback, or draw the synthetic spectra uniformly "
                "(the workflow's synthetic: peptide_mix: uniform)"
            )
        log.warning("%s; using the fallback peptide mix %s", reason, args.fallback)
        fallback = PeptideMix.read(args.fallback)
        mix = dataclasses.replace(
            fallback,
            provenance=f"{fallback.provenance} ({args.fallback.name} used instead of a fit: "
            f"{reason})",
        )
    else:
        mix = PeptideMix.fit(
            peptides,
            charges,
            instrument.charges,
            provenance=f"{len(peptides)} distinct identified peptides and charges of {sources}",
        )
    with atomic_output(args.out) as path:
        mix.write(path)
    log.info(
        "wrote peptide mix %s (%s): charges %s at %s; missed cleavages 0/1/2+ at %s",
        args.out,
        mix.provenance,
        list(mix.charges),
        np.round(mix.marginal("charge"), 3).tolist(),
        np.round(mix.marginal("missed"), 3).tolist(),
    )
