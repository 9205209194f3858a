"""Benchmark ``trm denovo``: spectra per second and peak memory per model size and mode.

Input: a 10,000-spectrum mzML built from the 128 real, charged Orbitrap HCD spectra of
``resources/demo/mouse_hcd.mgf`` (Casanovo's sample data, the source
``benchmarks/casanovo_speed.py`` times Casanovo on), replicated in order with fresh native
ids (``scan=N``) and retention times; MS2 only (mean 54 peaks per spectrum); or the
charged spectra of ``--source`` (a spectrum file or table) replicated the same way.

Modes: the model decoder's search, greedy decoding, more refinement steps and early exit,
and the ``graph`` and ``hybrid`` decoders (``trm denovo --decoder``; their graph decoder's
seconds in ``graph_seconds``).

Models: a trained model (``--model``, e.g. the shipped base model; its search works on
real answer distributions), or the named configs of :data:`trm.model.MODEL_CONFIGS`
(``tiny`` and ``default`` by default) with *random weights*, saved in the checkpoint format
of ``trm pretrain``; both run with ``--uncalibrated`` (calibration does not change the
cost). Random weights matter in two ways, both reported rather than hidden:

- the halting head of an untrained model says about 0.5 for every spectrum, so with the
  threshold 0.9 no spectrum exits early: "exit 0.9" then costs what "no exit" costs. The
  ``exit@1`` rows emulate a confident trained head by setting the halting bias to +20, so
  every spectrum stops after its first step: the cheapest early exit can get;
- the exact precursor-mass search works harder on a random answer than on a trained one
  (more spectra need its wider retry): use ``--model`` for the figure that counts.

The table splits each run's time into the model, the search and the spectrum-match
rescoring.

Each run is a fresh ``trm denovo`` process with ``--threads`` torch threads; speed is over
the whole command (model loading, reading the mzML, sequencing, writing the results), as
its timing file reports it, and peak RSS is the process's maximum resident memory.

Usage::

    nice .venv/bin/python benchmarks/denovo_speed.py [--configs tiny default | --model M.pt] \\
        [--n-spectra 10000] [--threads 2] [--batch-size 256] [--out results.tsv]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from trm.process import run_measured

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "resources" / "demo" / "mouse_hcd.mgf"
INSTRUMENT = ROOT / "config" / "instruments" / "orbitrap_hcd.yaml"


@dataclasses.dataclass(frozen=True)
class Mode:
    """One way of running the model."""

    name: str
    beam_size: int
    halt_threshold: str
    sure_halting_head: bool = False
    #: Supervision steps at inference (None: as trained).
    refinement_steps: int | None = None
    #: The de novo decoder (``trm denovo --decoder``).
    decoder: str = "model"


MODES: tuple[Mode, ...] = (
    Mode("search16, no exit", 16, "none"),
    Mode("search16, exit 0.9", 16, "0.9"),
    Mode("search16, 16 steps", 16, "none", refinement_steps=16),
    Mode("search16, 32 steps", 16, "none", refinement_steps=32),
    Mode("greedy, no exit", 0, "none"),
    Mode("greedy, exit 0.9", 0, "0.9"),
    Mode("search16, exit@1 (emulated)", 16, "0.9", sure_halting_head=True),
    Mode("greedy, exit@1 (emulated)", 0, "0.9", sure_halting_head=True),
    Mode("graph", 16, "0.9", decoder="graph"),
    Mode("hybrid, exit 0.9", 16, "0.9", decoder="hybrid"),
    Mode("hybrid, no exit", 16, "none", decoder="hybrid"),
    Mode("hybrid, 2 steps", 16, "0.9", refinement_steps=2, decoder="hybrid"),
)


def build_mzml(path: Path, n_spectra: int, source: Path = SOURCE) -> float:
    """Write ``n_spectra`` replicated real MS2 spectra of ``source`` (a spectrum file or a
    spectrum-table parquet, charged spectra only); returns the mean peak count."""
    import numpy as np
    import polars as pl
    import pyopenms as oms

    from trm.io.spectra import read_spectra

    table = pl.read_parquet(source) if source.suffix == ".parquet" else read_spectra(source)
    table = table.filter(pl.col("charge").is_not_null())
    writer = oms.PlainMSDataWritingConsumer(str(path))
    writer.setExpectedSize(n_spectra, 0)
    rows = list(table.iter_rows(named=True))
    n_peaks = 0
    for index in range(n_spectra):
        row = rows[index % len(rows)]
        spectrum = oms.MSSpectrum()
        spectrum.setNativeID(f"controllerType=0 controllerNumber=1 scan={index + 1}")
        spectrum.setMSLevel(2)
        spectrum.setRT(index * 0.2)
        spectrum.set_peaks(
            (np.asarray(row["mz"], dtype=np.float64), np.asarray(row["intensity"], np.float64))
        )
        n_peaks += len(row["mz"])
        precursor = oms.Precursor()
        precursor.setMZ(row["precursor_mz"])
        precursor.setCharge(row["charge"] or 0)
        spectrum.setPrecursors([precursor])
        writer.consumeSpectrum(spectrum)
    del writer  # closes the file
    return n_peaks / n_spectra


def save_random_model(name: str, path: Path, sure_halting_head: bool) -> None:
    """A randomly initialised model of a named config, in the checkpoint format."""
    import torch

    from trm.chem import Vocabulary
    from trm.model import build_model, get_model_config
    from trm.train.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint

    torch.manual_seed(0)
    vocabulary = Vocabulary()
    model = build_model(get_model_config(name), vocabulary)
    if sure_halting_head:
        with torch.no_grad():
            model.core.halt_head.bias.fill_(20.0)
    state = model.state_dict()
    save_checkpoint(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model_config": model.config.to_dict(),
            "vocabulary": list(vocabulary.tokens),
            "step": 0,
            "model": state,
            "ema": state,
        },
        path,
    )


def run_denovo(
    spectra: Path,
    model: Path,
    mode: Mode,
    threads: int,
    batch_size: int,
    out: Path,
    instrument: Path = INSTRUMENT,
) -> dict[str, Any]:
    """One ``trm denovo`` process; returns its timing file plus peak RSS."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "trm", "--log-level", "WARNING", "denovo",
        "--spectra", str(spectra), "--model", str(model), "--run", "bench",
        "--instrument", str(instrument),
        "--denovo", str(out / "denovo.tsv"), "--mztab", str(out / "denovo.mztab"),
        "--unsequenced", str(out / "unsequenced.tsv"), "--timing", str(out / "timing.json"),
        "--beam-size", str(mode.beam_size), "--halt-threshold", mode.halt_threshold,
        "--threads", str(threads), "--batch-size", str(batch_size), "--uncalibrated",
        "--decoder", mode.decoder,
    ]  # fmt: skip
    if mode.refinement_steps is not None:
        command += ["--refinement-steps", str(mode.refinement_steps)]
    run = run_measured(command)
    if run.returncode != 0:
        raise RuntimeError(f"trm denovo failed ({run.returncode}): {' '.join(command)}")
    timing = json.loads((out / "timing.json").read_text())
    timing["peak_rss_mb"] = run.peak_rss_mb
    timing["process_seconds"] = run.seconds
    timing["cpu_seconds"] = run.cpu_seconds
    return timing


def main() -> None:
    """Build the input, run every config and mode, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "default"])
    parser.add_argument(
        "--model", type=Path, help="a trained model instead of random-weight configs"
    )
    parser.add_argument("--n-spectra", type=int, default=10_000)
    parser.add_argument(
        "--source",
        type=Path,
        default=SOURCE,
        help="spectra to replicate: a spectrum file or a spectrum-table parquet (default: "
        "the demo's mouse HCD MGF)",
    )
    parser.add_argument(
        "--instrument", type=Path, default=INSTRUMENT, help="instrument file (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--modes", nargs="+", help="mode names to run (default: all)")
    parser.add_argument("--out", type=Path, help="also write the results as TSV")
    parser.add_argument("--work-dir", type=Path, help="keep inputs and outputs here")
    args = parser.parse_args()
    modes = [m for m in MODES if not args.modes or m.name in args.modes]

    with tempfile.TemporaryDirectory(prefix="denovo_speed_") as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        spectra = work / f"{args.source.stem}_x{args.n_spectra}.mzML"
        mean_peaks = build_mzml(spectra, args.n_spectra, args.source)
        rows = []
        configs = [args.model.name] if args.model is not None else args.configs
        if args.model is not None:
            modes = [m for m in modes if not m.sure_halting_head]
        for config in configs:
            if args.model is None:
                for sure in sorted({m.sure_halting_head for m in modes}):
                    save_random_model(config, work / f"{config}_{int(sure)}.pt", sure)
            for mode in modes:
                model = args.model or work / f"{config}_{int(mode.sure_halting_head)}.pt"
                out = work / f"{config}_{mode.name.replace(' ', '_').replace(',', '')}"
                timing = run_denovo(
                    spectra, model, mode, args.threads, args.batch_size, out, args.instrument
                )
                row = {
                    "config": config,
                    "parameters": timing["model"]["parameters"],
                    "mode": mode.name,
                    "mean_steps": round(timing["mean_refinement_steps"], 2),
                    "steps_of": timing["model"]["supervision_steps"],
                    "gflop_per_spectrum": round(
                        timing["model"]["gflop_per_spectrum_mean_steps"], 4
                    ),
                    "seconds": round(timing["seconds"], 1),
                    "spectra_per_second": round(timing["spectra_per_second"], 1),
                    "model_seconds": round(timing["seconds_model"], 1),
                    "search_seconds": round(timing["seconds_search"], 1),
                    "rescoring_seconds": round(timing["seconds_rescoring"], 1),
                    "graph_seconds": round(timing.get("seconds_graph", 0.0), 1),
                    "cpu_seconds": round(timing["cpu_seconds"], 1),
                    "peak_rss_mb": round(timing["peak_rss_mb"]),
                    "n_sequenced": timing["n_sequenced"],
                }
                rows.append(row)
                sys.stderr.write(json.dumps(row) + "\n")
                sys.stderr.flush()

    header = list(rows[0])
    lines = [
        f"denovo speed: {args.n_spectra} spectra ({args.source.name} replicated, "
        f"{mean_peaks:.1f} peaks/spectrum), {args.threads} threads, batch {args.batch_size}, "
        f"{'model ' + args.model.name if args.model else 'random weights'}; "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average at end {os.getloadavg()[0]:.2f}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tsv = ["\t".join(header)] + ["\t".join(str(row[h]) for h in header) for row in rows]
        args.out.write_text("\n".join(tsv) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
