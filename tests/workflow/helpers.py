"""Running snakemake on a configuration in a temporary working directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import PROJECT_ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, workdir: Path = PROJECT_ROOT, timeout: int = 600):
    """Run snakemake with the project's Snakefile; returns the completed process."""
    command = [*SNAKEMAKE, "--snakefile", str(PROJECT_ROOT / "Snakefile"), "--directory"]
    return subprocess.run(
        [*command, str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def make_workdir(tmp_path: Path, config_dir: Path) -> Path:
    """Copy a config folder to ``tmp_path/config`` with sample paths made absolute.

    Parameters
    ----------
    config_dir : Path
        Folder holding config.yaml, samples.tsv and instruments/; instrument files
        missing there are taken from the project's config/instruments/.
    """
    target = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config" / "instruments", target / "instruments")
    shutil.copytree(config_dir, target, dirs_exist_ok=True)
    sheet = pd.read_csv(target / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    sheet["spectra"] = [str(PROJECT_ROOT / p) for p in sheet["spectra"]]
    sheet["identifications"] = [
        str(PROJECT_ROOT / p) if p not in ("", "annotated") else p for p in sheet["identifications"]
    ]
    sheet.to_csv(target / "samples.tsv", sep="\t", index=False)
    return tmp_path


def planned_jobs(output: str) -> dict[str, int]:
    """Rule name -> job count from the 'Job stats' table of a dry run."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts
