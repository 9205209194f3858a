"""Benchmark Casanovo's de novo sequencing speed on CPU threads, beside the recursive model.

Casanovo runs with its *default architecture* (dim_model 512, 9 + 9 layers, ~47 M
parameters) and default inference config (beam 1, max_peptide_len 100, batch 1024) on
``--threads`` CPU threads. Its weights come from a checkpoint that ``casanovo train``
writes after a single optimizer step from random initialisation, so nothing is
downloaded; pass ``--checkpoint`` to time official weights instead.

Weights do matter for one thing: Casanovo decodes a residue at a time until its model
predicts the end token, re-running the decoder over the whole prefix at each step, so a
model that never predicts the end decodes ``max_peptide_len`` steps for every spectrum. The
report therefore gives the mean length of the peptides Casanovo returned and how many
spectra got none (those ran to ``max_peptide_len``); with the near-random weights used by
default the measured speed is a lower bound for a trained model. ``--max-peptide-len``
reruns with a shorter bound (a trained model on 7-30-residue peptides stops by 30).

Input: ``--spectra`` (mzML/mzXML/MGF or a spectrum-table parquet, e.g. the 10k-spectrum
mzML of ``benchmarks/read_spectra.py``), replicated or cut to ``--n-spectra``; by default
the 128 real, charged Orbitrap HCD spectra of ``resources/demo/mouse_hcd.mgf``.

Speed is reported over the whole ``casanovo sequence`` process (start-up included) and at
steady state, ``(n - 1) / (t_n - t_1)`` with ``t_1`` the time of a one-spectrum run; each
in wall-clock seconds and in CPU seconds (all threads), the latter barely affected when
other processes share the cores (the load average is recorded too).

The recursive model is timed on the same spectra by ``--trm-command``, a shell command
with ``{spectra}`` (the parquet spectrum table), ``{threads}`` and ``{out_dir}``
placeholders, run with the same thread limits.

Usage::

    .venv/bin/python benchmarks/casanovo_speed.py --n-spectra 1000 --threads 2 \\
        [--trm-command 'trm denovo --spectra {spectra} ... --threads {threads}'] \\
        [--json benchmarks/out/casanovo_speed.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl

from trm.casanovo.commands import parse_config_setting
from trm.casanovo.config import Architecture, build_config
from trm.casanovo.pipeline import sequence_spectra, train_baseline
from trm.casanovo.runner import DEFAULT_EXECUTABLE, thread_environment
from trm.chem import UnsupportedPeptideError, parse_peptidoform
from trm.process import run_measured

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_SPECTRA = PROJECT_ROOT / "resources" / "demo" / "mouse_hcd.mgf"

log = logging.getLogger("casanovo_speed")


def read_table(path: Path) -> pl.DataFrame:
    """Spectra with a charge from a spectrum table or a peak file."""
    if path.suffix.lower() == ".parquet":
        table = pl.read_parquet(path)
    else:
        from trm.io.spectra import read_spectra

        table = read_spectra(path, run=path.stem)
    return table.filter(pl.col("charge").is_not_null() & (pl.col("mz").list.len() > 0))


def replicate(table: pl.DataFrame, n_spectra: int) -> pl.DataFrame:
    """``n_spectra`` rows cycling through ``table``, each with its own id."""
    copies = -(-n_spectra // table.height)
    out = pl.concat([table] * copies, how="vertical").head(n_spectra)
    return out.with_columns(
        spectrum_id=pl.format("bench={}", pl.int_range(pl.len())),
        scan=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        run=pl.lit("bench"),
    )


def default_checkpoint(labelled: pl.DataFrame, out_dir: Path, executable: Path, threads: int):
    """A default-architecture checkpoint: ``casanovo train`` for one optimizer step."""
    data = out_dir / "checkpoint_data"
    (data / "train").mkdir(parents=True, exist_ok=True)
    (data / "validation").mkdir(parents=True, exist_ok=True)
    labelled = labelled.filter(pl.col("peptide").is_not_null())
    labelled.head(32).write_parquet(data / "train" / "0.parquet")
    labelled.slice(32, 32).write_parquet(data / "validation" / "0.parquet")
    outcome = train_baseline(
        [data / "train" / "0.parquet"],
        [data / "validation" / "0.parquet"],
        out_dir / "casanovo_default_architecture.ckpt",
        out_dir / "checkpoint_work",
        Architecture(),  # Casanovo's default size
        max_spectra=32,
        batch_size=32,
        n_validations=1,
        config_overrides=[{"accelerator": "cpu"}],
        executable=executable,
        threads=threads,
    )
    return outcome.checkpoint, outcome.summary


def _peptide_lengths(results: pl.DataFrame) -> list[int]:
    lengths = []
    for sequence in results["casanovo_sequence"].drop_nulls().to_list():
        try:
            lengths.append(len(parse_peptidoform(sequence)[0]))
        except UnsupportedPeptideError:
            continue
    return lengths


def time_casanovo(
    table: pl.DataFrame,
    checkpoint: Path,
    work_dir: Path,
    executable: Path,
    threads: int,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """One timed ``casanovo sequence`` run; returns its summary plus peptide lengths."""
    outcome = sequence_spectra(
        table,
        checkpoint,
        work_dir,
        config_overrides=[{"accelerator": "cpu", **overrides}],
        executable=executable,
        threads=threads,
    )
    lengths = _peptide_lengths(outcome.results)
    summary = dict(outcome.summary)
    summary["mean_peptide_length"] = sum(lengths) / len(lengths) if lengths else None
    return summary


def time_trm(command: str, spectra: Path, threads: int, out_dir: Path, n_spectra: int):
    """Run the recursive model's command on the same spectra; spectra/s over the process."""
    formatted = command.format(spectra=shlex.quote(str(spectra)), threads=threads, out_dir=out_dir)
    run = run_measured(formatted, shell=True, env=thread_environment(threads))
    if run.returncode != 0:
        raise subprocess.CalledProcessError(run.returncode, formatted)
    return {"command": formatted, "seconds": round(run.seconds, 3), "n_spectra": n_spectra,
            "spectra_per_second": round(n_spectra / run.seconds, 3),
            "cpu_seconds": round(run.cpu_seconds, 3),
            "cpu_seconds_per_spectrum": round(run.cpu_seconds / n_spectra, 5),
            "peak_rss_mb": round(run.peak_rss_mb, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the measurements, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spectra", type=Path, default=DEMO_SPECTRA)
    parser.add_argument("--n-spectra", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path, help="Casanovo weights (default: see above)")
    parser.add_argument("--executable", type=Path, default=PROJECT_ROOT / DEFAULT_EXECUTABLE)
    parser.add_argument("--max-peptide-len", type=int, help="also time with this bound")
    parser.add_argument(
        "--skip-default", action="store_true", help="time only the --max-peptide-len run"
    )
    parser.add_argument(
        "--set",
        dest="settings",
        type=parse_config_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Casanovo config key for every run, e.g. predict_batch_size=128",
    )
    parser.add_argument("--skip-startup", action="store_true", help="no one-spectrum run")
    parser.add_argument("--trm-command", help="shell command timing the recursive model")
    parser.add_argument("--out-dir", type=Path, default=PROJECT_ROOT / "benchmarks/out/casanovo")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)

    source = read_table(args.spectra)
    table = replicate(source, args.n_spectra)
    spectra_path = args.out_dir / f"spectra_{args.n_spectra}.parquet"
    table.write_parquet(spectra_path)
    report: dict[str, Any] = {
        "input": {"source": str(args.spectra.name), "n_source_spectra": source.height,
                  "n_spectra": table.height,
                  "mean_peaks": round(float(table["mz"].list.len().mean()), 1)},
        "threads": args.threads,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    # Other processes' load makes every timing slower: recorded to judge.
                    "load_average_at_start": os.getloadavg()},
    }  # fmt: skip
    if args.checkpoint is None:
        checkpoint, training = default_checkpoint(
            source, args.out_dir, args.executable, args.threads
        )
        report["checkpoint"] = {"kind": "casanovo train, 1 step from random weights", **training}
    else:
        checkpoint = args.checkpoint
        report["checkpoint"] = {"kind": "given", "path": str(checkpoint)}
    settings = dict(args.settings)
    defaults = build_config(settings)
    report["casanovo_config"] = {
        key: defaults[key]
        for key in ("dim_model", "n_layers", "n_beams", "max_peptide_len", "predict_batch_size")
    }

    runs: dict[str, Any] = {}
    if not args.skip_startup:
        runs["startup_1_spectrum"] = time_casanovo(
            table.head(1), checkpoint, args.out_dir / "run_1", args.executable, args.threads,
            settings,
        )  # fmt: skip
    if not args.skip_default:
        runs["default"] = time_casanovo(
            table, checkpoint, args.out_dir / "run_default", args.executable, args.threads,
            settings,
        )  # fmt: skip
    if args.max_peptide_len:
        runs[f"max_peptide_len_{args.max_peptide_len}"] = time_casanovo(
            table,
            checkpoint,
            args.out_dir / "run_bounded",
            args.executable,
            args.threads,
            {**settings, "max_peptide_len": args.max_peptide_len},
        )
    startup = runs.get("startup_1_spectrum", {})
    for name, run in runs.items():
        run["spectra_per_cpu_second"] = round(run["n_spectra_given"] / run["cpu_seconds"], 3)
        if name != "startup_1_spectrum" and startup:
            extra = run["n_spectra_given"] - 1
            run["steady_spectra_per_second"] = round(
                extra / max(run["seconds"] - startup["seconds"], 1e-9), 3
            )
            run["steady_spectra_per_cpu_second"] = round(
                extra / max(run["cpu_seconds"] - startup["cpu_seconds"], 1e-9), 3
            )
    report["casanovo"] = runs
    report["machine"]["load_average_at_end"] = os.getloadavg()
    if args.trm_command:
        report["trm"] = time_trm(
            args.trm_command, spectra_path, args.threads, args.out_dir, table.height
        )

    lines = [
        "| run | spectra | wall s | spectra/s | steady spectra/s | CPU s | CPU s per spectrum "
        "| peak RSS MiB | mean peptide length |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        lines.append(
            f"| casanovo {name} | {run['n_spectra_given']} | {run['seconds']:.1f} "
            f"| {run['spectra_per_second']:.2f} | {run.get('steady_spectra_per_second') or ''} "
            f"| {run['cpu_seconds']:.1f} | {run['cpu_seconds'] / run['n_spectra_given']:.4f} "
            f"| {run.get('peak_rss_mb') or ''} | {run['mean_peptide_length'] or ''} |"
        )
    if "trm" in report:
        trm = report["trm"]
        lines.append(
            f"| trm | {trm['n_spectra']} | {trm['seconds']:.1f} | {trm['spectra_per_second']:.2f} "
            f"| | {trm['cpu_seconds']:.1f} | {trm['cpu_seconds_per_spectrum']:.4f} "
            f"| {trm['peak_rss_mb']} | |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    text = json.dumps(report, indent=2) + "\n"
    (args.out_dir / "report.json").write_text(text, encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
