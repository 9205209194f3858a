"""``trm`` subcommands of the spectrum input stage.

- ``trm convert INPUT OUTPUT``: any supported spectrum file to a validated indexed mzML
  (the workflow's ``convert`` rule).
- ``trm labelled-spectra``: spectra with known peptides (annotated MGF, NIST MSP, or
  spectra plus an identification file) to a parquet spectrum table, and the spectra left
  out, with reasons, to a TSV.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import polars as pl

from trm.atomic import atomic_output
from trm.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` and ``labelled-spectra`` subcommands."""
    from trm.io.convert import CONVERTIBLE_FORMATS

    convert = subparsers.add_parser(
        "convert",
        help="convert a spectrum file (Thermo .raw, mzML, mzXML, MGF) to indexed mzML",
        description=(
            f"Convert {CONVERTIBLE_FORMATS} into a validated, indexed mzML. Thermo .raw "
            "uses ThermoRawFileParser when it is on PATH, else Thermo's RawFileReader "
            "through alpharaw and Mono. The output appears only when the conversion "
            "succeeded."
        ),
    )
    convert.add_argument("input", type=Path, help="spectrum file to convert")
    convert.add_argument("output", type=Path, help="mzML file to write")
    convert.add_argument(
        "--no-thermorawfileparser",
        action="store_true",
        help="read .raw files with alpharaw/Mono even when ThermoRawFileParser is on PATH",
    )
    convert.set_defaults(func=_run_convert)

    labelled = subparsers.add_parser(
        "labelled-spectra",
        help="spectra with known peptides to a parquet spectrum table",
        description=(
            "Read labelled spectra (annotated MGF with SEQ=, NIST MSP, or a spectrum file "
            "with a search engine's identifications) into the spectrum table with "
            "peptides in the model vocabulary. Spectra left out (unknown modification, "
            "ambiguous label, q-value above the cutoff) go to --skipped with the reason."
        ),
    )
    labelled.add_argument(
        "spectra", type=Path, help="annotated .mgf, .msp library, or searched spectra"
    )
    labelled.add_argument("output", type=Path, help="parquet file to write")
    labelled.add_argument(
        "--identifications",
        type=Path,
        help="identification file for the spectra (mzIdentML, pepXML, idXML, psm.tsv, ...)",
    )
    labelled.add_argument(
        "--id-filetype",
        default="infer",
        help="psm_utils file type of --identifications (default: infer from the name)",
    )
    labelled.add_argument(
        "--q-value",
        type=float,
        default=0.01,
        help="keep identifications with at most this q-value (default: 0.01)",
    )
    labelled.add_argument(
        "--skipped",
        type=Path,
        help="TSV of the spectra left out and why (default: OUTPUT with .skipped.tsv)",
    )
    labelled.add_argument("--run", help="run name for the table (default: the file name)")
    labelled.set_defaults(func=_run_labelled_spectra)


def _run_convert(args: argparse.Namespace) -> None:
    from trm.io.convert import convert_to_mzml

    convert_to_mzml(
        args.input, args.output, use_thermorawfileparser=not args.no_thermorawfileparser
    )


def _write_atomically(frame: pl.DataFrame, path: Path, kind: str) -> None:
    with atomic_output(path) as temporary:
        if kind == "parquet":
            frame.write_parquet(temporary)
        else:
            frame.write_csv(temporary, separator="\t")


def _run_labelled_spectra(args: argparse.Namespace) -> None:
    from trm.io.labels import read_annotated_mgf, read_identified_spectra, read_msp

    suffix = args.spectra.suffix.lower()
    if args.identifications is not None:
        table, skipped = read_identified_spectra(
            args.spectra,
            args.identifications,
            q_value_threshold=args.q_value,
            filetype=args.id_filetype,
            run=args.run,
        )
    elif suffix == ".mgf":
        table, skipped = read_annotated_mgf(args.spectra, run=args.run)
    elif suffix == ".msp":
        table, skipped = read_msp(args.spectra, run=args.run)
    else:
        raise InputError(
            f"{args.spectra}: labels come from an annotated .mgf, an .msp library, or "
            "--identifications"
        )
    skipped_path = args.skipped or args.output.with_suffix(".skipped.tsv")
    _write_atomically(table, args.output, "parquet")
    _write_atomically(skipped, skipped_path, "tsv")
    log.info(
        "%s: %d labelled spectra, %d skipped (listed in %s)",
        args.output,
        table.height,
        skipped.height,
        skipped_path,
    )
