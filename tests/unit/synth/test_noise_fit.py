"""Peak annotation, noise-model fitting from labelled spectra, and the noise-model file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from trm import chem
from trm.fragments import SERIES_B, fragment_charges, theoretical_fragments
from trm.io.table import SPECTRUM_SCHEMA
from trm.noise_model import NoiseModelError, NoiseModelParameters
from trm.synth.annotate import CATEGORY_INDEX, annotate_spectrum, immonium_mz
from trm.synth.noise_fit import TooFewSpectraError, fit_noise_model

PEPTIDES = (
    "LGGNEQVTR", "YILAGVENSK", "GTFIIDPGGVIR", "GTFIIDPAAVIR", "SAAGAFGPELSR",
    "ELGQSGVDTYLQTK", "TPVISGGPYEYR", "VEATFGVDESNAK", "TPVITGAPYEYR", "DGLDAASYYAPVR",
    "ADVTPADFSEWSK", "LFLQFGAQGSPFLK", "HVLTSIGEK", "AGFAGDDAPR", "AVFPSIVGR",
)  # fmt: skip


def _spectrum(tokens, charge, rng, keep=0.7, n_noise=30, isotope_ratio=0.3):
    """A spectrum of the peptide's b/y ions (a share kept), their isotopes, a few a ions,
    water losses, the precursor and uniform noise peaks; with the truth of each peak."""
    fragments = theoretical_fragments(tokens, fragment_charges(charge))
    kept = rng.random(len(fragments)) < keep
    mz = list(fragments.mz[kept])
    intensity = list(rng.uniform(0.2, 1.0, kept.sum()))
    truth = ["by"] * len(mz)
    for m, i, z in zip(fragments.mz[kept], intensity[:], fragments.charge[kept], strict=True):
        mz.append(m + chem.C13_SPACING / z)
        intensity.append(i * isotope_ratio)
        truth.append("isotope")
    b = (fragments.series == SERIES_B) & (fragments.charge == 1) & (fragments.number == 2)
    mz.append(float(fragments.mz[b][0]) - chem.CO_MASS)
    intensity.append(0.5)
    truth.append("a")
    neutral = chem.peptide_mass(tokens)
    mz.append((neutral + charge * chem.PROTON_MASS) / charge)
    intensity.append(0.3)
    truth.append("precursor")
    noise = rng.uniform(150, neutral * 0.9, n_noise)
    mz += list(noise)
    intensity += list(rng.uniform(0.01, 0.2, n_noise))
    truth += ["unexplained"] * n_noise
    order = np.argsort(mz)
    return np.asarray(mz)[order], np.asarray(intensity)[order], np.asarray(truth)[order], neutral


def test_annotation_finds_what_the_spectrum_holds():
    rng = np.random.default_rng(0)
    tokens, _ = chem.parse_peptidoform("GTFIIDPGGVIR")
    mz, intensity, truth, _ = _spectrum(tokens, 2, rng, keep=1.0, n_noise=0)
    annotation = annotate_spectrum(mz, intensity, tokens, 2, 0.02)
    for name in ("by", "isotope", "a", "precursor"):
        assert (annotation.category[truth == name] == CATEGORY_INDEX[name]).all(), name
    assert (annotation.fragment_peak >= 0).all()
    assert annotation.reference_intensity == pytest.approx(intensity[truth == "by"].sum())
    assert immonium_mz("H") == pytest.approx(110.0713, abs=1e-3)


def _table(rng, n_spectra, **kwargs) -> pl.DataFrame:
    rows = []
    for index in range(n_spectra):
        peptide = PEPTIDES[index % len(PEPTIDES)]
        tokens, _ = chem.parse_peptidoform(peptide)
        charge = 2 if index % 3 else 3
        mz, intensity, _, neutral = _spectrum(tokens, charge, rng, **kwargs)
        rows.append(
            {
                "spectrum_id": str(index),
                "run": "r",
                "scan": index,
                "precursor_mz": float(chem.mass_to_mz(neutral, charge)),
                "charge": charge,
                "rt": None,
                "mz": mz.astype(np.float32).tolist(),
                "intensity": intensity.astype(np.float32).tolist(),
                "peptide": peptide,
            }
        )
    return pl.DataFrame(rows, schema=SPECTRUM_SCHEMA)


@pytest.fixture(scope="module")
def fitted(project_root):
    rng = np.random.default_rng(1)
    table = _table(rng, 80, keep=0.7, n_noise=40)
    # Bad input, each excluded and counted: a label 50 Da off its precursor, no peaks.
    broken = table.head(2).with_columns(
        pl.Series("precursor_mz", [table["precursor_mz"][0] + 25.0, table["precursor_mz"][1]]),
        pl.Series("mz", [table["mz"][0].to_list(), []], dtype=pl.List(pl.Float32())),
        pl.Series("intensity", [table["intensity"][0].to_list(), []], dtype=pl.List(pl.Float32())),
    )
    return fit_noise_model(
        [table, broken],
        fragment_tolerance_da=0.02,
        precursor_tolerance_ppm=20,
        isotope_errors=(0, 1),
        ms2pip_model="HCD2019-distilled",
        ms2pip_model_dir=str(project_root / "resources" / "ms2pip"),
    )


def test_fit_recovers_what_the_spectra_were_made_with(fitted):
    parameters, report = fitted
    assert report.n_used == 80
    assert report.excluded == {"label does not fit the precursor": 1, "no peaks": 1}
    observed = np.asarray(parameters.fragment_observed_n)
    rate = (np.asarray(parameters.fragment_observed) * observed).sum() / observed.sum()
    assert rate == pytest.approx(0.7, abs=0.05)
    # Isotope peaks at 30% of their fragment, present for every kept fragment.
    assert np.mean(parameters.isotope_observed) > 0.9
    ratio = np.exp(parameters.isotope_ratio["intercept"] + parameters.isotope_ratio["per_kda"])
    assert ratio == pytest.approx(0.3, rel=0.1)
    assert parameters.a_ion_observed[1] > 0.9  # every spectrum has its a2 ion
    assert parameters.precursor_observed[0] > 0.9
    # About 40 unexplained peaks per spectrum (some land on an ion by chance).
    count = parameters.unexplained_count
    median = np.expm1(count["intercept"] + count["per_precursor_kmz"] * 0.6)
    assert 25 < median < 55
    assert count["charge_range"] == [2, 3]  # the charges it saw, no more
    assert parameters.precursor_error["isotope_probability"][0] == 1.0
    assert parameters.sample_sizes["spectra"] == 80


def test_too_few_spectra_is_a_clear_error(project_root):
    table = _table(np.random.default_rng(2), 10)
    with pytest.raises(TooFewSpectraError, match="only 10 usable labelled spectra.*at least 50"):
        fit_noise_model(
            [table], 0.02, 20, (0, 1), "HCD2019-distilled", str(project_root / "resources/ms2pip")
        )


def test_noise_file_round_trip_and_bad_files(fitted, tmp_path):
    parameters, _ = fitted
    parameters.provenance = {"note": "test"}
    path = tmp_path / "noise.yaml"
    parameters.write(path)
    assert NoiseModelParameters.read(path) == parameters
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: something-else\n")
    with pytest.raises(NoiseModelError, match="bad.yaml.*not a trm noise model"):
        NoiseModelParameters.read(bad)
    values = parameters.to_dict()
    values["fragment_observed"] = [[0.5]]
    with pytest.raises(NoiseModelError, match="fragment_observed has shape"):
        NoiseModelParameters.from_dict(values)


def test_the_shipped_noise_model_reads(project_root):
    shipped = NoiseModelParameters.read(project_root / "resources/noise/orbitrap_hcd.yaml")
    assert shipped.sample_sizes["spectra"] >= 50
    assert "fitted_from" in shipped.provenance
