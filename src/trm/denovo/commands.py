"""``trm calibrate`` and ``trm denovo``: the de novo sequencing stage.

- ``trm calibrate``: sequence a labelled validation split with a trained model, fit the
  isotonic calibration of the raw score, and write the model file with the calibration
  and the inference settings, plus a calibration report (JSON).
- ``trm denovo``: sequence one sample with a calibrated model into ``denovo.tsv``,
  ``denovo.mztab``, ``unsequenced.tsv`` and a timing JSON (and, with ``--labels``,
  ``metrics.json`` and a precision-coverage plot; with ``--database-labels``, the
  database-grounded error probability and q-value of every answer, fitted by
  :mod:`trm.denovo.database_fdr`, and ``--fdr-report``). A model without calibration is
  refused unless ``--uncalibrated`` is given; then ``score`` is the raw score, and the
  mzTab description, the timing file and the log say so.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from trm.denovo.model_file import OVERRIDABLE
from trm.denovo.settings import (
    DECODERS,
    RAW_SCORE_KINDS,
    InferenceSettings,
    parse_halt_threshold,
)
from trm.errors import InputError, TrmError
from trm.instrument import load_instrument
from trm.synth.ms2pip_models import DEFAULT_MODEL_DIR

log = logging.getLogger(__name__)

#: Seed of the noise drawn onto calibration spectra (fixed: the same noisy spectra on
#: every run).
CALIBRATION_NOISE_SEED = 7

_DEFAULTS = InferenceSettings()


def _halt_threshold(text: str) -> float | None:
    try:
        return parse_halt_threshold(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instrument",
        type=Path,
        required=True,
        help="instrument YAML (config/instruments/*.yaml): precursor tolerance, isotope "
        "errors, charges, missing-charge policy",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="CPU threads; on the CPU each sequences its own batch of spectra (default: 1)",
    )
    parser.add_argument(
        "--ms2pip-model-dir",
        default=DEFAULT_MODEL_DIR,
        help="where the instrument's MS2PIP model (ms2pip_model) lies, for a rescoring "
        "with predicted fragment intensities (trm calibrate --predicted-intensities) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda", "auto"],
        help="where the model runs; auto = cuda when available (default: %(default)s)",
    )


def _add_inference_options(parser: argparse.ArgumentParser, calibrated: bool) -> None:
    """The inference settings a command may be given; those not given are absent from the
    parsed arguments (see :func:`_overrides`), so the defaults stay those of
    :class:`~trm.denovo.settings.InferenceSettings` or the model file's."""

    def default(value: object) -> str:
        return "as calibrated" if calibrated else str(value)

    parser.add_argument(
        "--decoder",
        choices=DECODERS,
        default=argparse.SUPPRESS,
        help="how candidates are found: hybrid (the spectrum graph's best paths, the "
        "model refining the best one and searching its own), graph (the spectrum graph "
        f"alone) or model (the model alone) (default: {default(_DEFAULTS.decoder)})",
    )
    parser.add_argument(
        "--teacher-forcing",
        action="store_true",
        default=argparse.SUPPRESS,
        help="hybrid: also score candidates with the model, each as the draft of one "
        "refinement step (one step per candidate; default: "
        f"{default(str(_DEFAULTS.teacher_forcing).lower())})",
    )
    parser.add_argument(
        "--forced-candidates",
        type=_non_negative_int,
        default=argparse.SUPPRESS,
        help="with --teacher-forcing: score this many candidates per spectrum, those with "
        "the best graph scores; 0 = all (default: "
        f"{default(_DEFAULTS.forced_candidates)})",
    )
    parser.add_argument(
        "--beam-size",
        type=_non_negative_int,
        default=argparse.SUPPRESS,
        help="first beam of the exact precursor-mass search; 0 = greedy without precursor "
        f"check (default: {default(_DEFAULTS.decoding.beam_size)})",
    )
    parser.add_argument(
        "--halt-threshold",
        type=_halt_threshold,
        default=argparse.SUPPRESS,
        help="early exit once the halting probability reaches this, or 'none' "
        f"(default: {default(_DEFAULTS.halt_threshold)})",
    )
    parser.add_argument(
        "--refinement-steps",
        type=_positive_int,
        default=argparse.SUPPRESS,
        help="supervision steps at inference; more than the model was trained with refine "
        f"further at proportional cost (default: {default('as trained')})",
    )
    parser.add_argument(
        "--min-residues",
        type=_positive_int,
        default=argparse.SUPPRESS,
        help=f"shortest peptide accepted (default: {default(_DEFAULTS.decoding.min_residues)})",
    )


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The inference settings given on the command line, by name."""
    return {name: value for name, value in vars(args).items() if name in OVERRIDABLE}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` and ``denovo`` subcommands."""
    calibrate = subparsers.add_parser(
        "calibrate",
        help="calibrate a trained model's peptide scores on labelled validation spectra",
        description=(
            "Sequence labelled validation spectra exactly as `trm denovo` does, fit an "
            "isotonic map from the raw score to the probability that the peptide is fully "
            "correct (mass-based matching, I = L), and write the model with the map and the "
            "decoding settings, and a calibration report."
        ),
    )
    calibrate.add_argument(
        "--model", type=Path, required=True, help="trained checkpoint (trm pretrain/finetune)"
    )
    calibrate.add_argument(
        "--validation-dir",
        type=Path,
        help="labelled synthetic spectra: a directory of *.parquet shards (or one file)",
    )
    calibrate.add_argument(
        "--labels",
        type=Path,
        nargs="+",
        help="labelled real spectra instead: tables from trm labelled-spectra (.parquet); "
        "with --validation-dir as well, those are used when the tables hold fewer than "
        "--min-labelled usable spectra",
    )
    calibrate.add_argument(
        "--min-labelled",
        type=_non_negative_int,
        default=50,
        help="fewest usable --labels spectra to calibrate on when --validation-dir is the "
        "fallback (default: %(default)s)",
    )
    calibrate.add_argument(
        "--noise-model",
        type=Path,
        help="noise model YAML drawn at full strength onto the --validation-dir spectra, so "
        "that calibration sees spectra that look like the instrument's (default: none)",
    )
    calibrate.add_argument(
        "--predicted-intensities",
        action="store_true",
        help="graph and hybrid decoders: predict each candidate's fragment intensities with "
        "the instrument's MS2PIP model and choose among a spectrum's candidates with them "
        "(a conditional logit over the spectrum match, the graph score and the agreement "
        "with the prediction); denovo then predicts them too. Measured: much better on "
        "MS2PIP-made spectra, within a few spectra on real ones, 21%% fewer spectra/s on "
        "mouse spectra and 6%% on yeast (benchmarks/results/rescoring_choice.md)",
    )
    calibrate.add_argument("--out", type=Path, required=True, help="output: calibrated model")
    calibrate.add_argument(
        "--report", type=Path, required=True, help="output: calibration report (JSON)"
    )
    calibrate.add_argument(
        "--max-spectra",
        type=_positive_int,
        default=1000,
        help="validation spectra used (the first ones; default: %(default)s)",
    )
    calibrate.add_argument(
        "--raw-score",
        dest="raw_score_choice",
        default="auto",
        choices=["auto", *RAW_SCORE_KINDS],
        help="raw score to calibrate: peptide probability, halting probability, their "
        "geometric mean (combined), the spectrum-match rescorer's probability (rescored), or "
        "auto = the rescorer's for the graph and hybrid decoders, for the model decoder "
        "peptide unless another has a precision-coverage AUC higher by 0.01 on the spectra "
        "(default: %(default)s)",
    )
    calibrate.add_argument(
        "--batch-size", type=_positive_int, default=256, help="spectra per forward pass"
    )
    calibrate.add_argument("--seed", type=int, default=0, help="seed of the cross-validation")
    _add_inference_options(calibrate, calibrated=False)
    _add_common(calibrate)
    calibrate.set_defaults(func=run_calibrate)

    denovo = subparsers.add_parser(
        "denovo",
        help="de novo sequence the spectra of one sample",
        description=(
            "Sequence every MS2 spectrum of a file with a calibrated model. Each spectrum "
            "ends up once in --denovo (psm_utils TSV) or --unsequenced (with the reason), "
            "in input order; --mztab holds the peptides in Casanovo's mzTab layout. All "
            "outputs appear together, or none does."
        ),
    )
    denovo.add_argument(
        "--spectra",
        type=Path,
        required=True,
        help="spectra: .mzML, .mzXML, .mgf or a spectrum-table .parquet",
    )
    denovo.add_argument("--model", type=Path, required=True, help="model from trm calibrate")
    denovo.add_argument("--run", help="run name of the spectra (default: the file name stem)")
    denovo.add_argument("--denovo", type=Path, required=True, help="output: denovo.tsv")
    denovo.add_argument("--mztab", type=Path, required=True, help="output: denovo.mztab")
    denovo.add_argument("--unsequenced", type=Path, required=True, help="output: unsequenced.tsv")
    denovo.add_argument("--timing", type=Path, required=True, help="output: timing JSON")
    denovo.add_argument(
        "--labels",
        type=Path,
        help="labelled spectrum table (.parquet, e.g. from trm labelled-spectra) for metrics",
    )
    denovo.add_argument("--metrics", type=Path, help="output with --labels: metrics.json")
    denovo.add_argument(
        "--plot", type=Path, help="output with --labels: precision-coverage plot (.png/.pdf/.svg)"
    )
    denovo.add_argument(
        "--database-labels",
        type=Path,
        nargs="+",
        help="database identifications (.parquet from trm labelled-spectra): fit the raw "
        "score against them and write database-grounded error probabilities and q-values "
        "(meta:database_pep, meta:database_qvalue; trm.denovo.database_fdr). Tables of this "
        "run are matched to its answers; without any, the labelled spectra of the other "
        "runs given (the instrument's) are sequenced too and the map fitted on them",
    )
    denovo.add_argument(
        "--finetune-split",
        type=Path,
        help="with --database-labels: trm finetune's split table; spectra the model was "
        "fine-tuned or selected on are left out of the fit",
    )
    denovo.add_argument(
        "--fdr-report",
        type=Path,
        help="output: JSON report of the database-grounded FDR (method, counts, held-out "
        "check); says why nothing was estimated when it was not",
    )
    denovo.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        help="spectra read and sequenced at a time (default: %(default)s)",
    )
    denovo.add_argument(
        "--uncalibrated",
        action="store_true",
        help="allow a model without calibration: score = raw score (not a probability)",
    )
    _add_inference_options(denovo, calibrated=True)
    _add_common(denovo)
    denovo.set_defaults(func=run_denovo)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrmError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _calibration_spectra(args: argparse.Namespace, vocabulary: Any, config: Any) -> Any:
    """The labelled spectra ``trm calibrate`` was given, noised when asked."""
    import numpy as np
    import polars as pl

    from trm.denovo.calibrate import LabelledSpectra
    from trm.noise_model import NoiseModelParameters
    from trm.train.data import SpectrumDataset, dataset_sizes
    from trm.train.noise import FittedNoise

    sizes = dataset_sizes(config, vocabulary)
    if args.labels is None and args.validation_dir is None:
        raise TrmError("give the calibration spectra: --validation-dir, --labels, or both")
    labelled = None
    if args.labels is not None:
        table = pl.concat(
            [pl.read_parquet(p).select(*_LABEL_COLUMNS) for p in args.labels], how="vertical"
        ).head(args.max_spectra)
        labelled = SpectrumDataset.from_table(table, **sizes)
        if args.validation_dir is not None and len(labelled) < args.min_labelled:
            log.warning(
                "%s: %d usable labelled spectra, fewer than --min-labelled %d: calibrating on "
                "%s instead",
                " ".join(str(p) for p in args.labels), len(labelled), args.min_labelled,
                args.validation_dir,
            )  # fmt: skip
            labelled = None
    if labelled is not None:
        dataset = labelled
    else:
        dataset = SpectrumDataset.from_shards(args.validation_dir, limit=args.max_spectra, **sizes)
    args.labels = args.labels if labelled is not None else None
    mz, intensity, counts = dataset.mz, dataset.intensity, dataset.n_peaks
    if args.noise_model is not None and labelled is None:
        noise = FittedNoise(NoiseModelParameters.read(args.noise_model), vocabulary)
        generator = torch.Generator().manual_seed(CALIBRATION_NOISE_SEED)
        parts = []
        for start in range(0, len(dataset), 1024):
            batch = dataset.batch(np.arange(start, min(start + 1024, len(dataset))))
            parts.append(noise.apply(batch, torch.ones(len(batch)), generator))
        mz = np.concatenate([p.mz.numpy() for p in parts])
        intensity = np.concatenate([p.intensity.numpy() for p in parts])
        counts = np.concatenate([p.peak_mask.sum(dim=1).numpy() for p in parts])
    return LabelledSpectra(
        mz=mz,
        intensity=intensity,
        counts=counts,
        precursor_mass=dataset.precursor_mass,
        charge=dataset.charge,
        tokens=dataset.tokens,
        skipped=dict(dataset.report.skipped),
    )


#: Columns of a labelled-spectra table that calibration reads.
_LABEL_COLUMNS = ("precursor_mz", "charge", "mz", "intensity", "peptide")


def _ion_probabilities(noise_model: str | Path | None) -> Any:
    """The graph decoder's ion probabilities from a noise model file (None without one, or
    when the instrument file names one that is not here)."""
    if noise_model is None:
        return None
    if not Path(noise_model).is_file():
        log.warning("noise model %s not found: the graph decoder's ion probabilities will be "
                    "hand-set; give --noise-model", noise_model)  # fmt: skip
        return None
    from trm.graph import IonProbabilities
    from trm.noise_model import NoiseModelParameters

    return IonProbabilities.from_noise_model(NoiseModelParameters.read(noise_model))


def run_calibrate(args: argparse.Namespace) -> None:
    """``trm calibrate``."""
    from trm.atomic import atomic_outputs, write_json
    from trm.denovo.calibrate import calibrate_dataset
    from trm.denovo.inference import parallel_plan
    from trm.denovo.model_file import load_sequencer
    from trm.train.checkpoint import save_checkpoint

    if args.predicted_intensities and getattr(args, "teacher_forcing", False):
        raise InputError(
            "--predicted-intensities and --teacher-forcing each choose among the candidates "
            "their own way (a fitted choice by predicted intensities; graph score plus the "
            "model's teacher-forced log-likelihood): give one of them"
        )
    torch.manual_seed(args.seed)
    device = _device(args.device)
    workers = parallel_plan(args.threads, device)
    instrument = load_instrument(args.instrument)
    sequencer, model_file = load_sequencer(
        args.model,
        instrument,
        _overrides(args),
        afresh=True,
        ion_probabilities=_ion_probabilities(args.noise_model or instrument.noise_model),
        device=device,
        batch_size=args.batch_size,
        workers=workers,
        ms2pip_model_dir=args.ms2pip_model_dir,
        predict_intensities=args.predicted_intensities,
    )
    spectra = _calibration_spectra(args, sequencer.vocabulary, sequencer.model.config)
    source = (
        " ".join(p.name for p in args.labels)
        if args.labels is not None
        else str(args.validation_dir)
        + ("" if args.noise_model is None else f" with noise model {args.noise_model.name}")
    )
    outcome = calibrate_dataset(
        sequencer, spectra, raw_score=args.raw_score_choice, seed=args.seed, source=source
    )
    settings = dataclasses.replace(sequencer.settings, raw_score=outcome.raw_score)
    report = {
        "model": args.model.name,
        "instrument": args.instrument.name,
        **outcome.report,
        "inference": settings.to_dict(),
        "calibration": outcome.calibration.to_dict(),
        "seconds_model": sequencer.times.model,
        "seconds_search": sequencer.times.decode,
        "seconds_rescoring": sequencer.times.rescore,
        "seconds_graph": sequencer.times.graph,
    }
    with atomic_outputs([args.out, args.report]) as (model_path, report_path):
        save_checkpoint(
            model_file.with_calibration(
                settings,
                outcome.calibration,
                outcome.rescorer,
                None if sequencer.graph is None else sequencer.graph.probabilities,
            ),
            model_path,
        )
        write_json(report, report_path)
    log.info("wrote %s and %s", args.out, args.report)


def _label_runs(path: Path) -> list[str]:
    """The runs a labels table holds (its file stem when it has no ``run`` column)."""
    import polars as pl

    try:
        names = pl.read_parquet_schema(path)
    except Exception as error:  # noqa: BLE001 - polars raises several kinds
        raise TrmError(f"{path}: not a readable parquet file ({error})") from error
    if "run" not in names:
        return [path.stem]
    runs = pl.read_parquet(path, columns=["run"]).get_column("run").unique().drop_nulls()
    return sorted(runs.to_list())


def _reference_answers(
    paths: list[Path], args: argparse.Namespace, sequencer: Any, instrument: Any, workdir: Path
) -> Any:
    """Answers to the labelled spectra of other runs, sequenced as this run's were, each
    against its label (fine-tuning spectra left out)."""
    import polars as pl

    from trm.denovo.database_fdr import answers_against_labels
    from trm.denovo.run import sequence_file
    from trm.io.labels import read_labels, spectra_used_for_finetuning

    parts = []
    for path in paths:
        table = pl.read_parquet(path)
        for other in _label_runs(path):
            rows = table.filter(pl.col("run") == other) if "run" in table.columns else table
            used = (
                spectra_used_for_finetuning(args.finetune_split, other)
                if args.finetune_split is not None
                else set()
            )
            rows = rows.filter(~pl.col("spectrum_id").is_in(list(used)))
            if not rows.height:
                continue
            spectra = workdir / f"{len(parts)}.parquet"
            rows.write_parquet(spectra)
            outcome = sequence_file(spectra, other, sequencer, instrument, None, args.batch_size)
            labels = read_labels(spectra, other)
            parts.append(answers_against_labels(outcome.sequenced, labels))
            log.info("%s: %d labelled spectra of run %s sequenced for the database FDR fit",
                     path, rows.height, other)  # fmt: skip
    if not parts:
        return pl.DataFrame(
            schema={"spectrum_id": pl.String, "raw_score": pl.Float64, "correct": pl.Boolean}
        )
    return pl.concat(parts)


def _with_database_fdr(
    outcome: Any, args: argparse.Namespace, run: str, sequencer: Any, instrument: Any
) -> tuple[Any, dict]:
    """The writers' table, with ``database_pep`` and ``database_q_value`` when
    ``--database-labels`` allows an estimate, and the FDR report."""
    import copy
    import tempfile

    import polars as pl

    from trm.denovo.database_fdr import answers_against_labels, database_fdr
    from trm.io.labels import read_labels, spectra_used_for_finetuning

    table = outcome.denovo_table()
    if args.database_labels is None:
        if args.finetune_split is not None:
            raise TrmError("--finetune-split goes with --database-labels")
        return table, {
            "run": run,
            "estimated": False,
            "reason": "no database identifications for this run or its instrument "
            "(--database-labels)",
        }
    own = [p for p in args.database_labels if run in _label_runs(p)]
    others = [p for p in args.database_labels if p not in own]
    used = (
        spectra_used_for_finetuning(args.finetune_split, run)
        if args.finetune_split is not None
        else set()
    )
    report: dict[str, Any] = {"run": run, "labels": [p.name for p in args.database_labels]}
    if own:
        labels = pl.concat([read_labels(p, run) for p in own]).unique("spectrum_id")
        answers = answers_against_labels(outcome.sequenced, labels, used)
        fdr = database_fdr(answers)
        report |= {
            "n_labels": labels.height,
            "n_left_out_finetuning": len(used & set(labels["spectrum_id"].to_list())),
        }
    else:
        # The run's own timing must not count the reference spectra.
        times = copy.deepcopy(sequencer.times)
        with tempfile.TemporaryDirectory() as workdir:
            reference = _reference_answers(others, args, sequencer, instrument, Path(workdir))
        sequencer.times = times
        answers = answers_against_labels(outcome.sequenced, pl.DataFrame(
            schema={"spectrum_id": pl.String, "label": pl.String}))  # fmt: skip
        fdr = database_fdr(answers, reference=reference)
    report |= fdr.report
    if fdr.q_values is None:
        log.warning("no database-grounded q-values: %s", fdr.report["reason"])
        return table, report
    log.info(
        "database-grounded FDR from %d labelled answers (%d right, %s): %s answers at "
        "q <= 0.01, 0.05, 0.10",
        fdr.report["n_labelled"], fdr.report["n_labelled_correct"], fdr.report["fitted_on"],
        " / ".join(str(n) for n in fdr.report["accepted_at"].values()),
    )  # fmt: skip
    table = table.with_columns(
        pl.Series("database_pep", fdr.pep), pl.Series("database_q_value", fdr.q_values)
    )
    return table, report


def run_denovo(args: argparse.Namespace) -> None:
    """``trm denovo``."""
    from trm.atomic import atomic_outputs, write_json
    from trm.denovo.evaluation import labelled_metrics, read_labels, save_precision_coverage_plot
    from trm.denovo.inference import parallel_plan, steps_histogram
    from trm.denovo.model_file import load_sequencer
    from trm.denovo.run import sequence_file
    from trm.io.results import write_denovo_tsv, write_mztab, write_unsequenced
    from trm.model import count_parameters, inference_flops

    started = time.perf_counter()
    if (args.metrics is not None or args.plot is not None) and args.labels is None:
        raise TrmError("--metrics and --plot need --labels")
    device = _device(args.device)
    instrument = load_instrument(args.instrument)
    sequencer, model_file = load_sequencer(
        args.model,
        instrument,
        _overrides(args),
        require_calibration=not args.uncalibrated,
        device=device,
        batch_size=args.batch_size,
        workers=parallel_plan(args.threads, device),
        ms2pip_model_dir=args.ms2pip_model_dir,
    )
    calibration = model_file.calibration
    if calibration is None:
        log.warning(
            "%s has no calibration: writing UNCALIBRATED raw scores as scores "
            "(run `trm calibrate` to get probabilities)",
            args.model,
        )
    model, settings, workers = sequencer.model, sequencer.settings, sequencer.workers
    run = args.run or args.spectra.stem
    labels = read_labels(args.labels, run) if args.labels is not None else None
    outcome = sequence_file(
        args.spectra, run, sequencer, instrument, calibration, batch_size=args.batch_size
    )

    fdr_started = time.perf_counter()
    table, fdr_report = _with_database_fdr(outcome, args, run, sequencer, instrument)
    fdr_report["seconds"] = time.perf_counter() - fdr_started
    started += fdr_report["seconds"]  # the run's speed counts its own spectra only

    outputs = [args.denovo, args.mztab, args.unsequenced]
    if labels is not None:
        outputs += [p for p in (args.metrics, args.plot) if p is not None]
    outputs.append(args.timing)
    if args.fdr_report is not None:
        outputs.append(args.fdr_report)
    with atomic_outputs(outputs) as temporary:
        paths = dict(zip(map(str, outputs), temporary, strict=True))
        if args.fdr_report is not None:
            write_json(fdr_report, paths[str(args.fdr_report)])
        write_denovo_tsv(table, paths[str(args.denovo)])
        description = f"trm de novo peptides of run {run} (model {args.model.name}; " + (
            "calibrated scores)" if calibration is not None else "UNCALIBRATED raw scores)"
        )
        write_mztab(
            table,
            paths[str(args.mztab)],
            str(args.spectra),
            description,
            spectra_refs=outcome.spectra_refs,
        )
        write_unsequenced(outcome.unsequenced_table(), paths[str(args.unsequenced)])
        if labels is not None:
            metrics, coverage, precision = labelled_metrics(
                outcome.sequenced, outcome.unsequenced, labels
            )
            metrics = {
                "run": run,
                "n_spectra": outcome.n_spectra,
                "n_sequenced": outcome.sequenced.height,
                "calibrated": calibration is not None,
                **metrics,
            }
            log.info(
                "%d labelled spectra: AA precision %.3f, peptide recall %.3f, PC AUC %.3f",
                metrics["n_labelled"],
                metrics["aa_precision"],
                metrics["peptide_recall"],
                metrics["pc_auc"],
            )
            if args.metrics is not None:
                write_json(metrics, paths[str(args.metrics)])
            if args.plot is not None:
                image_format = args.plot.suffix.lstrip(".").lower() or "png"
                save_precision_coverage_plot(
                    coverage, precision, metrics["pc_auc"], paths[str(args.plot)], image_format
                )
        config = model.config
        steps = sequencer.times.steps
        mean_steps = sum(steps) / len(steps) if steps else float(config.supervision_steps)
        cost = inference_flops(config)
        seconds = time.perf_counter() - started
        timing = {
            "seconds": seconds,
            "n_spectra": outcome.n_spectra,
            "n_sequenced": outcome.sequenced.height,
            "spectra_per_second": outcome.n_spectra / seconds if seconds > 0 else None,
            "seconds_sequencing": outcome.seconds,
            "seconds_model": sequencer.times.model,
            "seconds_search": sequencer.times.decode,
            "seconds_rescoring": sequencer.times.rescore,
            "seconds_graph": sequencer.times.graph,
            "decoder": settings.decoder,
            "threads": args.threads,
            "workers": workers,
            "device": str(device),
            "batch_size": args.batch_size,
            "beam_size": settings.decoding.beam_size,
            "fragment_tolerance_da": sequencer.fragment_tolerance_da,
            "halt_threshold": settings.halt_threshold,
            "refinement_steps": sequencer.refinement_steps,
            "raw_score": settings.raw_score,
            "calibrated": calibration is not None,
            "mean_refinement_steps": mean_steps,
            "steps_histogram": steps_histogram(steps, sequencer.refinement_steps),
            "model": {
                "path": str(args.model),
                "parameters": count_parameters(model),
                "supervision_steps": config.supervision_steps,
                "gflop_per_spectrum": cost.gflop,
                "gflop_per_spectrum_mean_steps": (
                    cost.encoder + mean_steps * cost.per_supervision_step
                )
                / 1e9,
            },
        }
        write_json(timing, paths[str(args.timing)])
    log.info(
        "run %s: %d of %d spectra sequenced; %.1f spectra/s overall",
        run,
        outcome.sequenced.height,
        outcome.n_spectra,
        timing["spectra_per_second"] or 0.0,
    )
