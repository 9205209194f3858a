"""Spectra with known peptides, for training and evaluation.

Three sources, one result: the spectrum table of :mod:`trm.io.table` with the
``peptide`` column filled with a ProForma string in the model vocabulary (as
:func:`trm.chem.parse_peptidoform` tokenises it), plus a table of the spectra left out
and why. Nothing is dropped silently: a peptide with a modification outside the
vocabulary, an ambiguous label or an identification whose spectrum is missing is listed
with its reason and counted in the log.

- annotated MGF: ``SEQ=`` per spectrum (ProForma, or mass-delta notation ``M+15.995``);
- NIST MSP libraries: ``Name: PEPTIDE/charge`` and ``Mods=``; the fragment annotations
  that follow each peak are dropped;
- a spectrum file plus an identification file read by psm_utils (mzIdentML, pepXML,
  idXML, MSFragger psm.tsv, Sage, MaxQuant msms.txt, ...), filtered by q-value.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath

import numpy as np
import polars as pl

from trm.chem import UnsupportedPeptideError, parse_peptidoform, tokens_to_proforma
from trm.errors import InputError
from trm.io.errors import SpectrumFileError
from trm.io.mgf import iter_mgf
from trm.io.spectra import (
    SpectrumRecord,
    check_peaks,
    iter_spectrum_batches,
    record_from_mgf,
    records_to_frame,
    scan_from_native_id,
)

log = logging.getLogger(__name__)

SKIPPED_SCHEMA: dict[str, pl.DataType] = {
    "spectrum_id": pl.String(),
    "run": pl.String(),
    "reason": pl.String(),
}

# "M+15.995" / "+42.011PEPTIDE" (Casanovo's and MassIVE-KB's notation) -> ProForma.
_RESIDUE_DELTA = re.compile(r"([A-Z])([+-]\d+(?:\.\d+)?)")
_NTERM_DELTA = re.compile(r"^([+-]\d+(?:\.\d+)?)(?=[A-Z\[])")

#: NIST MSP modification names that are not Unimod names, mapped to Unimod's.
_NIST_MODIFICATIONS: dict[str, str] = {
    "CAM": "Carbamidomethyl",
    "Deamidation": "Deamidated",
    "Pyro-glu": "Gln->pyro-Glu",
    "Pyro_glu": "Gln->pyro-Glu",
    "Gln->pyro-Glu": "Gln->pyro-Glu",
    "Pyro-carbamidomethyl": "Pyro-carbamidomethyl",
}
#: PSI-MOD accessions of the PRIDE cluster MGF ``USER03=`` field -> Unimod names.
_PSI_MOD_TO_UNIMOD: dict[str, str] = {
    "MOD:00425": "Oxidation",  # monohydroxylated residue
    "MOD:00719": "Oxidation",  # L-methionine sulfoxide
    "MOD:00397": "Carbamidomethyl",  # iodoacetamide derivatized residue
    "MOD:01060": "Carbamidomethyl",  # S-carboxamidomethyl-L-cysteine
    "MOD:00400": "Deamidated",  # deamidated residue
    "MOD:00394": "Acetyl",  # acetylated residue
    "MOD:00040": "Gln->pyro-Glu",  # 2-pyrrolidone-5-carboxylic acid (from Gln)
}
_TITLE_SEQUENCE = re.compile(r"(?:^|[,;\s])sequence=([A-Za-z,]+)")

#: NIST modifications that sit on the peptide N-terminus rather than on the residue.
_NTERM_NIST_MODIFICATIONS = {"Acetyl", "Carbamyl"}


def normalise_peptide(text: str) -> tuple[str, int | None]:
    """A peptide label as a ProForma string in the model vocabulary.

    Parameters
    ----------
    text : str
        ProForma (``PEPTC[Carbamidomethyl]K/2``, ``M[UNIMOD:35]``, ``M[+15.995]``) or the
        mass-delta notation of Casanovo's training data (``M+15.995``, ``+42.011PEP``).

    Returns
    -------
    proforma : str
        Without charge, e.g. ``[Acetyl]-PEPM[Oxidation]K``.
    charge : int or None
        The charge when the label carries one (``/2``).

    Raises
    ------
    UnsupportedPeptideError
        For a residue or modification outside the vocabulary, or an unreadable label.
    """
    text = text.strip()
    if not text:
        raise UnsupportedPeptideError("empty peptide label")
    text = _NTERM_DELTA.sub(lambda m: f"[{m.group(1)}]-", text)
    text = _RESIDUE_DELTA.sub(lambda m: f"{m.group(1)}[{m.group(2)}]", text)
    tokens, charge = parse_peptidoform(text)
    return tokens_to_proforma(tokens), charge


def _skipped_frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SKIPPED_SCHEMA, orient="row")


def _log_skipped(path: Path, skipped: list[tuple[str, str, str]], n_kept: int) -> None:
    if not skipped:
        log.info("%s: %d labelled spectra", path, n_kept)
        return
    reasons = Counter(reason.split(":")[0] for _, _, reason in skipped)
    log.warning(
        "%s: %d labelled spectra kept, %d skipped (%s)",
        path,
        n_kept,
        len(skipped),
        "; ".join(f"{count} {reason}" for reason, count in reasons.most_common()),
    )


def _label(record: SpectrumRecord, label: str | None, run: str, skipped: list) -> bool:
    """Set ``record.peptide`` from a label; on failure list the spectrum and return False."""
    if label is None or not label.strip():
        skipped.append((record.spectrum_id, run, "no peptide label"))
        return False
    if "," in label:
        skipped.append((record.spectrum_id, run, f"ambiguous label: {label}"))
        return False
    try:
        peptide, charge = normalise_peptide(label)
    except UnsupportedPeptideError as error:
        skipped.append((record.spectrum_id, run, f"unsupported peptide: {error}"))
        return False
    record.peptide = peptide
    if record.charge is None and charge is not None:
        record.charge = charge
    return True


def user03_proforma(sequence: str, user03: str) -> str:
    """Apply PRIDE-cluster ``USER03=13-MOD:00425,...`` modifications to a sequence.

    Positions are 1-based; 0 is the N-terminus.
    """
    residues = list(sequence)
    nterm = ""
    for item in filter(None, (part.strip() for part in re.split(r"[,;]", user03))):
        position_text, _, accession = item.partition("-")
        name = _PSI_MOD_TO_UNIMOD.get(accession)
        if name is None or not position_text.isdigit():
            raise UnsupportedPeptideError(f"modification {item!r} is not in the vocabulary")
        position = int(position_text)
        if position == 0:
            nterm = f"[{name}]-"
        elif position <= len(residues):
            residues[position - 1] = f"{residues[position - 1]}[{name}]"
        else:
            raise UnsupportedPeptideError(f"modification {item!r} lies beyond {sequence}")
    return nterm + "".join(residues)


def _mgf_label(params: dict[str, str]) -> str | None:
    """The peptide of an annotated MGF block: ``SEQ=`` (or ``sequence=`` in TITLE), with
    the ``USER03=`` modifications of PRIDE cluster files applied."""
    label = params.get("SEQ")
    if not label:
        match = _TITLE_SEQUENCE.search(params.get("TITLE", ""))
        label = match.group(1) if match else None
    user03 = params.get("USER03", "").strip()
    if label and user03 and "," not in label:
        return user03_proforma(label, user03)
    return label


def read_annotated_mgf(
    path: str | Path, run: str | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spectra of an MGF file whose blocks carry ``SEQ=`` labels.

    ``sequence=`` inside TITLE stands in for a missing ``SEQ=``, and the PSI-MOD
    positions of ``USER03=`` (PRIDE cluster files) are applied. A comma list of
    sequences is ambiguous and skipped.

    Parameters
    ----------
    path : str or Path
    run : str, optional
        Value of the ``run`` column; the file name without extension by default.

    Returns
    -------
    table : polars.DataFrame
        Labelled spectra in :data:`~trm.io.table.SPECTRUM_SCHEMA`.
    skipped : polars.DataFrame
        ``spectrum_id``, ``run``, ``reason`` of every spectrum left out.
    """
    path = Path(path)
    run_name = run if run is not None else path.stem
    records: list[SpectrumRecord] = []
    skipped: list[tuple[str, str, str]] = []
    for spectrum in iter_mgf(path):
        record = record_from_mgf(spectrum, path)
        check_peaks(path, record)
        try:
            label = _mgf_label(spectrum.params)
        except UnsupportedPeptideError as error:
            skipped.append((record.spectrum_id, run_name, f"unsupported peptide: {error}"))
            continue
        if _label(record, label, run_name, skipped):
            records.append(record)
    _log_skipped(path, skipped, len(records))
    return records_to_frame(records, run_name), _skipped_frame(skipped)


def _msp_modifications(text: str) -> list[tuple[int, str, str]]:
    """``2(4,C,CAM)(7,M,Oxidation)`` -> [(4, "C", "CAM"), (7, "M", "Oxidation")]."""
    text = text.strip()
    if not text or text == "0":
        return []
    return [
        (int(position), residue, name)
        for position, residue, name in re.findall(r"\((\d+),([A-Z]),([^)]+)\)", text)
    ]


def msp_proforma(sequence: str, modifications: list[tuple[int, str, str]]) -> str:
    """ProForma of a NIST MSP peptide and its ``Mods=`` list (0-based positions)."""
    residues = list(sequence)
    nterm = ""
    for position, residue, name in modifications:
        if position >= len(residues) or residues[position][0] != residue:
            raise UnsupportedPeptideError(
                f"modification {name} at {position} does not sit on {residue} in {sequence}"
            )
        unimod = _NIST_MODIFICATIONS.get(name, name)
        if position == 0 and unimod in _NTERM_NIST_MODIFICATIONS:
            nterm = f"[{unimod}]-"
        else:
            residues[position] = f"{residues[position]}[{unimod}]"
    return nterm + "".join(residues)


def _iter_msp(path: Path) -> Iterator[dict]:
    entry: dict | None = None
    peaks: list[tuple[float, float]] = []
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            line = raw_line.strip()
            if not line:
                continue
            key, sep, value = line.partition(":")
            if sep and key.lower() == "name":
                if entry is not None:
                    yield {**entry, "peaks": peaks}
                entry, peaks = {"name": value.strip(), "line": line_number}, []
                continue
            if entry is None:
                continue
            if line[0].isdigit():
                # "m/z<TAB>intensity<TAB>"annotations"": keep the two numbers only.
                fields = line.replace(",", " ").split(None, 2)
                try:
                    peaks.append((float(fields[0]), float(fields[1])))
                except (ValueError, IndexError) as error:
                    raise SpectrumFileError(
                        path, f"line {line_number}: unreadable peak {line[:60]!r}", entry["name"]
                    ) from error
                continue
            if sep:
                entry[key.strip().lower()] = value.strip()
    if entry is not None:
        yield {**entry, "peaks": peaks}


def _comment_fields(comment: str) -> dict[str, str]:
    """``Comment:`` of NIST MSP: space-separated ``key=value`` (values may be quoted)."""
    return {key: value.strip('"') for key, value in re.findall(r'(\S+?)=("[^"]*"|\S+)', comment)}


def read_msp(path: str | Path, run: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spectra of a NIST MSP spectral library, labelled by their ``Name:``.

    The peptide is ``Name: SEQUENCE/charge_...`` with the modifications of ``Mods=``
    (``Comment:`` or the name); precursor m/z from ``PrecursorMZ:`` or the comment's
    ``Parent=``; the fragment annotations on peak lines are not kept.

    Returns
    -------
    table, skipped : polars.DataFrame
        As :func:`read_annotated_mgf`; ``spectrum_id`` is the library entry's name.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        raise SpectrumFileError(path, "file is empty or missing")
    run_name = run if run is not None else path.stem
    records: list[SpectrumRecord] = []
    skipped: list[tuple[str, str, str]] = []
    n_entries = 0
    for entry in _iter_msp(path):
        n_entries += 1
        name = entry["name"]
        comment = _comment_fields(entry.get("comment", ""))
        sequence, _, rest = name.partition("/")
        charge_text = re.match(r"\d+", rest)
        charge = int(charge_text.group(0)) if charge_text else None
        precursor_text = entry.get("precursormz") or comment.get("Parent")
        peaks = np.array(entry["peaks"], dtype=np.float64).reshape(-1, 2)
        rt_text = comment.get("RetentionTime") or comment.get("RT")
        record = SpectrumRecord(
            spectrum_id=name,
            scan=int(comment["Scan"]) if comment.get("Scan", "").isdigit() else None,
            precursor_mz=float(precursor_text) if precursor_text else None,
            charge=charge,
            rt=float(rt_text.split(",")[0]) if rt_text else None,
            activation="HCD" if "HCD" in comment else None,
            mz=peaks[:, 0].copy(),
            intensity=peaks[:, 1].copy(),
        )
        check_peaks(path, record)
        mods_text = comment.get("Mods") or (rest.partition("_")[2] if "_" in rest else "0")
        try:
            label = msp_proforma(sequence, _msp_modifications(mods_text))
        except UnsupportedPeptideError as error:
            skipped.append((name, run_name, f"unsupported peptide: {error}"))
            continue
        if _label(record, label, run_name, skipped):
            records.append(record)
    if n_entries == 0:
        raise SpectrumFileError(path, "no 'Name:' entries: not an MSP library")
    _log_skipped(path, skipped, len(records))
    return records_to_frame(records, run_name), _skipped_frame(skipped)


_TPP_SPECTRUM = re.compile(r"\.(\d+)\.(\d+)\.\d+$")


def scan_of_psm_spectrum_id(spectrum_id: str) -> int | None:
    """Scan number in an identification file's spectrum reference.

    Handles native ids (``... scan=N``), bare numbers (MSFragger, MaxQuant) and TPP
    titles (``run.N.N.charge``).
    """
    scan = scan_from_native_id(spectrum_id)
    if scan is not None:
        return scan
    text = spectrum_id.strip()
    if text.isdigit():
        return int(text)
    match = _TPP_SPECTRUM.search(text)
    return int(match.group(1)) if match else None


def _run_stem(run: str | None) -> str | None:
    if not run:
        return None
    name = PureWindowsPath(run).name if "\\" in run else Path(run).name
    for suffix in (".mzML", ".mzml", ".mgf", ".raw", ".RAW", ".pep", ".mzXML"):
        name = name.removesuffix(suffix)
    return name


def read_identified_spectra(
    spectra_path: str | Path,
    identifications_path: str | Path,
    q_value_threshold: float = 0.01,
    filetype: str = "infer",
    run: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spectra labelled by a search engine's identifications.

    Parameters
    ----------
    spectra_path : str or Path
        The searched spectra (mzML, mzXML or MGF).
    identifications_path : str or Path
        Any file psm_utils reads: mzIdentML, pepXML, idXML, MSFragger psm.tsv, Sage,
        MaxQuant msms.txt, ...
    q_value_threshold : float
        PSMs with a q-value above it are left out. When the file holds no q-values but
        decoys, q-values are computed from the scores (target-decoy); with neither (a
        FragPipe psm.tsv, filtered by its pipeline) every target PSM is kept, with a
        warning.
    filetype : str
        psm_utils file type; ``infer`` guesses it from the name.
    run : str, optional
        Value of the ``run`` column; the spectra file's name without extension by
        default.

    Returns
    -------
    table, skipped : polars.DataFrame
        As :func:`read_annotated_mgf`. A PSM is matched to its spectrum by spectrum id,
        else by scan number; the best-ranked PSM of a spectrum labels it.
    """
    from psm_utils.io import read_file

    spectra_path = Path(spectra_path)
    identifications_path = Path(identifications_path)
    run_name = run if run is not None else spectra_path.stem
    try:
        psms = read_file(identifications_path, filetype=filetype)
    except Exception as error:  # noqa: BLE001 - psm_utils raises many kinds
        raise SpectrumFileError(
            identifications_path, f"cannot read identifications: {error}"
        ) from error
    skipped: list[tuple[str, str, str]] = []
    psms = _filter_psms(identifications_path, psms, q_value_threshold, run_name, skipped)

    by_id: dict[str, tuple[int, str]] = {}
    by_scan: dict[int, tuple[int, str]] = {}
    for psm in psms:
        rank = psm.rank if psm.rank is not None else 1
        label = (rank, psm.peptidoform.proforma)
        spectrum_id = str(psm.spectrum_id)
        if spectrum_id not in by_id or rank < by_id[spectrum_id][0]:
            by_id[spectrum_id] = label
        scan = scan_of_psm_spectrum_id(spectrum_id)
        if scan is not None and (scan not in by_scan or rank < by_scan[scan][0]):
            by_scan[scan] = label
    matched: set[str] = set()
    frames = []
    for batch in iter_spectrum_batches(spectra_path, run=run_name):
        records = []
        for row in batch.iter_rows(named=True):
            spectrum_id = row["spectrum_id"]
            found = by_id.get(spectrum_id)
            key = spectrum_id
            if found is None and row["scan"] is not None:
                found = by_scan.get(row["scan"])
                key = f"scan={row['scan']}"
            if found is None:
                continue
            matched.add(key)
            record = SpectrumRecord(
                spectrum_id=spectrum_id,
                scan=row["scan"],
                precursor_mz=row["precursor_mz"],
                charge=row["charge"],
                rt=row["rt"],
                activation=row["activation"],
                mz=np.asarray(row["mz"], dtype=np.float64),
                intensity=np.asarray(row["intensity"], dtype=np.float64),
            )
            if _label(record, found[1], run_name, skipped):
                records.append(record)
        if records:
            frames.append(records_to_frame(records, run_name))
    for spectrum_id in by_id:
        scan = scan_of_psm_spectrum_id(spectrum_id)
        if spectrum_id not in matched and (scan is None or f"scan={scan}" not in matched):
            skipped.append((spectrum_id, run_name, "identified spectrum not in spectra file"))
    table = pl.concat(frames) if frames else records_to_frame([], run_name)
    _log_skipped(identifications_path, skipped, table.height)
    return table, _skipped_frame(skipped)


def _filter_psms(
    path: Path, psms: object, q_value_threshold: float, run_name: str, skipped: list
) -> list:
    psm_list = list(psms)  # type: ignore[call-overload]
    runs = {_run_stem(psm.run) for psm in psm_list} - {None}
    if len(runs) > 1:
        # Several runs searched together: keep this run's PSMs only.
        psm_list = [psm for psm in psm_list if _run_stem(psm.run) == run_name]
        if not psm_list:
            raise SpectrumFileError(
                path, f"no identifications for run {run_name!r} (runs: {sorted(runs)})"
            )
    targets = [psm for psm in psm_list if not psm.is_decoy]
    if all(psm.qvalue is None for psm in psm_list):
        if len(targets) < len(psm_list):
            psms.calculate_qvalues(reverse=True)  # type: ignore[attr-defined]
        else:
            log.warning(
                "%s: no q-values and no decoys; keeping all %d PSMs as filtered upstream",
                path,
                len(psm_list),
            )
            return targets
    kept = []
    for psm in targets:
        if psm.qvalue is not None and psm.qvalue > q_value_threshold:
            skipped.append(
                (str(psm.spectrum_id), run_name, f"q-value {psm.qvalue:.3g} above cutoff")
            )
            continue
        kept.append(psm)
    return kept


def read_labels(path: str | Path, run: str) -> pl.DataFrame:
    """Known peptides of a run's spectra from a labelled spectrum table (parquet).

    Parameters
    ----------
    path : path
        Parquet with ``spectrum_id`` and ``peptide`` (ProForma; null = unknown), and
        optionally ``run`` (e.g. from ``trm labelled-spectra``).
    run : str
        The run sequenced. Labels of other runs are left out; a table of a single run
        under another name is used as it is (with a warning).

    Returns
    -------
    polars.DataFrame
        ``spectrum_id``, ``label`` (one row per spectrum id).
    """
    path = Path(path)
    try:
        names = pl.read_parquet_schema(path)
    except Exception as error:  # noqa: BLE001 - polars raises several kinds
        raise InputError(f"{path}: not a readable parquet file ({error})") from error
    missing = [c for c in ("spectrum_id", "peptide") if c not in names]
    if missing:
        raise InputError(f"{path}: labelled spectrum table lacks columns {missing}")
    columns = ["spectrum_id", "peptide", *(["run"] if "run" in names else [])]
    labels = pl.read_parquet(path, columns=columns)
    if "run" in labels.columns:
        runs = labels.get_column("run").unique().drop_nulls().to_list()
        if run in runs:
            labels = labels.filter(pl.col("run") == run)
        elif len(runs) == 1:
            log.warning(
                "%s: labels are of run %r, not %r; matching by spectrum id", path, runs[0], run
            )
        else:
            log.warning("%s: no labels of run %r (runs %s)", path, run, sorted(runs)[:5])
            labels = labels.clear()
    return (
        labels.select(pl.col("spectrum_id").cast(pl.String()), pl.col("peptide").alias("label"))
        .drop_nulls("label")
        .unique("spectrum_id", keep="first", maintain_order=True)
    )


#: Splits of ``trm finetune``'s split table whose spectra the fine-tuned model has seen.
FINETUNE_USED_SPLITS = ("train", "validation")


def spectra_used_for_finetuning(path: str | Path, run: str) -> set[str]:
    """Ids of a run's spectra that fine-tuning learned from or selected on.

    Parameters
    ----------
    path : path
        ``trm finetune``'s split table (TSV: ``run``, ``spectrum_id``, ``peptide``,
        ``split``).
    run : str

    Returns
    -------
    set of str
        Spectra of ``run`` in the train or validation split: evaluation and comparison
        leave them out.
    """
    path = Path(path)
    try:
        table = pl.read_csv(path, separator="\t", infer_schema_length=0)
    except Exception as error:  # noqa: BLE001 - polars raises several kinds
        raise InputError(f"{path}: not a readable split table ({error})") from error
    missing = [c for c in ("run", "spectrum_id", "split") if c not in table.columns]
    if missing:
        raise InputError(f"{path}: split table lacks columns {missing}")
    used = table.filter((pl.col("run") == run) & pl.col("split").is_in(FINETUNE_USED_SPLITS))
    return set(used.get_column("spectrum_id").to_list())
