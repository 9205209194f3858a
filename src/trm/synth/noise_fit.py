"""Fit an instrument's noise model from its identified spectra.

Every labelled spectrum is annotated against its peptide (:mod:`trm.synth.annotate`) and
compared with the instrument's MS2PIP prediction for the same peptide and charge. What
the model estimates, each with the number of observations behind it:

(a) the probability that a predicted b/y fragment is observed, by ion series, predicted
    intensity rank and position in the peptide (charge 1), and the probability and
    intensity of doubly charged fragments for precursors of charge 3 and more (the
    shipped MS2PIP model predicts charge 1 only);
(b) the spread of observed against predicted intensities (log space);
(c) the fragment m/z error: a per-spectrum offset and the spread around it (ppm);
(d) unexplained peaks: their number against precursor m/z and charge, their m/z
    relative to the precursor mass and their intensity;
(e) a ions, water and ammonia losses, immonium ions of the peptide's residues and
    precursor peaks: how often each is present and how intense;
(f) 13C isotope peaks of fragments and their intensity ratio to the monoisotopic peak;
(g) the precursor's mass error (ppm) and how often the instrument picked a 13C isotope
    peak as the precursor (synthetic spectra have exact monoisotopic precursors).

Relative intensities are taken against the spectrum's summed singly charged b/y intensity
(the *reference*), which a synthetic spectrum has too.
:class:`trm.train.noise.FittedNoise` samples all of it onto synthetic spectra.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from trm.chem import (
    C13_SPACING,
    UnsupportedPeptideError,
    mass_fits_precursor,
    mz_to_mass,
    parse_peptidoform,
    peptide_mass,
)
from trm.fragments import SERIES_B, SERIES_Y, ion_mz, ion_neutral_mass
from trm.noise_model import (
    A_ION_NUMBER_EDGES,
    DOUBLE_CHARGE_MASS_EDGES,
    INTENSITY_RANK_EDGES,
    N_PRECURSOR_KINDS,
    POSITION_EDGES,
    UNEXPLAINED_INTENSITY_EDGES,
    UNEXPLAINED_MZ_EDGES,
    NoiseModelError,
    NoiseModelParameters,
    bucket,
    log_unexplained_count,
)
from trm.synth.annotate import CATEGORIES, CATEGORY_INDEX, annotate_spectrum, immonium_mz

log = logging.getLogger(__name__)

#: Fewest usable spectra (a label that fits its precursor and at least one b/y ion
#: matched) from which a noise model is fitted; below it the fit refuses.
MIN_SPECTRA = 50

#: Pseudo-observations pulling a sparse cell's probability towards its pooled rate.
_SHRINKAGE = 5.0


class TooFewSpectraError(NoiseModelError):
    """Not enough usable labelled spectra to fit a noise model."""


@dataclass
class _Rate:
    """Present/absent counts of one cell."""

    n: int = 0
    k: int = 0

    def add(self, present: np.ndarray) -> None:
        self.n += int(np.size(present))
        self.k += int(np.sum(present))


def _shrunk(k: np.ndarray, n: np.ndarray, pooled: float) -> np.ndarray:
    return (k + _SHRINKAGE * pooled) / (n + _SHRINKAGE)


def _normal(values: Sequence[float], default_mean: float, default_sd: float) -> dict:
    """Mean, standard deviation and count, robust to a few outliers (median and MAD)."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if len(array) < 3:
        return {"mean": default_mean, "sd": default_sd, "n": int(len(array))}
    median = float(np.median(array))
    mad = float(np.median(np.abs(array - median))) * 1.4826
    return {"mean": median, "sd": max(mad, 1e-3), "n": int(len(array))}


@dataclass
class FitReport:
    """What happened to the labelled spectra.

    Attributes
    ----------
    n_spectra : int
        Rows read.
    n_used : int
        Spectra that entered the fit.
    excluded : collections.Counter
        Reason -> spectra left out (no peaks, no charge, unsupported peptide, label does
        not fit the precursor, no b/y ion matched).
    category_peaks, category_intensity : dict
        Share of all peaks and of all intensity per annotation category.
    """

    n_spectra: int = 0
    n_used: int = 0
    excluded: Counter = field(default_factory=Counter)
    category_peaks: dict[str, float] = field(default_factory=dict)
    category_intensity: dict[str, float] = field(default_factory=dict)


@dataclass
class _Accumulator:
    """Everything collected over the spectra before the parameters are estimated."""

    n_ranks: int = len(INTENSITY_RANK_EDGES)
    n_positions: int = len(POSITION_EDGES)
    observed_n: np.ndarray = field(default=None)  # type: ignore[assignment]
    observed_k: np.ndarray = field(default=None)  # type: ignore[assignment]
    double_n: np.ndarray = field(default=None)  # type: ignore[assignment]
    double_k: np.ndarray = field(default=None)  # type: ignore[assignment]
    double_intensity: list[float] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)
    ppm_offsets: list[float] = field(default_factory=list)
    ppm_spread: list[float] = field(default_factory=list)
    isotope_n: np.ndarray = field(default=None)  # type: ignore[assignment]
    isotope_k: np.ndarray = field(default=None)  # type: ignore[assignment]
    isotope_ratio: list[tuple[float, float]] = field(default_factory=list)
    a_n: np.ndarray = field(default=None)  # type: ignore[assignment]
    a_k: np.ndarray = field(default=None)  # type: ignore[assignment]
    a_intensity: list[float] = field(default_factory=list)
    loss_n: np.ndarray = field(default=None)  # type: ignore[assignment]
    loss_k: np.ndarray = field(default=None)  # type: ignore[assignment]
    loss_ratio: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    precursor_n: np.ndarray = field(default=None)  # type: ignore[assignment]
    precursor_k: np.ndarray = field(default=None)  # type: ignore[assignment]
    precursor_intensity: list[float] = field(default_factory=list)
    immonium: dict[str, _Rate] = field(default_factory=dict)
    immonium_intensity: list[float] = field(default_factory=list)
    unexplained_counts: list[tuple[float, int, int]] = field(default_factory=list)
    precursor_ppm: list[float] = field(default_factory=list)
    precursor_isotope: list[int] = field(default_factory=list)
    unexplained_mz: list[np.ndarray] = field(default_factory=list)
    unexplained_intensity: list[np.ndarray] = field(default_factory=list)
    category_peaks: np.ndarray = field(default_factory=lambda: np.zeros(len(CATEGORIES)))
    category_intensity: np.ndarray = field(default_factory=lambda: np.zeros(len(CATEGORIES)))

    def __post_init__(self) -> None:
        self.observed_n = np.zeros((2, self.n_ranks, self.n_positions))
        self.observed_k = np.zeros((2, self.n_ranks, self.n_positions))
        self.double_n = np.zeros(len(DOUBLE_CHARGE_MASS_EDGES))
        self.double_k = np.zeros(len(DOUBLE_CHARGE_MASS_EDGES))
        self.isotope_n = np.zeros(self.n_ranks)
        self.isotope_k = np.zeros(self.n_ranks)
        self.a_n = np.zeros(len(A_ION_NUMBER_EDGES))
        self.a_k = np.zeros(len(A_ION_NUMBER_EDGES))
        self.loss_n = np.zeros((2, 2))  # (water, ammonia) x (b, y)
        self.loss_k = np.zeros((2, 2))
        self.precursor_n = np.zeros(N_PRECURSOR_KINDS)
        self.precursor_k = np.zeros(N_PRECURSOR_KINDS)


def _predicted_fragments(
    rows: list[tuple[list[str], int]], model: str, model_dir: str, threads: int | None
) -> list[dict[tuple[int, int], float]]:
    """MS2PIP's charge-1 b/y intensities per spectrum: (series, number) -> intensity."""
    from trm.synth.ms2pip_models import Ms2pipPredictor
    from trm.synth.spectra import Peptidoform, predict_spectra

    predictor = Ms2pipPredictor(model, model_dir, threads)
    peptidoforms = [Peptidoform(tuple(tokens), charge) for tokens, charge in rows]
    ids = [str(i) for i in range(len(rows))]
    table, _ = predict_spectra(peptidoforms, ids, list(range(len(rows))), "fit", predictor)
    out: list[dict[tuple[int, int], float]] = [{} for _ in rows]
    for row in table.iter_rows(named=True):
        index = int(row["spectrum_id"])
        for series, number, charge, intensity in zip(
            row["ion_type"], row["ion_number"], row["ion_charge"], row["intensity"], strict=True
        ):
            if charge == 1:
                code = SERIES_B if series == "b" else SERIES_Y
                out[index][(code, int(number))] = float(intensity)
    return out


def _usable_rows(
    table: pl.DataFrame,
    report: FitReport,
    precursor_tolerance_ppm: float,
    isotope_errors: tuple[int, int],
) -> list[tuple[dict, list[str]]]:
    """Rows with peaks, a charge and a label that fits the precursor, with their tokens;
    each row gets ``_precursor_ppm`` and ``_isotope`` (its precursor error)."""
    usable = []
    for row in table.iter_rows(named=True):
        report.n_spectra += 1
        if not row["mz"]:
            report.excluded["no peaks"] += 1
            continue
        if row["charge"] is None or row["charge"] < 1:
            report.excluded["no precursor charge"] += 1
            continue
        if row["peptide"] is None:
            report.excluded["no peptide"] += 1
            continue
        try:
            tokens, _ = parse_peptidoform(row["peptide"])
        except UnsupportedPeptideError:
            report.excluded["unsupported peptide"] += 1
            continue
        precursor = float(mz_to_mass(row["precursor_mz"], row["charge"]))
        mass = peptide_mass(tokens)
        if not mass_fits_precursor(mass, precursor, precursor_tolerance_ppm, isotope_errors):
            report.excluded["label does not fit the precursor"] += 1
            continue
        isotopes = np.arange(isotope_errors[0], isotope_errors[1] + 1)
        errors = (precursor - isotopes * C13_SPACING - mass) / mass * 1e6
        best = int(np.argmin(np.abs(errors)))
        usable.append(({**row, "_precursor_ppm": errors[best], "_isotope": isotopes[best]}, tokens))
    return usable


def fit_noise_model(
    tables: Sequence[pl.DataFrame],
    fragment_tolerance_da: float,
    precursor_tolerance_ppm: float,
    isotope_errors: tuple[int, int],
    ms2pip_model: str,
    ms2pip_model_dir: str,
    threads: int | None = None,
    min_spectra: int = MIN_SPECTRA,
) -> tuple[NoiseModelParameters, FitReport]:
    """Estimate a noise model from labelled spectra.

    Parameters
    ----------
    tables : sequence of polars.DataFrame
        Labelled spectrum tables (``trm labelled-spectra`` output).
    fragment_tolerance_da : float
        Fragment m/z tolerance of the instrument (Da).
    precursor_tolerance_ppm, isotope_errors
        A label whose mass does not fit the precursor within these is excluded.
    ms2pip_model, ms2pip_model_dir : str
        The instrument's MS2PIP model, for predicted intensities.
    threads : int, optional
    min_spectra : int
        Fewest usable spectra accepted.

    Returns
    -------
    parameters : NoiseModelParameters
        ``provenance`` left empty for the caller to fill.
    report : FitReport

    Raises
    ------
    TooFewSpectraError
        With the counts, when fewer than ``min_spectra`` spectra are usable.
    """
    report = FitReport()
    rows: list[tuple[dict, list[str]]] = []
    for table in tables:
        rows += _usable_rows(table, report, precursor_tolerance_ppm, isotope_errors)
    if len(rows) < min_spectra:
        raise TooFewSpectraError(
            f"only {len(rows)} usable labelled spectra (at least {min_spectra} needed; "
            f"{report.n_spectra} read, excluded: {dict(report.excluded) or 'none'})"
        )
    predicted = _predicted_fragments(
        [(tokens, int(row["charge"])) for row, tokens in rows],
        ms2pip_model,
        ms2pip_model_dir,
        threads,
    )
    acc = _Accumulator()
    acc.precursor_ppm = [row["_precursor_ppm"] for row, _ in rows]
    acc.precursor_isotope = [int(row["_isotope"]) for row, _ in rows]
    for (row, tokens), prediction in zip(rows, predicted, strict=True):
        if _accumulate(acc, row, tokens, prediction, fragment_tolerance_da):
            report.n_used += 1
        else:
            report.excluded["no b/y ion matched"] += 1
    if report.n_used < min_spectra:
        raise TooFewSpectraError(
            f"only {report.n_used} labelled spectra with a matched b/y ion (at least "
            f"{min_spectra} needed; excluded: {dict(report.excluded)})"
        )
    report.category_peaks = dict(
        zip(
            CATEGORIES,
            (acc.category_peaks / acc.category_peaks.sum()).round(4).tolist(),
            strict=True,
        )
    )
    report.category_intensity = dict(
        zip(
            CATEGORIES,
            (acc.category_intensity / acc.category_intensity.sum()).round(4).tolist(),
            strict=True,
        )
    )
    return _estimate(acc, report, fragment_tolerance_da), report


def _accumulate(
    acc: _Accumulator,
    row: dict,
    tokens: list[str],
    prediction: dict[tuple[int, int], float],
    tolerance: float,
) -> bool:
    """Add one spectrum's observations; False when no b/y ion matched."""
    mz = np.asarray(row["mz"], dtype=np.float64)
    intensity = np.asarray(row["intensity"], dtype=np.float64)
    order = np.argsort(mz, kind="stable")
    mz, intensity = mz[order], intensity[order]
    charge = int(row["charge"])
    annotation = annotate_spectrum(mz, intensity, tokens, charge, tolerance)
    fragments = annotation.fragments
    matched = annotation.fragment_peak >= 0
    if not matched.any() or annotation.reference_intensity <= 0:
        return False
    reference = annotation.reference_intensity
    for c in range(len(CATEGORIES)):
        chosen = annotation.category == c
        acc.category_peaks[c] += chosen.sum()
        acc.category_intensity[c] += intensity[chosen].sum()
    n_residues = int(fragments.number.max()) + 1 if len(fragments) else 0
    single = fragments.charge == 1

    # (a) observation against predicted rank, series and position (charge 1)
    keys = list(
        zip(fragments.series[single].tolist(), fragments.number[single].tolist(), strict=True)
    )
    predicted = np.array([prediction.get(key, 0.0) for key in keys])
    has_prediction = predicted > 0
    rank = np.empty(len(predicted), dtype=np.int64)
    rank[np.argsort(-predicted, kind="stable")] = np.arange(1, len(predicted) + 1)
    rank_bucket = bucket(rank, INTENSITY_RANK_EDGES)
    position = (fragments.number[single] - 1) / max(n_residues - 2, 1)
    position_bucket = bucket(position, POSITION_EDGES)
    series_index = fragments.series[single].astype(np.int64) - 1
    observed = matched[single]
    np.add.at(
        acc.observed_n, (series_index[has_prediction], rank_bucket[has_prediction],
                         position_bucket[has_prediction]), 1.0,
    )  # fmt: skip
    np.add.at(
        acc.observed_k, (series_index[has_prediction], rank_bucket[has_prediction],
                         position_bucket[has_prediction]), observed[has_prediction],
    )  # fmt: skip

    # doubly charged fragments (precursor charge >= 3), against the fragment's mass
    double = fragments.charge == 2
    if double.any():
        neutral = ion_neutral_mass(fragments.mz[double], 2)
        mass_bucket = bucket(neutral, DOUBLE_CHARGE_MASS_EDGES)
        np.add.at(acc.double_n, mass_bucket, 1.0)
        np.add.at(acc.double_k, mass_bucket, matched[double])
        peaks = annotation.fragment_peak[double][matched[double]]
        acc.double_intensity += np.log10(intensity[peaks] / reference).tolist()

    # (b) intensity residuals of matched, predicted fragments (each side normalised)
    both = observed & has_prediction
    if both.sum() >= 3:
        obs = intensity[annotation.fragment_peak[single][both]]
        pred = predicted[both]
        residual = np.log(obs / obs.sum()) - np.log(pred / pred.sum())
        acc.residuals += (residual - residual.mean()).tolist()

    # (c) m/z error
    peaks = annotation.fragment_peak[matched]
    ppm = (mz[peaks] - fragments.mz[matched]) / fragments.mz[matched] * 1e6
    if len(ppm) >= 3:
        offset = float(np.median(ppm))
        acc.ppm_offsets.append(offset)
        acc.ppm_spread += (ppm - offset).tolist()

    # (f) isotopes of matched fragments, against the fragment's observed intensity rank
    matched_intensity = intensity[annotation.fragment_peak[matched]]
    observed_rank = np.empty(len(matched_intensity), dtype=np.int64)
    observed_rank[np.argsort(-matched_intensity, kind="stable")] = np.arange(
        1, len(matched_intensity) + 1
    )
    rank_bucket = bucket(observed_rank, INTENSITY_RANK_EDGES)
    isotope_peak = annotation.isotope_peak[matched]
    has_isotope = isotope_peak >= 0
    np.add.at(acc.isotope_n, rank_bucket, 1.0)
    np.add.at(acc.isotope_k, rank_bucket, has_isotope)
    if has_isotope.any():
        fragment_mass = (fragments.mz[matched] * fragments.charge[matched])[has_isotope]
        ratio = np.log(intensity[isotope_peak[has_isotope]] / matched_intensity[has_isotope])
        acc.isotope_ratio += list(zip(fragment_mass.tolist(), ratio.tolist(), strict=True))

    # (e) a ions of every theoretical b ion (charge 1), against the b ion number
    b_single = (fragments.series == SERIES_B) & single
    a_present = annotation.a_peak[b_single] >= 0
    number_bucket = bucket(fragments.number[b_single], A_ION_NUMBER_EDGES)
    np.add.at(acc.a_n, number_bucket, 1.0)
    np.add.at(acc.a_k, number_bucket, a_present)
    a_peaks = annotation.a_peak[b_single][a_present]
    acc.a_intensity += np.log10(intensity[a_peaks] / reference).tolist()

    # (e) neutral losses of matched fragments, by series
    for loss, loss_peak in enumerate((annotation.loss_h2o_peak, annotation.loss_nh3_peak)):
        for series in (SERIES_B, SERIES_Y):
            chosen = matched & (fragments.series == series)
            present = loss_peak[chosen] >= 0
            acc.loss_n[loss, series - 1] += chosen.sum()
            acc.loss_k[loss, series - 1] += present.sum()
            parent = intensity[annotation.fragment_peak[chosen][present]]
            acc.loss_ratio[loss].extend(
                np.log10(intensity[loss_peak[chosen][present]] / parent).tolist()
            )

    # (e) precursor peaks: every kind the charge allows
    possible = np.array(
        [3 * (charge - c) + loss for c in range(charge, 0, -1) for loss in range(3)]
    )
    possible = possible[possible < N_PRECURSOR_KINDS]
    kinds_seen = annotation.precursor_kind[annotation.precursor_kind >= 0]
    acc.precursor_n[possible] += 1
    acc.precursor_k[np.unique(kinds_seen[kinds_seen < N_PRECURSOR_KINDS])] += 1
    precursor_peaks = annotation.category == CATEGORY_INDEX["precursor"]
    acc.precursor_intensity += np.log10(intensity[precursor_peaks] / reference).tolist()

    # (e) immonium ions of the peptide's residues
    # I and L share one immonium m/z: a peak claimed by either counts for both
    seen = {round(immonium_mz(t), 4) for t in annotation.immonium_token if t is not None}
    for token in {t for t in tokens if not t.endswith("-")}:
        present = round(immonium_mz(token), 4) in seen
        acc.immonium.setdefault(token, _Rate()).add(np.array([present]))
    immonium_peaks = annotation.category == CATEGORY_INDEX["immonium"]
    acc.immonium_intensity += np.log10(intensity[immonium_peaks] / reference).tolist()

    # (d) unexplained peaks
    unexplained = annotation.category == CATEGORY_INDEX["unexplained"]
    precursor_mh = ion_mz(peptide_mass(tokens), 1)
    acc.unexplained_counts.append((float(row["precursor_mz"]), charge, int(unexplained.sum())))
    acc.unexplained_mz.append(mz[unexplained] / precursor_mh)
    acc.unexplained_intensity.append(np.log10(intensity[unexplained] / reference))
    return True


def _histogram(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    clipped = np.clip(values, edges[0], np.nextafter(edges[-1], -np.inf))
    counts, _ = np.histogram(clipped, bins=np.asarray(edges))
    counts = counts + 0.5  # no empty bin: every range stays possible
    return (counts / counts.sum()).round(6).tolist()


def _estimate(acc: _Accumulator, report: FitReport, tolerance: float) -> NoiseModelParameters:
    pooled = acc.observed_k.sum() / max(acc.observed_n.sum(), 1)
    observed = _shrunk(acc.observed_k, acc.observed_n, pooled)

    double_pooled = acc.double_k.sum() / max(acc.double_n.sum(), 1)
    isotope_pooled = acc.isotope_k.sum() / max(acc.isotope_n.sum(), 1)
    a_pooled = acc.a_k.sum() / max(acc.a_n.sum(), 1)

    # isotope ratio: log(I_iso / I_mono) = intercept + slope * mass / 1000
    isotope_fit = {"intercept": math.log(0.3), "per_kda": 0.5, "sd": 0.5, "n": 0}
    if len(acc.isotope_ratio) >= 10:
        mass, ratio = np.array(acc.isotope_ratio).T
        design = np.stack([np.ones_like(mass), mass / 1000.0], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, ratio, rcond=None)
        residual = ratio - design @ coefficients
        isotope_fit = {
            "intercept": float(coefficients[0]),
            "per_kda": float(coefficients[1]),
            "sd": float(max(np.std(residual), 1e-3)),
            "n": len(ratio),
        }

    # unexplained count: log1p(count) = a + b * precursor_mz / 1000 + c * (charge - 2)
    counts = np.array(acc.unexplained_counts, dtype=np.float64)
    design = np.stack([np.ones(len(counts)), counts[:, 0] / 1000.0, counts[:, 1] - 2.0], axis=1)
    target = np.log1p(counts[:, 2])
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual_sd = float(max(np.std(target - design @ coefficients), 1e-3))

    immonium = {
        token: {
            "probability": float((rate.k + _SHRINKAGE * 0.05) / (rate.n + _SHRINKAGE)),
            "n": rate.n,
        }
        for token, rate in sorted(acc.immonium.items())
    }
    loss_pooled = acc.loss_k / np.maximum(acc.loss_n, 1)
    return NoiseModelParameters(
        fragment_tolerance_da=tolerance,
        sample_sizes={
            "spectra": report.n_used,
            "predicted_fragments": int(acc.observed_n.sum()),
            "matched_fragments": int(acc.observed_k.sum()),
            "unexplained_peaks": int(sum(len(v) for v in acc.unexplained_mz)),
        },
        fragment_observed=observed.round(5).tolist(),
        fragment_observed_n=acc.observed_n.astype(int).tolist(),
        double_charge_observed=_shrunk(acc.double_k, acc.double_n, double_pooled).round(5).tolist(),
        double_charge_observed_n=acc.double_n.astype(int).tolist(),
        double_charge_intensity=_normal(acc.double_intensity, -1.0, 0.5),
        intensity_residual=_normal(acc.residuals, 0.0, 0.5),
        ppm_offset=_normal(acc.ppm_offsets, 0.0, 2.0),
        ppm_spread=_normal(acc.ppm_spread, 0.0, 3.0),
        isotope_observed=_shrunk(acc.isotope_k, acc.isotope_n, isotope_pooled).round(5).tolist(),
        isotope_observed_n=acc.isotope_n.astype(int).tolist(),
        isotope_ratio=isotope_fit,
        a_ion_observed=_shrunk(acc.a_k, acc.a_n, a_pooled).round(5).tolist(),
        a_ion_observed_n=acc.a_n.astype(int).tolist(),
        a_ion_intensity=_normal(acc.a_intensity, -1.5, 0.5),
        loss_observed=loss_pooled.round(5).tolist(),
        loss_observed_n=acc.loss_n.astype(int).tolist(),
        loss_ratio=[_normal(acc.loss_ratio[0], -1.0, 0.5), _normal(acc.loss_ratio[1], -1.0, 0.5)],
        precursor_observed=_shrunk(acc.precursor_k, acc.precursor_n, 0.05).round(5).tolist(),
        precursor_observed_n=acc.precursor_n.astype(int).tolist(),
        precursor_intensity=_normal(acc.precursor_intensity, -1.0, 0.5),
        immonium=immonium,
        immonium_intensity=_normal(acc.immonium_intensity, -1.0, 0.5),
        unexplained_count={
            # the sampler clamps precursor m/z to this range: no extrapolation
            "precursor_mz_range": [
                float(np.percentile(counts[:, 0], 2)),
                float(np.percentile(counts[:, 0], 98)),
            ],
            # and the charge to the charges fitted on
            "charge_range": [int(counts[:, 1].min()), int(counts[:, 1].max())],
            "intercept": float(coefficients[0]),
            "per_precursor_kmz": float(coefficients[1]),
            "per_charge": float(coefficients[2]),
            "sd": residual_sd,
            "n": len(counts),
        },
        precursor_error={
            "ppm": _normal(acc.precursor_ppm, 0.0, 2.0),
            # share of precursors picked at the 0th, 1st, 2nd 13C isotope peak
            "isotope_probability": (
                np.bincount(np.clip(acc.precursor_isotope, 0, 2), minlength=3)
                / max(len(acc.precursor_isotope), 1)
            )
            .round(5)
            .tolist(),
        },
        unexplained_mz=_histogram(np.concatenate(acc.unexplained_mz), UNEXPLAINED_MZ_EDGES),
        unexplained_intensity=_histogram(
            np.concatenate(acc.unexplained_intensity), UNEXPLAINED_INTENSITY_EDGES
        ),
    )


def noise_figure(parameters: NoiseModelParameters):  # noqa: ANN201 - matplotlib lazily
    """A six-panel matplotlib figure of a fitted noise model (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    p = parameters
    figure = Figure(figsize=(13, 7), layout="constrained")
    axes = figure.subplots(2, 3).ravel()
    observed = np.asarray(p.fragment_observed)
    labels = [f"{edge}+" for edge in INTENSITY_RANK_EDGES]
    for series, name in ((0, "b"), (1, "y")):
        for position, where in enumerate(("N-term", "middle", "C-term")):
            axes[0].plot(labels, observed[series, :, position], marker="o",
                         label=f"{name}, {where}")  # fmt: skip
    axes[0].set(title="(a) predicted fragment observed", xlabel="MS2PIP intensity rank",
                ylabel="probability", ylim=(0, 1))  # fmt: skip
    axes[0].legend(fontsize=7)
    c = p.unexplained_count
    x = np.linspace(*c["precursor_mz_range"], 50) / 1000.0
    for charge in (2, 3):
        axes[1].plot(
            x * 1000,
            np.expm1(log_unexplained_count(c, x * 1000, np.full_like(x, charge))),
            label=f"charge {charge}",
        )
    axes[1].set(title=f"(d) unexplained peaks (n = {p.unexplained_count['n']} spectra)",
                xlabel="precursor m/z", ylabel="median count")  # fmt: skip
    axes[1].legend(fontsize=7)
    edges = np.asarray(UNEXPLAINED_MZ_EDGES)
    axes[2].bar(edges[:-1], p.unexplained_mz, width=np.diff(edges), align="edge")
    axes[2].set(title="(d) unexplained peak m/z", xlabel="m/z / [M+H]+", ylabel="share")
    edges = np.asarray(UNEXPLAINED_INTENSITY_EDGES)
    axes[3].bar(edges[:-1], p.unexplained_intensity, width=np.diff(edges), align="edge")
    axes[3].set(title="(d) unexplained peak intensity",
                xlabel="log10 intensity / summed b/y", ylabel="share")  # fmt: skip
    kinds = {
        "isotope (rank 1)": p.isotope_observed[0],
        "a2 ion": p.a_ion_observed[1],
        "b - H2O": p.loss_observed[0][0],
        "y - H2O": p.loss_observed[0][1],
        "b - NH3": p.loss_observed[1][0],
        "y - NH3": p.loss_observed[1][1],
        "precursor": p.precursor_observed[0],
        "2+ fragment": float(np.mean(p.double_charge_observed)),
    }
    axes[4].barh(list(kinds), list(kinds.values()))
    axes[4].set(title="(e, f) related peaks", xlabel="probability", xlim=(0, 1))
    spread, offset = p.ppm_spread, p.ppm_offset
    grid = np.linspace(-30, 30, 200)
    axes[5].plot(grid, np.exp(-0.5 * ((grid - offset["mean"]) / offset["sd"]) ** 2),
                 label=f"offset {offset['mean']:.1f} ± {offset['sd']:.1f}")  # fmt: skip
    axes[5].plot(grid, np.exp(-0.5 * (grid / spread["sd"]) ** 2),
                 label=f"spread ± {spread['sd']:.1f}")  # fmt: skip
    axes[5].set(title="(c) fragment m/z error", xlabel="ppm")
    axes[5].legend(fontsize=7)
    sizes = p.sample_sizes
    figure.suptitle(
        f"Noise model: {sizes['spectra']} spectra, {sizes['matched_fragments']} of "
        f"{sizes['predicted_fragments']} predicted fragments matched, "
        f"{sizes['unexplained_peaks']} unexplained peaks"
    )
    return figure
