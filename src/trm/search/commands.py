"""``trm search``: search one run's spectra against a protein FASTA with Sage.

Writes every spectrum's best PSM (targets and decoys, with Sage's q-values) as a psm_utils
TSV and a JSON summary; with ``--supplied-labels`` (the labels table made from
identifications the lab supplied for the run) the summary sets the search's PSMs beside
them::

    trm search --spectra results/mzml/S.mzML --fasta proteome.fasta.gz \\
        --instrument config/instruments/orbitrap_hcd.yaml --run S \\
        --psms results/S/search.tsv --summary results/S/search.json

Both outputs appear together, or neither does. A run too small for target-decoy
competition, or one without any PSM at the FDR, is no error: the summary's ``note`` and
the log say so.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from trm.options import add_options, from_options
from trm.search.settings import SearchSettings

log = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``search`` subcommand."""
    parser = subparsers.add_parser(
        "search",
        help="database search of one run with Sage (target-decoy q-values)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument(
        "--spectra", type=Path, required=True, help="the run: .mzML, .mzXML or .mgf"
    )
    parser.add_argument(
        "--fasta", type=Path, required=True, help="protein FASTA (plain or .gz), targets only"
    )
    parser.add_argument(
        "--instrument",
        type=Path,
        required=True,
        help="instrument YAML: fragment and precursor tolerances, isotope errors, charges",
    )
    parser.add_argument("--run", help="run name (default: the spectra file's stem)")
    parser.add_argument("--psms", type=Path, required=True, help="output: search.tsv")
    parser.add_argument("--summary", type=Path, required=True, help="output: search.json")
    parser.add_argument(
        "--supplied-labels",
        type=Path,
        help="labels table (.parquet, trm labelled-spectra) of identifications supplied for "
        "the same run: the summary compares the search's PSMs with them",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=1, help="Sage's threads (default: 1)"
    )
    add_options(parser, SearchSettings)
    parser.set_defaults(func=run_search)


def run_search(args: argparse.Namespace) -> None:
    """``trm search``."""
    from trm.atomic import atomic_outputs, write_json
    from trm.instrument import load_instrument
    from trm.io.fasta import read_fasta
    from trm.io.spectra import read_spectra
    from trm.search.engine import limit_threads

    limit_threads(args.threads)  # before sagepy is first imported
    from trm.search.engine import search_spectra
    from trm.search.report import against_identifications, search_summary, write_search_tsv

    settings = from_options(SearchSettings, args)
    instrument = load_instrument(args.instrument)
    run = args.run or args.spectra.stem
    proteins = read_fasta(args.fasta)
    spectra = read_spectra(args.spectra, run=run)
    log.info("%s: %d MS2 spectra; %s: %d proteins", args.spectra, spectra.height,
             args.fasta, len(proteins))  # fmt: skip
    if spectra.height < settings.min_targets():
        log.warning(
            "run %s has %d MS2 spectra: target-decoy competition needs at least %d target "
            "PSMs to reach fdr %g, so no spectrum can be labelled at that FDR",
            run, spectra.height, settings.min_targets(), settings.fdr,
        )  # fmt: skip
    outcome = search_spectra(
        spectra, proteins, instrument, settings, threads=args.threads, source=str(args.fasta)
    )
    summary = search_summary(outcome, settings, run, args.fasta.name)
    summary["instrument"] = {
        "file": args.instrument.name,
        "fragment_tolerance_da": instrument.fragment_tolerance_da,
        "precursor_tolerance_ppm": instrument.precursor_tolerance_ppm,
        "isotope_errors": list(instrument.isotope_errors),
        "charges": list(instrument.charges),
        "missing_charge": instrument.missing_charge,
    }
    summary["threads"] = args.threads
    if args.supplied_labels is not None:
        from trm.io.labels import read_labels

        labels = read_labels(args.supplied_labels, run)
        summary["against_supplied"] = against_identifications(outcome.psms, labels, settings.fdr)
    (log.warning if summary["n_at_fdr"] == 0 else log.info)("run %s: %s", run, summary["note"])
    with atomic_outputs([args.psms, args.summary]) as (psms_path, summary_path):
        write_search_tsv(outcome.psms, psms_path)
        write_json(summary, summary_path)
    log.info(
        "wrote %s (%d PSMs, %d decoys) and %s; search %.1f s (index %.1f s)",
        args.psms, summary["n_psms"], summary["n_decoy_psms"], args.summary,
        sum(outcome.seconds.values()), outcome.seconds["database"],
    )  # fmt: skip
