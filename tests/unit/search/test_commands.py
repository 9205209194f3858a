"""``trm search`` end to end, and what it does with bad input: a FASTA that does not
parse, an empty FASTA, a run too small for target-decoy competition."""

from __future__ import annotations

import json

import polars as pl
import pytest
from psm_utils.io import read_file

from trm.cli import main
from trm.io.results import DENOVO_COLUMNS, write_denovo_tsv

from .conftest import INSTRUMENT, SUBSET_FASTA, YEAST_MGF


def search(tmp_path, *extra: str, fasta=SUBSET_FASTA) -> tuple[int, dict]:
    paths = {"psms": tmp_path / "search.tsv", "summary": tmp_path / "search.json"}
    status = main(
        [
            "search", "--spectra", str(YEAST_MGF), "--fasta", str(fasta),
            "--instrument", str(INSTRUMENT), "--run", "yeast",
            "--psms", str(paths["psms"]), "--summary", str(paths["summary"]), *extra,
        ]
    )  # fmt: skip
    return status, paths


def test_search_writes_psms_and_a_summary_that_compares_with_supplied_ids(tmp_path, yeast_labels):
    status, paths = search(tmp_path, "--fdr", "0.05", "--supplied-labels", str(yeast_labels))
    assert status == 0
    psms = read_file(paths["psms"], filetype="tsv")
    summary = json.loads(paths["summary"].read_text())
    assert summary["n_psms"] == len(psms) == summary["n_target_psms"] + summary["n_decoy_psms"]
    assert summary["n_at_fdr"] == sum(1 for p in psms if not p.is_decoy and p.qvalue <= 0.05)
    assert summary["n_at_fdr"] > 50 and not summary["too_small_for_target_decoy"]
    assert summary["settings"]["fdr"] == 0.05
    assert summary["instrument"]["fragment_tolerance_da"] == 0.02
    supplied = summary["against_supplied"]
    assert supplied["n_supplied"] == 65
    assert supplied["at_fdr"]["agreement"] >= 0.9
    assert set(summary["seconds"]) == {"database", "scoring", "fdr"}


def test_labels_from_the_search_are_its_targets_at_the_fdr(tmp_path):
    status, paths = search(tmp_path, "--fdr", "0.05")
    assert status == 0
    labels = tmp_path / "labels.parquet"
    status = main(
        ["labelled-spectra", str(YEAST_MGF), str(labels), "--identifications",
         str(paths["psms"]), "--id-filetype", "tsv", "--q-value", "0.05", "--run", "yeast"]
    )  # fmt: skip
    assert status == 0
    table = pl.read_parquet(labels)
    summary = json.loads(paths["summary"].read_text())
    assert table.height == summary["n_at_fdr"]
    assert table["peptide"].null_count() == 0


def test_a_run_too_small_for_target_decoy_is_no_error_and_labels_nothing(tmp_path, caplog):
    status, paths = search(tmp_path)  # fdr 0.01: 118 spectra cannot reach it
    assert status == 0
    summary = json.loads(paths["summary"].read_text())
    assert summary["too_small_for_target_decoy"] and summary["n_at_fdr"] == 0
    assert "at least 100 (1 / fdr)" in summary["note"]
    assert "run too small for target-decoy competition: 67 target PSMs, and at least 100" in (
        caplog.text
    )
    labels = tmp_path / "labels.parquet"
    status = main(
        ["labelled-spectra", str(YEAST_MGF), str(labels), "--identifications",
         str(paths["psms"]), "--id-filetype", "tsv", "--q-value", "0.01", "--run", "yeast"]
    )  # fmt: skip
    assert status == 0
    assert pl.read_parquet(labels).height == 0
    # Evaluation of such a run says so rather than failing or inventing metrics.
    denovo = tmp_path / "denovo.tsv"
    write_denovo_tsv(pl.DataFrame(schema=DENOVO_COLUMNS), denovo)
    status = main(
        ["evaluate", "--denovo", str(denovo), "--labels", str(labels), "--run", "yeast",
         "--metrics", str(tmp_path / "metrics.json"), "--plot", str(tmp_path / "metrics.png"),
         "--empty-labels-ok"]
    )  # fmt: skip
    assert status == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_labelled"] == 0 and metrics["peptide_recall"] is None
    assert "search" in metrics["no_labels"]
    status = main(
        ["evaluate", "--denovo", str(denovo), "--labels", str(labels), "--run", "yeast",
         "--metrics", str(tmp_path / "m2.json"), "--plot", str(tmp_path / "m2.png")]
    )  # fmt: skip
    assert status == 1  # without the flag an empty labels table is an error, as before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"sample\tpeptide\nS1\tPEPTIDEK\n", "line 1: text before the first '>' header"),
        (b">P1\nPEPTIDEK\n>P2\nMKV_LLAGR\n", "line 4 (entry 'P2', header on line 3): '_'"),
        (b"", "holds no protein sequence"),
        (b">P1 one\n>P2 two\n", "holds no protein sequence"),
    ],
)
def test_a_bad_fasta_stops_the_search_naming_file_and_line(tmp_path, caplog, content, message):
    fasta = tmp_path / "proteome.fasta"
    fasta.write_bytes(content)
    status, paths = search(tmp_path, fasta=fasta)
    assert status == 1
    assert f"proteome.fasta: {message}" in caplog.text
    assert not paths["psms"].exists() and not paths["summary"].exists()
    assert not list(tmp_path.glob(".*.part"))
