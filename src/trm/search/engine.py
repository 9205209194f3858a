"""A database search of one run's spectra with Sage, through the ``sagepy`` package.

The spectra come from the project's one spectrum reader (:mod:`trm.io.spectra`), so the
PSMs carry the same spectrum ids as every other result of the run. The proteins come from
the one FASTA reader (:mod:`trm.io.fasta`); Sage adds a reversed decoy of each. The search
uses the instrument's settings (fragment and precursor tolerances, isotope errors, the
charges tried where a spectrum has none) and the modifications of the model vocabulary,
named by their Unimod accessions (Sage's masses for them are checked against
:mod:`trm.chem`'s); trypsin cuts after K or R, not before P.

Each spectrum keeps its best PSM (target or decoy); target-decoy competition over those
gives Sage's own q-values, from the score :attr:`SearchSettings.score` names. Sage runs
on ``threads`` threads: its thread pool reads ``RAYON_NUM_THREADS`` once, when sagepy is
first imported (:func:`limit_threads`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from trm import chem
from trm.errors import InputError, TrmError
from trm.fragments import MAX_FRAGMENT_CHARGE
from trm.instrument import ELECTRON_ACTIVATIONS, InstrumentSettings
from trm.io.fasta import Protein
from trm.search.settings import DECOY_PREFIXES, DECOY_TAG, MODIFICATION_SITES, SearchSettings

log = logging.getLogger(__name__)

#: Largest difference (Da) between a mass Sage reports for a site (single precision) and
#: the vocabulary's, when a site's mass is split into its modifications.
SITE_MASS_TOLERANCE_DA = 0.002

#: Spectra scored per call into Sage (bounds the Python objects alive at once).
SCORING_CHUNK = 5000

#: Columns of the PSM table :func:`search_spectra` returns: the best PSM of each spectrum.
PSM_SCHEMA: dict[str, pl.DataType] = {
    "spectrum_id": pl.String(),
    "run": pl.String(),
    "native_id": pl.String(),
    "peptide": pl.String(),  # ProForma in the model vocabulary, without charge
    "charge": pl.Int16(),
    "is_decoy": pl.Boolean(),
    "score": pl.Float64(),  # the score of the target-decoy competition
    "q_value": pl.Float64(),  # spectrum-level, Sage's
    "peptide_q_value": pl.Float64(),
    "hyperscore": pl.Float64(),
    "discriminant": pl.Float64(),
    "delta_next": pl.Float64(),
    "matched_peaks": pl.Int32(),
    "missed_cleavages": pl.Int16(),
    "isotope_error": pl.Int16(),
    "mass_error_ppm": pl.Float64(),  # observed - theoretical, over observed (trm.chem)
    "precursor_mz": pl.Float64(),
    "calc_mz": pl.Float64(),
    "rt": pl.Float64(),
    "proteins": pl.List(pl.String()),
}

SKIPPED_SCHEMA: dict[str, pl.DataType] = {
    "spectrum_id": pl.String(),
    "run": pl.String(),
    "reason": pl.String(),
}


def require_sagepy() -> None:
    """Fail with what to install when sagepy is missing.

    Raises
    ------
    TrmError
        Naming the package, its pinned version and what its wheels need.
    """
    try:
        import sagepy  # noqa: F401
    except ImportError as error:
        raise TrmError(
            "the database search needs sagepy 0.4.6 (pip install sagepy==0.4.6; its Linux "
            f"wheels need glibc 2.34 or newer): {error}"
        ) from error


def limit_threads(threads: int) -> None:
    """Make Sage's thread pool use ``threads`` threads (call before importing sagepy)."""
    os.environ["RAYON_NUM_THREADS"] = str(max(1, int(threads)))


@dataclass
class SearchOutcome:
    """What a search found and what it cost.

    Attributes
    ----------
    psms : polars.DataFrame
        :data:`PSM_SCHEMA`, one row per spectrum that got a PSM, in input order.
    skipped : polars.DataFrame
        ``spectrum_id``, ``run``, ``reason`` of every spectrum not searched.
    n_spectra : int
        MS2 spectra read.
    n_proteins : int
        Target proteins searched.
    n_peptides : int
        Peptidoforms indexed, targets and decoys.
    discriminant_fitted : bool or None
        Whether Sage's linear discriminant could be fitted (None when the hyperscore ranks).
    seconds : dict
        ``database`` (digest and index), ``scoring``, ``fdr``.
    """

    psms: pl.DataFrame
    skipped: pl.DataFrame
    n_spectra: int
    n_proteins: int
    n_peptides: int
    discriminant_fitted: bool | None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _SiteModification:
    name: str
    mass: float
    nterm: bool


def _site_table(settings: SearchSettings) -> dict[str, list[_SiteModification]]:
    """Residue -> the modifications the search may put on it (``^``/``[`` sites folded
    onto their residue, flagged N-terminal), fixed ones included."""
    table: dict[str, list[_SiteModification]] = {}
    for name in (*settings.fixed_modifications, *settings.variable_modifications):
        mass = chem.modification(name).mass
        for site in MODIFICATION_SITES[name]:
            nterm = site[0] in "^["
            residue = site[1:] if nterm else site
            table.setdefault(residue, []).append(_SiteModification(name, mass, nterm))
    return table


def _unimod(name: str) -> str:
    """sagepy's name of a vocabulary modification (``[UNIMOD:35]``), checked against the
    mass :mod:`trm.chem` gives it."""
    from sagepy.core.unimod import unimod_to_mass

    accession = chem.unimod_accession(name)
    key = f"[{accession}]"
    sage_mass = unimod_to_mass().get(key)
    if sage_mass is None or abs(sage_mass - chem.modification(name).mass) > 1e-4:
        raise InputError(
            f"search: Sage's Unimod table gives {name} ({key}) the mass {sage_mass}, not "
            f"{chem.modification(name).mass:.6f}"
        )
    return key


def sage_modifications(
    settings: SearchSettings,
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The fixed and variable modifications in sagepy's terms: site -> Unimod accession.

    A fixed modification is a residue letter's; the N-terminal sites of
    :data:`~trm.search.settings.MODIFICATION_SITES` are listed per residue.
    """
    fixed: dict[str, str] = {}
    for name in settings.fixed_modifications:
        for site in MODIFICATION_SITES[name]:
            if site in fixed:
                raise InputError(f"search: two fixed modifications on site {site}")
            fixed[site] = _unimod(name)
    variable: dict[str, list[str]] = {}
    for name in settings.variable_modifications:
        for site in MODIFICATION_SITES[name]:
            variable.setdefault(site, []).append(_unimod(name))
    return fixed, variable


def peptide_tokens(
    sequence: str, site_masses: Sequence[float], sites: dict[str, list[_SiteModification]]
) -> list[str] | None:
    """Vocabulary tokens of a peptide as Sage indexes it (residues and the mass added to
    each); None when a site's mass is no combination of the searched modifications.

    The first residue's mass may join an N-terminal modification and the residue's own.
    """
    tokens: list[str] = []
    for position, (residue, delta) in enumerate(zip(sequence, site_masses, strict=True)):
        candidates = sites.get(residue, [])
        residue_options: list[_SiteModification | None] = [None] + [
            m for m in candidates if not m.nterm
        ]
        nterm_options: list[_SiteModification | None] = [None]
        if position == 0:
            nterm_options += [m for m in candidates if m.nterm]
        found = None
        for nterm in nterm_options:
            for own in residue_options:
                total = (nterm.mass if nterm else 0.0) + (own.mass if own else 0.0)
                if abs(total - delta) <= SITE_MASS_TOLERANCE_DA:
                    found = (nterm, own)
                    break
            if found:
                break
        if found is None:
            return None
        nterm, own = found
        if nterm is not None:
            tokens.append(f"[{nterm.name}]-")
        tokens.append(residue if own is None else f"{residue}[{own.name}]")
    return tokens


def _target_proteins(proteins: Sequence[Protein]) -> list[Protein]:
    targets = [p for p in proteins if not p.accession.startswith(DECOY_PREFIXES)]
    if len(targets) < len(proteins):
        log.warning(
            "%d FASTA entries are decoys already (accessions starting with %s): left out, "
            "the search makes its own reversed decoys",
            len(proteins) - len(targets),
            "/".join(DECOY_PREFIXES),
        )
    if not targets:
        raise InputError("the FASTA holds decoy entries only")
    return targets


def build_database(
    proteins: Sequence[Protein], settings: SearchSettings, source: str = "FASTA"
) -> tuple[object, int]:
    """Digest and index target proteins and their reversed decoys.

    Returns
    -------
    database : sagepy.core.IndexedDatabase
    n_proteins : int
        Target proteins indexed.

    Raises
    ------
    InputError
        When no peptide of the proteins falls in the searched length and mass ranges.
    """
    require_sagepy()
    from sagepy.core import EnzymeBuilder, SageSearchConfiguration

    targets = _target_proteins(proteins)
    text = "".join(f">{p.accession}\n{p.sequence}\n" for p in targets)
    enzyme = EnzymeBuilder(
        missed_cleavages=settings.missed_cleavages,
        min_len=settings.min_peptide_length,
        max_len=settings.max_peptide_length,
        cleave_at="KR",
        restrict="P",
        c_terminal=True,
    )
    fixed, variable = sage_modifications(settings)
    configuration = SageSearchConfiguration(
        fasta=text,
        enzyme_builder=enzyme,
        static_mods=fixed or None,
        variable_mods=variable or None,
        max_variable_mods=settings.max_variable_modifications,
        peptide_min_mass=settings.min_peptide_mass,
        peptide_max_mass=settings.max_peptide_mass,
        decoy_tag=DECOY_TAG,
        generate_decoys=True,
        bucket_size=8192,
    )
    database = configuration.generate_indexed_database()
    if database.num_peptides == 0:
        raise InputError(
            f"{source}: no tryptic peptide of {settings.min_peptide_length}-"
            f"{settings.max_peptide_length} residues and {settings.min_peptide_mass:g}-"
            f"{settings.max_peptide_mass:g} Da in its {len(targets)} proteins"
        )
    return database, len(targets)


def _skip_reasons(row: dict, instrument: InstrumentSettings) -> str | None:
    if row["precursor_mz"] is None or not row["precursor_mz"] > 0:
        return "no precursor m/z"
    if row["charge"] is None and instrument.missing_charge == "skip":
        return "missing precursor charge"
    activation = row.get("activation")
    if activation and any(name in activation for name in ELECTRON_ACTIVATIONS):
        return f"fragmentation {activation}: the search scores b/y ions"
    if row.get("profile"):
        return "profile (not centroided) spectrum"
    if row["mz"] is None or len(row["mz"]) == 0:
        return "no peaks"
    return None


def _sage_spectra(
    table: pl.DataFrame, instrument: InstrumentSettings, settings: SearchSettings
) -> tuple[list[object], list[tuple[str, str, str]]]:
    """Sage's processed spectra of a spectrum table, and the spectra left out."""
    from sagepy.core import Precursor, RawSpectrum, Representation, SpectrumProcessor

    processor = SpectrumProcessor(take_top_n=settings.top_peaks, deisotope=False)
    centroid = Representation("centroid")
    processed, skipped = [], []
    for row in table.iter_rows(named=True):
        reason = _skip_reasons(row, instrument)
        if reason is not None:
            skipped.append((row["spectrum_id"], row["run"], reason))
            continue
        intensity = np.asarray(row["intensity"], dtype=np.float32)
        raw = RawSpectrum(
            file_id=0,
            spec_id=row["spectrum_id"],
            total_ion_current=float(intensity.sum()),
            precursors=[Precursor(mz=float(row["precursor_mz"]), charge=row["charge"])],
            mz=np.asarray(row["mz"], dtype=np.float32),
            intensity=intensity,
            representation=centroid,
            scan_start_time=float(row["rt"] or 0.0) / 60.0,
            ion_injection_time=0.0,
        )
        processed.append(processor.process(raw))
    return processed, skipped


def _scorer(instrument: InstrumentSettings, settings: SearchSettings) -> object:
    from sagepy.core import Scorer, Tolerance

    fixed, variable = sage_modifications(settings)
    fragment = instrument.fragment_tolerance_da
    precursor = instrument.precursor_tolerance_ppm
    return Scorer(
        precursor_tolerance=Tolerance(ppm=(-precursor, precursor)),
        fragment_tolerance=Tolerance(da=(-fragment, fragment)),
        min_matched_peaks=settings.min_matched_peaks,
        min_isotope_err=instrument.isotope_errors[0],
        max_isotope_err=instrument.isotope_errors[1],
        min_precursor_charge=min(instrument.charges),
        max_precursor_charge=max(instrument.charges),
        report_psms=1,
        annotate_matches=False,
        max_fragment_charge=MAX_FRAGMENT_CHARGE,
        static_mods=fixed,
        variable_mods=variable,
    )


def _psm_rows(
    psms: list,
    database: object,
    table: pl.DataFrame,
    instrument: InstrumentSettings,
    settings: SearchSettings,
) -> list[dict]:
    """One :data:`PSM_SCHEMA` row per Sage PSM."""
    sites = _site_table(settings)
    spectra = {
        row["spectrum_id"]: row
        for row in table.select("spectrum_id", "run", "native_id", "precursor_mz", "rt").iter_rows(
            named=True
        )
    }
    tokens_of: dict[int, list[str] | None] = {}
    rows, n_unmapped = [], 0
    for psm in psms:
        index = psm.peptide_idx
        if index not in tokens_of:
            peptide = database[index]
            tokens_of[index] = peptide_tokens(peptide.sequence, peptide.modifications, sites)
        tokens = tokens_of[index]
        if tokens is None:
            n_unmapped += 1
            continue
        feature = psm.sage_feature
        spectrum = spectra[psm.spec_idx]
        charge = int(feature.charge)
        mass = chem.peptide_mass(tokens)
        observed = float(chem.mz_to_mass(spectrum["precursor_mz"], charge))
        error, isotope = chem.precursor_mass_error_ppm(
            np.array([mass]), np.array(observed), instrument.isotope_errors
        )
        rows.append(
            {
                "spectrum_id": spectrum["spectrum_id"],
                "run": spectrum["run"],
                "native_id": spectrum["native_id"],
                "peptide": chem.tokens_to_proforma(tokens),
                "charge": charge,
                "is_decoy": bool(psm.decoy),
                "score": float(
                    feature.discriminant_score
                    if settings.score == "discriminant"
                    else feature.hyperscore
                ),
                "q_value": float(feature.spectrum_q),
                "peptide_q_value": float(feature.peptide_q),
                "hyperscore": float(feature.hyperscore),
                "discriminant": float(feature.discriminant_score),
                "delta_next": float(feature.delta_next),
                "matched_peaks": int(feature.matched_peaks),
                "missed_cleavages": int(feature.missed_cleavages),
                "isotope_error": int(isotope[0]),
                "mass_error_ppm": float(error[0]),
                "precursor_mz": spectrum["precursor_mz"],
                "calc_mz": float(chem.mass_to_mz(mass, charge)),
                "rt": spectrum["rt"],
                # Sage lists a decoy under its target's accession: tagged here.
                "proteins": [
                    p if not psm.decoy or p.startswith(DECOY_TAG) else DECOY_TAG + p
                    for p in psm.proteins
                ],
            }
        )
    if n_unmapped:
        log.warning(
            "%d PSMs left out: their peptide's modification masses match no searched modification",
            n_unmapped,
        )
    return rows


def search_spectra(
    table: pl.DataFrame,
    proteins: Sequence[Protein],
    instrument: InstrumentSettings,
    settings: SearchSettings,
    threads: int = 1,
    source: str = "FASTA",
) -> SearchOutcome:
    """Search a run's spectra against proteins and their reversed decoys.

    Parameters
    ----------
    table : polars.DataFrame
        Spectra in the spectrum table's schema (:mod:`trm.io.table`), with ``native_id``.
    proteins : sequence of Protein
        Target proteins (:func:`trm.io.fasta.read_fasta`).
    instrument : InstrumentSettings
    settings : SearchSettings
    threads : int
        Sage's scoring threads (its index build uses the pool :func:`limit_threads` sets).
    source : str
        Name of the FASTA, for messages.

    Returns
    -------
    SearchOutcome
    """
    from sagepy.core.fdr import lda_rescore_psms, sage_fdr_psm

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    database, n_proteins = build_database(proteins, settings, source)
    seconds["database"] = time.perf_counter() - started
    log.info(
        "%s: %d target proteins, %d peptidoforms indexed with their decoys (%.1f s)",
        source, n_proteins, database.num_peptides, seconds["database"],
    )  # fmt: skip
    if "native_id" not in table.columns:
        table = table.with_columns(pl.col("spectrum_id").alias("native_id"))
    started = time.perf_counter()
    scorer = _scorer(instrument, settings)
    psms: list = []
    skipped: list[tuple[str, str, str]] = []
    for start in range(0, table.height, SCORING_CHUNK):
        chunk = table.slice(start, SCORING_CHUNK)
        spectra, left_out = _sage_spectra(chunk, instrument, settings)
        skipped += left_out
        if spectra:
            found = scorer.score_collection_psm(database, spectra, num_threads=threads)
            psms += [psm for matches in found.values() for psm in matches]
    seconds["scoring"] = time.perf_counter() - started
    started = time.perf_counter()
    fitted = None
    if psms:
        if settings.score == "discriminant":
            from sagepy.core import Tolerance

            tolerance = instrument.precursor_tolerance_ppm
            fitted = bool(lda_rescore_psms(psms, Tolerance(ppm=(-tolerance, tolerance))))
            if not fitted:
                log.warning(
                    "Sage's linear discriminant could not be fitted on %d PSMs: its fixed "
                    "fallback combination of features ranks them",
                    len(psms),
                )
        sage_fdr_psm(psms, database, use_hyper_score=settings.score == "hyperscore")
    rows = _psm_rows(psms, database, table, instrument, settings)
    seconds["fdr"] = time.perf_counter() - started
    order = {spectrum_id: i for i, spectrum_id in enumerate(table.get_column("spectrum_id"))}
    rows.sort(key=lambda row: order[row["spectrum_id"]])
    return SearchOutcome(
        psms=pl.DataFrame(rows, schema=PSM_SCHEMA),
        skipped=pl.DataFrame(skipped, schema=SKIPPED_SCHEMA, orient="row"),
        n_spectra=table.height,
        n_proteins=n_proteins,
        n_peptides=int(database.num_peptides),
        discriminant_fitted=fitted,
        seconds=seconds,
    )
