"""The recursive model against Casanovo on the same spectra.

One row per input spectrum (:func:`comparison_table`): both tools' peptides and scores,
whether they agree and, where the spectrum has a label, whether each is right. Matching
follows the field's mass-based convention of :mod:`trm.metrics` (cumulative mass within
0.5 Da, residue within 0.1 Da, so I = L): two peptides agree, or a prediction is correct,
when every residue matches and both have the same number of residues. A spectrum one tool
did not sequence (Casanovo skips spectra without a charge, for one) keeps its row, with
that tool's status and reason.

:func:`summarize` gives the agreement rate and, with labels, each tool's amino-acid
precision, peptide recall and the area under its precision-coverage curve; plus the
spectra/s each tool was measured at in the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from trm.chem import (
    C13_SPACING,
    KNOWN_MODIFICATIONS,
    UnsupportedPeptideError,
    parse_peptidoform,
)
from trm.metrics import match_peptides, precision_coverage, sequencing_metrics

#: The tools compared, as column prefixes.
TOOLS: tuple[str, str] = ("trm", "casanovo")

#: Columns each tool's per-spectrum table must have (its peptide without charge).
TOOL_COLUMNS: dict[str, pl.DataType] = {
    "run": pl.String(),
    "spectrum_id": pl.String(),
    "status": pl.String(),  # sequenced | no_psm | skipped | unsequenced | missing
    "reason": pl.String(),
    "peptide": pl.String(),
    "score": pl.Float64(),
}

#: Columns of the comparison table (comparison.tsv).
COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.String(),
    "spectrum_id": pl.String(),
    "label_peptide": pl.String(),
    "trm_peptide": pl.String(),
    "trm_score": pl.Float64(),
    "trm_status": pl.String(),
    "trm_reason": pl.String(),
    "casanovo_peptide": pl.String(),
    "casanovo_score": pl.Float64(),
    "casanovo_status": pl.String(),
    "casanovo_reason": pl.String(),
    "agree": pl.Boolean(),  # null unless both sequenced it
    "trm_correct": pl.Boolean(),  # null without label; False when not sequenced
    "casanovo_correct": pl.Boolean(),
}

_KEY = ["run", "spectrum_id"]


#: trm token names that join two Unimod names ("Carbamyl+Ammonia-loss"), which are not
#: ProForma: written back as their mass before parsing.
_JOINED_NAMES = {f"[{m.name}]": f"[{m.mass:+.6f}]" for m in KNOWN_MODIFICATIONS if "+" in m.name}


def _tokens(peptide: str | None) -> list[str] | None:
    """Vocabulary tokens of a ProForma peptide (charge ignored); None when not parseable."""
    if peptide is None:
        return None
    for name, mass in _JOINED_NAMES.items():
        peptide = peptide.replace(name, mass)
    try:
        tokens, _ = parse_peptidoform(peptide)
    except UnsupportedPeptideError:
        return None
    return tokens


def _same_peptide(first: list[str] | None, second: list[str] | None) -> bool | None:
    if first is None or second is None:
        return None
    _, peptide_match = match_peptides(first, second)
    return bool(peptide_match)


def trm_results_table(denovo: pl.DataFrame, unsequenced: pl.DataFrame | None) -> pl.DataFrame:
    """The recursive model's per-spectrum table from ``denovo.tsv`` and ``unsequenced.tsv``.

    Parameters
    ----------
    denovo : polars.DataFrame
        psm_utils TSV columns ``spectrum_id``, ``run``, ``peptidoform`` (with
        ``/charge``) and ``score``.
    unsequenced : polars.DataFrame, optional
        ``spectrum_id``, ``run``, ``reason``.

    Returns
    -------
    polars.DataFrame
        :data:`TOOL_COLUMNS`.
    """
    sequenced = denovo.select(
        pl.col("run").cast(pl.String()),
        pl.col("spectrum_id").cast(pl.String()),
        pl.lit("sequenced").alias("status"),
        pl.lit(None, dtype=pl.String()).alias("reason"),
        pl.col("peptidoform").cast(pl.String()).str.replace(r"/-?\d+$", "").alias("peptide"),
        pl.col("score").cast(pl.Float64()),
    )
    parts = [sequenced]
    if unsequenced is not None and unsequenced.height:
        parts.append(
            unsequenced.select(
                pl.col("run").cast(pl.String()),
                pl.col("spectrum_id").cast(pl.String()),
                pl.lit("unsequenced").alias("status"),
                pl.col("reason").cast(pl.String()),
                pl.lit(None, dtype=pl.String()).alias("peptide"),
                pl.lit(None, dtype=pl.Float64()).alias("score"),
            )
        )
    # With several PSMs for one spectrum (top-k output), the best one is compared.
    return (
        pl.concat(parts, how="vertical")
        .sort(pl.col("score").fill_null(float("-inf")), descending=True)
        .unique(_KEY, keep="first", maintain_order=True)
    )


#: Status of a Casanovo answer whose peptide does not fit the spectrum's precursor.
PRECURSOR_MISMATCH = "precursor_mismatch"

#: A tool whose most frequent peptide is more than this share of its answers (and at
#: least :data:`COLLAPSE_MIN_REPEATS` of them) is flagged as collapsed.
COLLAPSE_SHARE = 0.05
COLLAPSE_MIN_REPEATS = 3


def mark_precursor_mismatches(
    table: pl.DataFrame, tolerance_ppm: float, isotope_errors: Sequence[int] = (0, 1)
) -> pl.DataFrame:
    """Casanovo's answers that do not fit their precursor, set apart.

    Casanovo reports a peptide for every spectrum, fitting or not (its own ``precursor_mz``
    filter would drop the others); the recursive model reports only peptides that fit.
    So that both tools' coverage means the same, a sequenced row whose peptide's m/z
    (``calc_mz``) is farther than ``tolerance_ppm`` from the precursor m/z, at every
    allowed isotope error, gets status :data:`PRECURSOR_MISMATCH`: its peptide moves to
    the reason and no longer counts as an answer.

    Parameters
    ----------
    table : polars.DataFrame
        Casanovo's per-spectrum table with ``precursor_mz``, ``calc_mz`` and ``charge``
        (rows lacking them are left as they are).
    tolerance_ppm : float
    isotope_errors : sequence of int
        Isotope peaks the precursor may have been picked at (0: monoisotopic).
    """
    needed = {"precursor_mz", "calc_mz", "charge", "status", "peptide"}
    if not needed <= set(table.columns):
        return table
    observed = pl.col("precursor_mz").cast(pl.Float64())
    calculated = pl.col("calc_mz").cast(pl.Float64())
    charge = pl.col("charge").cast(pl.Float64())
    errors = [
        ((observed - isotope * C13_SPACING / charge - calculated) / calculated * 1e6).abs()
        for isotope in isotope_errors
    ]
    error = pl.min_horizontal(errors)
    mismatch = (pl.col("status") == "sequenced") & (error > tolerance_ppm).fill_null(False)
    return table.with_columns(
        pl.when(mismatch)
        .then(pl.lit(PRECURSOR_MISMATCH))
        .otherwise(pl.col("status"))
        .alias("status"),
        pl.when(mismatch)
        .then(
            pl.format(
                "peptide {} does not fit the precursor ({} ppm)",
                pl.col("peptide"),
                error.round(0).cast(pl.Int64),
            )
        )
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(mismatch).then(None).otherwise(pl.col("peptide")).alias("peptide"),
    )


def collapse(answers: Sequence[str], n_mismatched: int = 0) -> tuple[str | None, float | None]:
    """Whether a tool's answers look collapsed, and the share of its most frequent peptide.

    Returns
    -------
    reason : str or None
        ``no precursor-fitting answer`` when every answer missed its precursor, or ``one
        peptide (P) is N% of its answers``; None when neither.
    share : float or None
        The most frequent peptide's share of the answers (None without answers).
    """
    if not answers:
        return ("no precursor-fitting answer" if n_mismatched else None), None
    peptides, counts = np.unique(np.asarray(answers, dtype=object), return_counts=True)
    top = int(np.argmax(counts))
    share = float(counts[top] / len(answers))
    if share > COLLAPSE_SHARE and counts[top] >= COLLAPSE_MIN_REPEATS:
        return f"one peptide ({peptides[top]}) is {share:.0%} of its answers", share
    return None, share


def comparison_table(
    trm: pl.DataFrame,
    casanovo: pl.DataFrame,
    labels: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per spectrum with both tools' results side by side.

    Parameters
    ----------
    trm, casanovo : polars.DataFrame
        Each tool's per-spectrum table (:data:`TOOL_COLUMNS`; extra columns ignored).
    labels : polars.DataFrame, optional
        ``run``, ``spectrum_id``, ``peptide`` (ProForma, null when unknown) of labelled
        spectra. The rows are the union of the labels' and both tools' spectra (labels'
        order first), so a spectrum without a label, or one a tool skipped, keeps its row.

    Returns
    -------
    polars.DataFrame
        :data:`COMPARISON_SCHEMA`. A spectrum that a tool's table lacks gets status
        ``missing`` for that tool; nothing is dropped.
    """
    tools = {"trm": trm, "casanovo": casanovo}
    keys = [t.select(pl.col(c).cast(pl.String()) for c in _KEY) for t in tools.values()]
    if labels is not None:
        known = labels.select(
            pl.col("run").cast(pl.String()),
            pl.col("spectrum_id").cast(pl.String()),
            pl.col("peptide").cast(pl.String()).alias("label_peptide"),
        ).unique(_KEY, keep="first", maintain_order=True)
        keys.insert(0, known.select(_KEY))
    rows = pl.concat(keys, how="vertical").unique(keep="first", maintain_order=True)
    if labels is not None:
        rows = rows.join(known, on=_KEY, how="left", maintain_order="left")
    else:
        rows = rows.with_columns(label_peptide=pl.lit(None, dtype=pl.String()))
    for name, table in tools.items():
        renamed = table.select(
            *[pl.col(c).cast(pl.String()) for c in _KEY],
            *[
                pl.col(c).cast(TOOL_COLUMNS[c]).alias(f"{name}_{c}")
                for c in TOOL_COLUMNS
                if c not in _KEY
            ],
        ).unique(_KEY, keep="first", maintain_order=True)
        rows = rows.join(renamed, on=_KEY, how="left").with_columns(
            pl.col(f"{name}_status").fill_null("missing"),
            pl.when(pl.col(f"{name}_status").is_null())
            .then(pl.lit(f"not in {name}'s results"))
            .otherwise(pl.col(f"{name}_reason"))
            .alias(f"{name}_reason"),
        )
    label_tokens = [_tokens(p) for p in rows["label_peptide"].to_list()]
    tool_tokens = {name: [_tokens(p) for p in rows[f"{name}_peptide"].to_list()] for name in tools}
    agree = [
        _same_peptide(a, b)
        for a, b in zip(tool_tokens["trm"], tool_tokens["casanovo"], strict=True)
    ]
    correct = {
        name: [
            None if truth is None else bool(_same_peptide(predicted, truth))
            for predicted, truth in zip(tool_tokens[name], label_tokens, strict=True)
        ]
        for name in tools
    }
    rows = rows.with_columns(
        agree=pl.Series(agree, dtype=pl.Boolean()),
        trm_correct=pl.Series(correct["trm"], dtype=pl.Boolean()),
        casanovo_correct=pl.Series(correct["casanovo"], dtype=pl.Boolean()),
    )
    return rows.select([pl.col(c).cast(t) for c, t in COMPARISON_SCHEMA.items()])


def summarize(
    table: pl.DataFrame,
    speeds: Mapping[str, float | None] | None = None,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The summary of a comparison table and each tool's precision-coverage curve.

    Parameters
    ----------
    table : polars.DataFrame
        :func:`comparison_table` output.
    speeds : mapping, optional
        Spectra/s measured for each tool in this run (``trm``, ``casanovo``).

    Returns
    -------
    summary : dict
        ``n_spectra``; per tool ``n_sequenced`` and counts by status; ``n_both_sequenced``
        and ``agreement_rate`` (share of those where both peptides match); with labels,
        ``n_labelled`` and per tool ``aa_precision``, ``aa_recall``, ``peptide_recall``,
        ``peptide_precision`` and ``pc_auc``; ``n_common`` (labelled spectra both tools
        answered with a precursor-fitting peptide) and per tool ``common``
        (``aa_precision``, ``aa_recall``, ``peptide_recall`` on those); per tool
        ``spectra_per_second``,
        ``collapsed`` (why its answers look collapsed, or None; see :func:`collapse`) and
        ``top_peptide_share``.
    curves : dict
        Tool -> (coverage, precision) arrays (empty without labels).
    """
    speeds = speeds or {}
    both = table.filter(pl.col("agree").is_not_null())
    summary: dict[str, Any] = {
        "n_spectra": table.height,
        "n_both_sequenced": both.height,
        "agreement_rate": _ratio(both["agree"].sum(), both.height),
    }
    labelled = table.filter(pl.col("label_peptide").is_not_null())
    summary["n_labelled"] = labelled.height
    truth_tokens = [_tokens(p) or [] for p in labelled["label_peptide"].to_list()]
    # Labelled spectra both tools answered with a precursor-fitting peptide: where the
    # two are compared on the same spectra, whatever each chose not to answer.
    common = labelled.filter(
        pl.all_horizontal([pl.col(f"{tool}_peptide").is_not_null() for tool in TOOLS])
    )
    summary["n_common"] = common.height
    common_truth = [_tokens(p) or [] for p in common["label_peptide"].to_list()]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for tool in TOOLS:
        statuses = table.group_by(f"{tool}_status").len()
        tool_summary: dict[str, Any] = {
            "n_sequenced": int((table[f"{tool}_status"] == "sequenced").sum()),
            "status_counts": dict(
                zip(statuses[f"{tool}_status"].to_list(), statuses["len"].to_list(), strict=True)
            ),
            "spectra_per_second": speeds.get(tool),
        }
        answers = table.filter(pl.col(f"{tool}_status") == "sequenced")[f"{tool}_peptide"]
        reason, share = collapse(
            answers.drop_nulls().to_list(),
            int((table[f"{tool}_status"] == PRECURSOR_MISMATCH).sum()),
        )
        tool_summary["collapsed"] = reason
        tool_summary["top_peptide_share"] = share
        if labelled.height:
            metrics, curves[tool] = label_metrics(labelled, tool, truth_tokens)
            tool_summary.update(metrics)
        if common.height:
            metrics, _ = label_metrics(common, tool, common_truth)
            tool_summary["common"] = {
                key: metrics[key] for key in ("aa_precision", "aa_recall", "peptide_recall")
            }
        summary[tool] = tool_summary
    return summary, curves


def label_metrics(
    labelled: pl.DataFrame,
    tool: str,
    truth_tokens: Sequence[list[str]] | None = None,
) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """One tool's accuracy on labelled spectra.

    Parameters
    ----------
    labelled : polars.DataFrame
        One row per labelled spectrum with ``label_peptide``, ``<tool>_peptide`` (null
        when not sequenced), ``<tool>_score`` and ``<tool>_correct``.
    tool : str
        Column prefix.
    truth_tokens : sequence of list of str, optional
        Tokens of ``label_peptide`` when already parsed.

    Returns
    -------
    metrics : dict
        ``aa_precision``, ``aa_recall``, ``peptide_recall``, ``peptide_precision``,
        ``pc_auc`` (area under the precision-coverage curve).
    curve : tuple of numpy.ndarray
        (coverage, precision) with the spectra ranked by score.
    """
    if truth_tokens is None:
        truth_tokens = [_tokens(p) or [] for p in labelled["label_peptide"].to_list()]
    predicted = [_tokens(p) or [] for p in labelled[f"{tool}_peptide"].to_list()]
    metrics = sequencing_metrics(predicted, truth_tokens)
    with_prediction = labelled.filter(pl.col(f"{tool}_peptide").is_not_null())
    coverage, precision, auc = precision_coverage(
        with_prediction[f"{tool}_correct"].to_list(),
        with_prediction[f"{tool}_score"].fill_null(float("-inf")).to_list(),
        labelled.height,
    )
    return (
        {
            "aa_precision": metrics.aa_precision,
            "aa_recall": metrics.aa_recall,
            "peptide_recall": metrics.peptide_recall,
            "peptide_precision": metrics.peptide_precision,
            "pc_auc": auc,
        },
        (coverage, precision),
    )


def _ratio(numerator: float | None, denominator: int) -> float | None:
    return float(numerator or 0) / denominator if denominator else None


def read_speed(path: str | os.PathLike[str], n_spectra: int | None = None) -> float | None:
    """Spectra/s from a timing file.

    Parameters
    ----------
    path : path
        JSON with ``spectra_per_second``, or with ``seconds`` and ``n_spectra_given`` /
        ``n_spectra``; or a Snakemake ``benchmark:`` TSV (wall seconds in column ``s``).
    n_spectra : int, optional
        Spectra processed, for a benchmark TSV (which has no count).

    Returns
    -------
    float or None
        None when the file does not tell.
    """
    path = Path(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("spectra_per_second") is not None:
            return float(data["spectra_per_second"])
        count = data.get("n_spectra_given", data.get("n_spectra", n_spectra))
        seconds = data.get("seconds")
        return float(count) / float(seconds) if count and seconds else None
    benchmark = pl.read_csv(path, separator="\t")
    seconds = float(benchmark["s"][0]) if "s" in benchmark.columns and benchmark.height else 0.0
    return n_spectra / seconds if n_spectra and seconds > 0 else None


def summary_row(sample: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row of a sample's summary, for the table across samples.

    Parameters
    ----------
    sample : str
    summary : mapping
        :func:`summarize` output (as read back from comparison.json).

    Returns
    -------
    dict
        ``sample``, ``n_spectra``, ``n_labelled``, ``agreement_rate`` and, per tool,
        ``<tool>_n_sequenced``, ``<tool>_spectra_per_second``, ``<tool>_aa_precision``,
        ``<tool>_peptide_recall``, ``<tool>_pc_auc`` (null without labels),
        ``<tool>_collapsed`` (the reason, or null) and ``<tool>_n_precursor_mismatch``;
        ``n_common`` and per tool ``<tool>_common_aa_precision`` and
        ``<tool>_common_peptide_recall`` on the spectra both answered (null when none).
    """
    row: dict[str, Any] = {
        "sample": sample,
        "n_spectra": summary.get("n_spectra"),
        "n_labelled": summary.get("n_labelled"),
        "agreement_rate": summary.get("agreement_rate"),
        "n_common": summary.get("n_common"),
    }
    for tool in TOOLS:
        tool_summary = summary.get(tool, {})
        common = tool_summary.get("common") or {}
        row[f"{tool}_common_aa_precision"] = common.get("aa_precision")
        row[f"{tool}_common_peptide_recall"] = common.get("peptide_recall")
        for key in (
            "n_sequenced",
            "spectra_per_second",
            "aa_precision",
            "peptide_recall",
            "pc_auc",
            "collapsed",
        ):
            row[f"{tool}_{key}"] = tool_summary.get(key)
        row[f"{tool}_n_precursor_mismatch"] = tool_summary.get("status_counts", {}).get(
            PRECURSOR_MISMATCH, 0
        )
    return row
