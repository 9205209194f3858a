"""Benchmark the synthetic stage: spectra per second end to end vs ms2pip alone, and memory.

Three measurements on the same peptidoforms, each in a fresh process:

``end_to_end``
    ``trm.synth.generate.write_synthetic_dataset``: FASTA digestion of the whole
    proteome, splits, peptidoform sampling, ms2pip prediction, spectrum tables,
    zstd parquet shards and the manifest.
``predict_batch``
    ``ms2pip.predict_batch`` alone (the floor of the synthetic stage's speed) on the
    peptidoforms the end-to-end run wrote, given as a ready ``PSMList``; it also computes
    ms2pip's own fragment m/z, which the synthetic stage takes from ``trm.fragments``
    instead.
``model_only``
    ms2pip's features and XGBoost alone (``Ms2pipPredictor.predict``), the part of
    ``predict_batch`` the synthetic stage runs: the least any ms2pip-based pipeline
    can spend.

Memory: the end-to-end run is repeated with twice the spectra; with a fixed batch and
shard size its peak RSS must stay flat.

Usage (from the repository root)::

    python benchmarks/synthetic_throughput.py [--n-spectra 30000] [--threads 2]

Prints a table and, with ``--json PATH``, writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FASTA = ROOT / "resources" / "fasta" / "UP000002311-S.cerevisiae.fasta.gz"
MODEL_DIR = ROOT / "resources" / "ms2pip"
MODEL = "HCD2019-distilled"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_end_to_end(args: argparse.Namespace) -> dict:
    from trm.synth.generate import SyntheticSettings, write_synthetic_dataset

    settings = SyntheticSettings(
        model=MODEL,
        model_dir=str(MODEL_DIR),
        n_spectra=args.n_spectra,
        seed=1,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        threads=args.threads,
        run="benchmark",
    )
    started = time.perf_counter()
    manifest = write_synthetic_dataset(args.fasta, args.out, settings)
    seconds = time.perf_counter() - started
    spectra = sum(split["spectra"] for split in manifest["splits"].values())
    return {"spectra": spectra, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def _peptidoforms(out: Path) -> tuple[list[str], list[int]]:
    import polars as pl

    table = pl.read_parquet(out / "*" / "shard-*.parquet", columns=["peptide", "charge"])
    return table["peptide"].to_list(), table["charge"].to_list()


def child_predict_batch(args: argparse.Namespace) -> dict:
    from ms2pip import predict_batch
    from psm_utils import PSM, Peptidoform, PSMList

    from trm.synth.ms2pip_models import register_model

    peptides, charges = _peptidoforms(Path(args.out))
    psms = PSMList(
        psm_list=[
            PSM(peptidoform=Peptidoform(f"{p}/{z}"), spectrum_id=str(i))
            for i, (p, z) in enumerate(zip(peptides, charges, strict=True))
        ]
    )
    register_model(MODEL, MODEL_DIR)
    started = time.perf_counter()
    for start in range(0, len(psms), args.batch_size):
        predict_batch(
            psms[start : start + args.batch_size],
            model=MODEL,
            model_dir=str(MODEL_DIR),
            processes=args.threads,
        )
    seconds = time.perf_counter() - started
    return {"spectra": len(psms), "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def child_model_only(args: argparse.Namespace) -> dict:
    from trm.chem import parse_peptidoform
    from trm.synth.ms2pip_models import Ms2pipPredictor
    from trm.synth.spectra import Peptidoform, ms2pip_proforma

    peptides, charges = _peptidoforms(Path(args.out))
    proformas = [
        ms2pip_proforma(Peptidoform(tuple(parse_peptidoform(p)[0]), z))
        for p, z in zip(peptides, charges, strict=True)
    ]
    predictor = Ms2pipPredictor(MODEL, MODEL_DIR, args.threads)
    started = time.perf_counter()
    for start in range(0, len(proformas), args.batch_size):
        predictor.predict(proformas[start : start + args.batch_size])
    seconds = time.perf_counter() - started
    return {"spectra": len(proformas), "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


CHILDREN = {
    "end_to_end": child_end_to_end,
    "predict_batch": child_predict_batch,
    "model_only": child_model_only,
}


def _run_child(kind: str, args: argparse.Namespace, n_spectra: int, out: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--n-spectra",
        str(n_spectra),
        "--threads",
        str(args.threads),
        "--batch-size",
        str(args.batch_size),
        "--shard-size",
        str(args.shard_size),
        "--fasta",
        str(args.fasta),
        "--out",
        str(out),
    ]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-spectra", type=int, default=30_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--shard-size", type=int, default=20_000)
    parser.add_argument("--fasta", default=str(FASTA))
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    if args.child:
        result = CHILDREN[args.child](args)
        sys.stdout.write(json.dumps(result) + "\n")
        return

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="trm-synth-bench-") as tmp:
        out = Path(tmp) / "synthetic"
        results["end_to_end"] = _run_child("end_to_end", args, args.n_spectra, out)
        results["predict_batch"] = _run_child("predict_batch", args, args.n_spectra, out)
        results["model_only"] = _run_child("model_only", args, args.n_spectra, out)
        results["end_to_end_2x"] = _run_child(
            "end_to_end", args, 2 * args.n_spectra, Path(tmp) / "synthetic_2x"
        )
    for result in results.values():
        result["spectra_per_s"] = result["spectra"] / result["seconds"]
    floor = results["predict_batch"]["seconds"]
    overhead = results["end_to_end"]["seconds"] / floor - 1
    lines = [
        f"threads={args.threads} batch_size={args.batch_size} shard_size={args.shard_size}",
        f"{'measurement':<16} {'spectra':>8} {'seconds':>8} {'spectra/s':>10} {'peak RSS MiB':>13}",
    ]
    for name, result in results.items():
        lines.append(
            f"{name:<16} {result['spectra']:>8} {result['seconds']:>8.1f} "
            f"{result['spectra_per_s']:>10.0f} {result['peak_rss_mib']:>13.0f}"
        )
    lines.append(f"end-to-end overhead over predict_batch: {overhead:+.1%}")
    lines.append(
        "end-to-end overhead over model_only: "
        f"{results['end_to_end']['seconds'] / results['model_only']['seconds'] - 1:+.1%}"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"settings": vars(args), "results": results}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
