"""Benchmark the spectrum reader: MS2 spectra per second and peak memory.

Builds mzML files of two sizes from the real spectra of
``tests/data/depthcharge/TMT10-Trial-8.mzML`` (its MS1 and MS2 scans replicated in a DDA
pattern of one MS1 scan per nine MS2 scans, with fresh native ids and retention times),
then reads each in a fresh process with :func:`trm.io.spectra.iter_spectrum_batches`
and reports MS2 spectra per second and the process's peak resident memory. The reader
is memory bounded when peak RSS stays flat while the file grows. For contrast the same
files are also loaded whole with pyopenms' ``MzMLFile.load`` (MS2 only).

Usage::

    python benchmarks/read_spectra.py [--sizes 10000 50000] [--batch-size 2000]

Results are written to stdout as a table (and as JSON with ``--json PATH``).
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

SOURCE = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "depthcharge" / "TMT10-Trial-8.mzML"
)
MS2_PER_MS1 = 9


def build_mzml(path: Path, n_spectra: int) -> int:
    """Write ``n_spectra`` replicated real spectra to an indexed mzML; returns the MS2 count."""
    import pyopenms as oms

    experiment = oms.MSExperiment()
    oms.MzMLFile().load(str(SOURCE), experiment)
    ms1 = [s for s in experiment if s.getMSLevel() == 1]
    ms2 = [s for s in experiment if s.getMSLevel() == 2]
    writer = oms.PlainMSDataWritingConsumer(str(path))
    writer.setExpectedSize(n_spectra, 0)
    n_ms2 = 0
    for index in range(n_spectra):
        if index % (MS2_PER_MS1 + 1) == 0:
            spectrum = oms.MSSpectrum(ms1[(index // (MS2_PER_MS1 + 1)) % len(ms1)])
        else:
            spectrum = oms.MSSpectrum(ms2[index % len(ms2)])
            n_ms2 += 1
        spectrum.setNativeID(f"controllerType=0 controllerNumber=1 scan={index + 1}")
        spectrum.setRT(index * 0.2)
        writer.consumeSpectrum(spectrum)
    del writer  # OpenMS writes the index and closes the file when the writer is freed
    return n_ms2


def measure(path: str, mode: str, batch_size: int) -> dict:
    """Read one file (run in a fresh process); returns counts, seconds and peak RSS."""
    import pyopenms as oms

    from trm.io.spectra import iter_spectrum_batches

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    n_ms2 = 0
    if mode == "trm":
        for batch in iter_spectrum_batches(path, batch_size=batch_size):
            n_ms2 += batch.height
    else:
        handler = oms.MzMLFile()
        options = handler.getOptions()
        options.setMSLevels([2])
        handler.setOptions(options)
        experiment = oms.MSExperiment()
        handler.load(path, experiment)
        n_ms2 = experiment.size()
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "n_ms2": n_ms2,
        "seconds": seconds,
        "ms2_per_second": n_ms2 / seconds,
        "rss_after_imports_mib": rss_before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="reads per file; best is kept")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--measure", nargs=3, metavar=("PATH", "MODE", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.measure:
        path, mode, batch = args.measure
        sys.stdout.write(json.dumps(measure(path, mode, int(batch))) + "\n")
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="trm-bench-") as folder:
        for n_spectra in args.sizes:
            path = Path(folder) / f"replicated_{n_spectra}.mzML"
            n_ms2 = build_mzml(path, n_spectra)
            size_mib = path.stat().st_size / 2**20
            for mode in ("trm", "pyopenms-load"):
                runs = []
                for _ in range(args.repeats):
                    completed = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--measure",
                            str(path),
                            mode,
                            str(args.batch_size),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
                best = max(runs, key=lambda run: run["ms2_per_second"])
                if best["n_ms2"] != n_ms2:
                    raise RuntimeError(f"{mode} read {best['n_ms2']} MS2 spectra of {n_ms2}")
                best.update(
                    n_spectra=n_spectra,
                    file_mib=size_mib,
                    batch_size=args.batch_size,
                    peak_rss_mib=max(run["peak_rss_mib"] for run in runs),
                )
                results.append(best)
    header = (
        f"{'reader':<14}{'spectra':>9}{'MS2':>8}{'file MiB':>10}{'MS2/s':>9}"
        f"{'RSS after imports MiB':>23}{'peak RSS MiB':>14}"
    )
    lines = [header]
    for row in results:
        lines.append(
            f"{row['mode']:<14}{row['n_spectra']:>9}{row['n_ms2']:>8}{row['file_mib']:>10.1f}"
            f"{row['ms2_per_second']:>9.0f}{row['rss_after_imports_mib']:>23.1f}"
            f"{row['peak_rss_mib']:>14.1f}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
