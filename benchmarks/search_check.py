"""The database search (Sage through sagepy) on the public real spectra, against what is
known of their peptides; and the database-grounded q-values of de novo answers on them.

Four measurements, each with the project's own code (``trm.search``, ``trm denovo``):

1. **yeast**: the dev yeast run (118 spectra) against the whole yeast proteome, the real
   use: its PSMs against MetaMorpheus's identifications (the mzIdentML, q <= 0.01) at the
   configured FDR, at the lowest FDR the run can reach, and as best PSMs.
2. **mouse**: the mouse spectra (128, ``SEQ=`` labels) have no proteome here. They are
   searched against the yeast proteome *plus one FASTA entry per labelled peptide*: the
   right answers are in the database by construction, inside a proteome-sized search
   space of other peptides, so both sensitivity and wrong answers can be counted. This is
   more favourable than a real mouse search (no other mouse peptide competes).
3. **pooled**: the runs are too small for target-decoy competition at 1% (it needs at
   least 100 target PSMs), so all labelled high-resolution HCD dev spectra are searched
   together as one run (mouse, ProteomeTools, CHO library entries with their peptides
   planted as in 2; the yeast run against its proteome): at q <= 1%, 5% and 10% the share
   of accepted PSMs whose peptide is not the known one (the observed FDP), per source.
   A known peptide is itself an identification (a library or a search), so "wrong" can be
   the label's error. Timing: the pooled spectra repeated to ``--timing-spectra`` and
   scored again on one thread (index time apart).
4. **denovo**: ``trm denovo --database-labels`` on the labelled dev spectra with the
   shipped model: the report's held-out check (each half's q-values from the map fitted
   on the other half) at q <= 1%, 5%, 10%.

Usage (from the project root)::

    python benchmarks/search_check.py --dev-dir ../shared/data/dev \\
        --out benchmarks/results/search_check.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from trm.chem import UnsupportedPeptideError, parse_peptidoform
from trm.instrument import load_instrument
from trm.io.fasta import Protein, read_fasta
from trm.io.labels import read_annotated_mgf, read_identified_spectra, read_msp
from trm.io.spectra import read_spectra
from trm.metrics import match_peptides
from trm.search.engine import limit_threads
from trm.search.settings import SearchSettings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
YEAST_FASTA = ROOT / "resources" / "fasta" / "UP000002311-S.cerevisiae.fasta.gz"
INSTRUMENT = ROOT / "config" / "instruments" / "orbitrap_hcd.yaml"
MODEL = ROOT / "resources" / "models" / "orbitrap_hcd" / "model.pt"
THRESHOLDS = (0.01, 0.05, 0.10)


def _tokens(peptide: str) -> list[str] | None:
    try:
        return parse_peptidoform(peptide)[0]
    except UnsupportedPeptideError:
        return None


def _plain(peptide: str) -> str:
    return re.sub(r"\[[^\]]*\]-?", "", peptide.split("/")[0])


def read_sources(dev_dir: Path) -> dict[str, tuple[pl.DataFrame, dict[str, str]]]:
    """Source -> (all its spectra as a spectrum table, spectrum id -> known peptide)."""
    sources = {}
    yeast = dev_dir / "SmallCalibratibleYeast.mgf"
    labelled, _ = read_identified_spectra(yeast, dev_dir / "SmallCalibratible_Yeast.mzID")
    sources["yeast"] = (read_spectra(yeast, run="yeast"), labelled)
    mouse, _ = read_annotated_mgf(dev_dir / "casanovo_sample_mouse_hcd.mgf", run="mouse")
    sources["mouse"] = (mouse, mouse)
    ptools, _ = read_annotated_mgf(dev_dir / "proteometools_kuester_hcd.mgf", run="ptools")
    sources["ptools"] = (ptools, ptools)
    cho, _ = read_msp(dev_dir / "chinese_hamster_hcd_selected_head.msp", run="cho")
    sources["cho"] = (cho, cho)
    out = {}
    for name, (spectra, labels) in sources.items():
        known = dict(labels.select("spectrum_id", "peptide").iter_rows())
        columns = [c for c in spectra.columns if c != "peptide"]
        out[name] = (spectra.select(columns).with_columns(run=pl.lit(name)), known)
    return out


def planted(known: dict[str, str], source: str) -> list[Protein]:
    """One FASTA entry per distinct known peptide (plain residues)."""
    peptides = sorted({_plain(p) for p in known.values()})
    return [Protein(f"planted|{source}|{i}", "", p) for i, p in enumerate(peptides)]


def judge(
    psms: pl.DataFrame, known: dict[str, str], threshold: float
) -> dict[str, int | float | None]:
    """Accepted targets at ``threshold``: with a known peptide, right or wrong."""
    accepted = psms.filter(~pl.col("is_decoy") & (pl.col("q_value") <= threshold))
    right = wrong = unknown = other_modifications = 0
    for spectrum_id, peptide in accepted.select("spectrum_id", "peptide").iter_rows():
        label = known.get(spectrum_id)
        truth = _tokens(label) if label else None
        if truth is None:
            unknown += 1
        elif match_peptides(_tokens(peptide), truth)[1]:
            right += 1
        else:
            wrong += 1
            same = _plain(peptide).replace("I", "L") == _plain(label).replace("I", "L")
            other_modifications += int(same)
    judged = right + wrong
    return {
        "accepted": accepted.height,
        "right": right,
        "wrong": wrong,
        "wrong_modifications_only": other_modifications,
        "no_label": unknown,
        "observed_fdp": wrong / judged if judged else None,
        "labelled": len(known),
        "missed": len(known) - right - wrong,
    }


def run_search(spectra, proteins, settings, instrument):
    from trm.search.engine import search_spectra

    started = time.perf_counter()
    outcome = search_spectra(spectra, proteins, instrument, settings, threads=1)
    return outcome, time.perf_counter() - started


def single_runs(sources, yeast_proteome, instrument, settings) -> dict:
    """Measurements 1 and 2: the yeast run, and the mouse run with its peptides planted."""
    results = {}
    for name, extra in (("yeast", []), ("mouse", planted(sources["mouse"][1], "mouse"))):
        spectra, known = sources[name]
        outcome, seconds = run_search(spectra, yeast_proteome + extra, settings, instrument)
        targets = outcome.psms.filter(~pl.col("is_decoy"))
        results[name] = {
            "n_spectra": spectra.height,
            "n_labelled": len(known),
            "n_target_psms": targets.height,
            "n_decoy_psms": outcome.psms.height - targets.height,
            "best_target_q": targets["q_value"].min(),
            "by_threshold": {t: judge(outcome.psms, known, t) for t in THRESHOLDS},
            "best_psm": judge(outcome.psms, known, 1.0),
            "seconds": {**outcome.seconds, "total": seconds},
            "n_peptidoforms": outcome.n_peptides,
        }
    return results


def pooled_run(sources, yeast_proteome, instrument, settings, timing_spectra: int) -> dict:
    """Measurement 3, and the scoring time per 1,000 spectra."""
    extra = []
    for name in ("mouse", "ptools", "cho"):
        extra += planted(sources[name][1], name)
    spectra = pl.concat([s for s, _ in sources.values()], how="vertical_relaxed")
    spectra = spectra.with_columns(spectrum_id=pl.col("run") + pl.lit(":") + pl.col("spectrum_id"))
    known = {f"{name}:{k}": v for name, (_, labels) in sources.items() for k, v in labels.items()}
    outcome, seconds = run_search(spectra, yeast_proteome + extra, settings, instrument)
    psms = outcome.psms.with_columns(source=pl.col("spectrum_id").str.extract(r"^([^:]+):"))
    result = {
        "n_spectra": spectra.height,
        "n_labelled": len(known),
        "n_target_psms": int((~psms["is_decoy"]).sum()),
        "n_decoy_psms": int(psms["is_decoy"].sum()),
        "seconds": {**outcome.seconds, "total": seconds},
        "n_peptidoforms": outcome.n_peptides,
        "by_threshold": {},
    }
    for threshold in THRESHOLDS:
        per_source = {"all": judge(psms, known, threshold)}
        for name in sources:
            part = psms.filter(pl.col("source") == name)
            labels = {k: v for k, v in known.items() if k.startswith(f"{name}:")}
            per_source[name] = judge(part, labels, threshold)
        result["by_threshold"][threshold] = per_source
    # Entrapment: accepted non-yeast spectra matched to yeast proteins only.
    accepted = psms.filter(~pl.col("is_decoy") & (pl.col("q_value") <= 0.01))
    foreign = accepted.filter(pl.col("source") != "yeast")
    yeast_only = sum(
        1 for proteins in foreign["proteins"] if not any(p.startswith("planted|") for p in proteins)
    )
    result["entrapment_at_0.01"] = {
        "accepted_non_yeast": foreign.height,
        "matched_to_yeast_proteins_only": yeast_only,
    }
    # Timing: the pooled spectra repeated, scored on one thread.
    repeats = max(1, -(-timing_spectra // spectra.height))
    many = pl.concat(
        [spectra.with_columns(spectrum_id=pl.col("spectrum_id") + f"#{i}") for i in range(repeats)]
    )
    timed, _ = run_search(many, yeast_proteome + extra, settings, instrument)
    result["timing"] = {
        "n_spectra": many.height,
        "seconds_index": timed.seconds["database"],
        "seconds_scoring": timed.seconds["scoring"],
        "seconds_fdr": timed.seconds["fdr"],
        "scoring_seconds_per_1000": 1000 * timed.seconds["scoring"] / many.height,
        "search_seconds_per_1000_without_index": 1000
        * (timed.seconds["scoring"] + timed.seconds["fdr"])
        / many.height,
    }
    return result


def denovo_check(sources, work: Path, refinement_steps: int | None) -> dict:
    """Measurement 4: trm denovo --database-labels on every labelled dev spectrum."""
    tables = []
    for name, (spectra, known) in sources.items():
        labels = pl.DataFrame(
            {"spectrum_id": list(known), "peptide": list(known.values())},
            schema={"spectrum_id": pl.String, "peptide": pl.String},
        )
        table = spectra.join(labels, on="spectrum_id", how="inner").with_columns(
            spectrum_id=pl.lit(name + ":") + pl.col("spectrum_id"), run=pl.lit("dev")
        )
        tables.append(table)
    table = pl.concat(tables, how="vertical_relaxed")
    path = work / "labelled.parquet"
    table.write_parquet(path)
    report = work / "denovo_fdr.json"
    command = [
        sys.executable, "-m", "trm", "denovo", "--spectra", str(path), "--model", str(MODEL),
        "--instrument", str(INSTRUMENT), "--run", "dev", "--denovo", str(work / "d.tsv"),
        "--mztab", str(work / "d.mztab"), "--unsequenced", str(work / "u.tsv"),
        "--timing", str(work / "t.json"), "--database-labels", str(path),
        "--fdr-report", str(report), "--threads", "1",
    ]  # fmt: skip
    if refinement_steps:
        command += ["--refinement-steps", str(refinement_steps)]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return {
        "n_spectra": table.height,
        "how": "each half's q-values from the map fitted on the other half (the report's "
        "held-out check)",
        **json.loads(report.read_text()),
    }


def synthetic_check(n: int = 40_000, seed: int = 3) -> dict:
    """The de novo q-values where the truth is known by construction: raw scores drawn from
    Beta(0.7, 0.5), an answer right with probability ``score ** 1.5``; the map is fitted on
    the first half (labelled), the q-values judged on the second (never seen)."""
    import numpy as np

    from trm.denovo.database_fdr import database_fdr

    rng = np.random.default_rng(seed)
    scores = rng.beta(0.7, 0.5, size=n)
    correct = rng.random(n) < scores**1.5
    fitted = np.arange(n) < n // 2
    answers = pl.DataFrame(
        {
            "spectrum_id": [str(i) for i in range(n)],
            "raw_score": scores,
            "correct": pl.Series(
                [bool(c) if f else None for c, f in zip(correct, fitted, strict=True)],
                dtype=pl.Boolean,
            ),
        }
    )
    result = database_fdr(answers)
    rows = []
    for threshold in THRESHOLDS:
        accepted = ~fitted & (result.q_values <= threshold)
        rows.append(
            {
                "threshold": threshold,
                "accepted": int(accepted.sum()),
                "wrong": int((~correct[accepted]).sum()),
                "estimated_fdr": float(result.pep[accepted].mean()),
                "observed_fdr": float(1 - correct[accepted].mean()),
            }
        )
    return {
        "n_spectra": n,
        "n_labelled": n // 2,
        "n_labelled_correct": int(correct[fitted].sum()),
        "how": "the map fitted on the labelled half, the q-values judged on the other half",
        "held_out_check": rows,
    }


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(results: dict, command: str) -> str:
    lines = ["# The database search on the dev spectra", "", f"Command: `{command}`", ""]
    lines += [f"Machine: {results['machine']}; Sage through sagepy {results['sagepy']}, one "
              "thread; settings: the defaults of `search:` (trypsin, 2 missed cleavages, 7-30 "
              "residues, C+57 fixed, M+16 / protein N-term acetyl / pyro-glu variable, "
              "discriminant score), the Orbitrap HCD instrument file (20 ppm, 0.02 Da, "
              "isotope errors 0-1, charges 2-4).", ""]  # fmt: skip
    for name in ("yeast", "mouse"):
        run = results["single"][name]
        lines += [
            f"## {name}: {run['n_spectra']} spectra, {run['n_labelled']} known peptides",
            "",
            f"{run['n_target_psms']} target and {run['n_decoy_psms']} decoy PSMs (best of "
            f"each spectrum); best target q-value {_fmt(run['best_target_q'], 4)}; "
            f"{run['n_peptidoforms']:,} peptidoforms indexed in "
            f"{run['seconds']['database']:.1f} s, spectra scored in "
            f"{run['seconds']['scoring']:.2f} s.",
            "",
            "| q-value cutoff | accepted | agree with known | differ (same residues, other "
            "modifications) | no known peptide | known, not accepted (missed) |",
            "|---|---|---|---|---|---|",
        ]
        for threshold, row in [*run["by_threshold"].items(), ("best PSM", run["best_psm"])]:
            lines.append(
                f"| {threshold} | {row['accepted']} | {row['right']} | {row['wrong']} "
                f"({row['wrong_modifications_only']}) | {row['no_label']} | {row['missed']} |"
            )
        lines.append("")
    pooled = results["pooled"]
    lines += [
        f"## pooled: {pooled['n_spectra']} spectra, {pooled['n_labelled']} known peptides",
        "",
        f"{pooled['n_target_psms']} target and {pooled['n_decoy_psms']} decoy PSMs; "
        f"{pooled['n_peptidoforms']:,} peptidoforms.",
        "",
        "| q-value cutoff | source | accepted | agree with known | differ (of which same "
        "residues, other modifications) | no known peptide | observed FDP |",
        "|---|---|---|---|---|---|---|",
    ]
    for threshold, per_source in pooled["by_threshold"].items():
        for source, row in per_source.items():
            lines.append(
                f"| {threshold} | {source} | {row['accepted']} | {row['right']} | "
                f"{row['wrong']} ({row['wrong_modifications_only']}) | {row['no_label']} | "
                f"{_fmt(row['observed_fdp'])} |"
            )
    entrapment = pooled["entrapment_at_0.01"]
    timing = pooled["timing"]
    lines += [
        "",
        f"Entrapment at q <= 0.01: of {entrapment['accepted_non_yeast']} accepted non-yeast "
        f"spectra, {entrapment['matched_to_yeast_proteins_only']} matched a peptide found "
        "only in yeast proteins.",
        "",
        f"Timing ({timing['n_spectra']} spectra: the pooled ones repeated): index "
        f"{timing['seconds_index']:.1f} s, scoring {timing['seconds_scoring']:.2f} s, "
        f"q-values and PSM table {timing['seconds_fdr']:.2f} s: "
        f"**{timing['search_seconds_per_1000_without_index']:.2f} s per 1,000 spectra** "
        "on one thread, plus the index once per run.",
        "",
    ]
    for key, check in results["denovo"].items():
        lines += [
            f"## de novo q-values ({key}): {check['n_spectra']} answers",
            "",
            f"{check['n_labelled']} answers with a label, {check.get('n_labelled_correct')} "
            f"right; {check['how']}:",
            "",
            "| q-value cutoff | accepted | wrong | estimated FDR | observed FDR |",
            "|---|---|---|---|---|",
        ]
        for row in check.get("held_out_check", []):
            lines.append(
                f"| {row['threshold']} | {row['accepted']} | {row['wrong']} | "
                f"{_fmt(row['estimated_fdr'])} | {_fmt(row['observed_fdr'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev-dir", type=Path, required=True, help="the shared dev folder")
    parser.add_argument("--out", type=Path, required=True, help="markdown report (+ .json)")
    parser.add_argument("--timing-spectra", type=int, default=5000)
    parser.add_argument(
        "--refinement-steps", type=int, nargs="*", default=[0],
        help="de novo refinement steps of each q-value check (0: as trained)",
    )  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    limit_threads(1)
    from importlib.metadata import version

    instrument = load_instrument(INSTRUMENT)
    settings = SearchSettings()
    sources = read_sources(args.dev_dir)
    yeast_proteome = read_fasta(YEAST_FASTA)
    results = {
        "machine": f"{os.cpu_count()} CPUs ({os.uname().machine})",
        "sagepy": version("sagepy"),
        "single": single_runs(sources, yeast_proteome, instrument, settings),
        "pooled": pooled_run(sources, yeast_proteome, instrument, settings, args.timing_spectra),
        "denovo": {"synthetic answers, truth known": synthetic_check()},
    }
    with tempfile.TemporaryDirectory() as folder:
        for steps in args.refinement_steps:
            key = "trm denovo's defaults: the instrument file's decoder" + (
                f", {steps} refinement steps" if steps else ""
            )
            work = Path(folder) / key.replace(" ", "_")
            work.mkdir()
            results["denovo"][key] = denovo_check(sources, work, steps or None)
    command = "python benchmarks/search_check.py " + " ".join(
        a if not a.startswith("/") else os.path.relpath(a, ROOT) for a in sys.argv[1:]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, command) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
