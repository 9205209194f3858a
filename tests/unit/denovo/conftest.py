"""Fixtures of the de novo stage: a micro model in the real checkpoint format, spectra.

The model has random weights and a four-token vocabulary (G, A, S, N-terminal acetyl):
with so few residues the beam often finds a peptide of exactly the precursor's mass, and
for short peptides the random answer is sometimes the labelled one, so calibration sees
both right and wrong peptides without any training (which would take minutes).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from tests.unit.io.conftest import write_mzml
from tests.unit.train.theoretical_spectra import theoretical_table
from trm.chem import Vocabulary
from trm.cli import main
from trm.model import get_model_config
from trm.train.checkpoint import save_checkpoint
from trm.train.config import TrainConfig
from trm.train.loop import Trainer

DATA = Path(__file__).resolve().parents[2] / "data"
TOKENS = ("G", "A", "S", "[Acetyl]-")
MAX_CHARGE = 4


def random_peptides(n: int, seed: int) -> list[str]:
    """Peptides of 4-6 residues from G, A and S."""
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("GAS"), size=int(rng.integers(4, 7)))) for _ in range(n)]


@pytest.fixture(autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def vocabulary() -> Vocabulary:
    return Vocabulary(TOKENS)


@pytest.fixture(scope="session")
def micro_config():
    return dataclasses.replace(
        get_model_config("tiny"),
        hidden=32,
        supervision_steps=3,
        latent_steps=1,
        max_length=12,
        n_peaks=32,
        max_charge=MAX_CHARGE,
    )


@pytest.fixture(scope="session")
def model_path(tmp_path_factory, micro_config, vocabulary) -> Path:
    """A freshly initialised model saved as ``trm pretrain`` saves one."""
    trainer = Trainer(micro_config, TrainConfig(seed=0), vocabulary)
    path = tmp_path_factory.mktemp("models") / "pretrained.pt"
    save_checkpoint(trainer.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def instrument_path(tmp_path_factory) -> Path:
    return write_instrument(tmp_path_factory.mktemp("instrument") / "orbitrap.yaml")


def write_instrument(path: Path, **changes) -> Path:
    """The shipped Orbitrap HCD settings, with ``changes``."""
    settings = {
        "fragmentation": "HCD",
        "ms2pip_model": "HCD2019-distilled",
        "precursor_tolerance_ppm": 20,
        "isotope_errors": [0, 1],
        "charges": [2, 3],
        "missing_charge": "try",
        "fragment_tolerance_da": 0.02,
    }
    settings.update(changes)
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def validation_dir(tmp_path_factory) -> Path:
    """Labelled theoretical spectra as one shard, charges 2 and 3."""
    peptides = random_peptides(160, seed=0)
    table = pl.concat(
        [
            theoretical_table(peptides[:80], seed=1, charge=2),
            theoretical_table(peptides[80:], seed=2, charge=3),
        ]
    )
    folder = tmp_path_factory.mktemp("validation")
    table.write_parquet(folder / "shard-00000.parquet")
    return folder


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory, model_path, validation_dir, instrument_path) -> tuple[Path, Path]:
    """``trm calibrate`` of the micro model: (model, report)."""
    folder = tmp_path_factory.mktemp("calibrated")
    out, report = folder / "model.pt", folder / "calibration.json"
    assert calibrate(model_path, validation_dir, instrument_path, out, report) == 0
    return out, report


def calibrate(model_path, validation_dir, instrument_path, out, report, *extra: str) -> int:
    """Exit status of ``trm calibrate`` of a model (all steps, no early exit)."""
    return main(
        [
            "calibrate",
            "--model", str(model_path),
            "--validation-dir", str(validation_dir),
            "--instrument", str(instrument_path),
            "--out", str(out),
            "--report", str(report),
            "--halt-threshold", "none",
            *extra,
        ]
    )  # fmt: skip


@dataclasses.dataclass
class Sample:
    """A test mzML and what it holds."""

    path: Path
    labels: Path
    ms2_ids: list[str]
    n_ms1: int


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Sample:
    """An mzML of theoretical spectra with MS1 scans between them, and the hard cases:
    a spectrum without charge, one without peaks, one of charge 5 (above the model's 4)."""
    folder = tmp_path_factory.mktemp("sample")
    peptides = random_peptides(24, seed=5)
    table = theoretical_table(peptides, seed=6, charge=2)
    spectra: list[dict] = []
    ms2_ids: list[str] = []
    scan = 0

    def add(fields: dict) -> None:
        nonlocal scan
        scan += 1
        fields = {"native_id": f"controllerType=0 controllerNumber=1 scan={scan}", **fields}
        if fields.get("ms_level", 2) == 2:
            ms2_ids.append(fields["native_id"])
        spectra.append(fields)

    for index, row in enumerate(table.iter_rows(named=True)):
        if index % 8 == 0:
            add({"ms_level": 1, "mz": [400.0, 500.0], "intensity": [1.0, 1.0]})
        charge = 2
        if index == 3:
            charge = 0  # unknown: OpenMS writes no charge
        add(
            {
                "mz": row["mz"],
                "intensity": row["intensity"],
                "precursor_mz": row["precursor_mz"],
                "charge": charge,
                "rt": 10.0 * index,
            }
        )
    add({"mz": [], "intensity": [], "precursor_mz": 500.0, "charge": 2})
    add({"mz": [200.0, 300.0], "intensity": [1.0, 2.0], "precursor_mz": 400.0, "charge": 5})
    path = write_mzml(folder / "sample.mzML", spectra)
    labels = table.with_columns(
        spectrum_id=pl.Series([i for i in ms2_ids[: table.height]]), run=pl.lit("sample")
    )
    labels_path = folder / "labels.parquet"
    labels.write_parquet(labels_path)
    return Sample(
        path=path,
        labels=labels_path,
        ms2_ids=ms2_ids,
        n_ms1=sum(1 for s in spectra if s.get("ms_level", 2) == 1),
    )


def run_denovo(
    spectra: Path, model: Path, instrument: Path, out: Path, *extra: str, run: str = "sample"
) -> tuple[int, dict[str, Path]]:
    """``trm denovo`` into ``out``; returns the exit status and the output paths."""
    paths = {
        "denovo": out / "denovo.tsv",
        "mztab": out / "denovo.mztab",
        "unsequenced": out / "unsequenced.tsv",
        "timing": out / "trm_timing.json",
    }
    arguments = ["denovo", "--spectra", str(spectra), "--model", str(model)]
    arguments += ["--instrument", str(instrument), "--run", run]
    for name, path in paths.items():
        arguments += [f"--{name}", str(path)]
    return main([*arguments, *extra]), paths
