"""The one FASTA reader: plain and gzip, strict about what is no FASTA."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from trm.io.fasta import FastaError, iter_fasta, read_fasta

DATA = Path(__file__).resolve().parents[2] / "data"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_entries_with_wrapped_lines_lower_case_and_stop(tmp_path):
    path = _write(
        tmp_path / "p.fasta",
        "; a comment\n>sp|P1|ONE first protein\nMKPEP\ntidek*\n\n>P2\nACDEFGHIK\n",
    )
    proteins = read_fasta(path)
    assert [(p.accession, p.description, p.sequence) for p in proteins] == [
        ("sp|P1|ONE", "first protein", "MKPEPTIDEK"),
        ("P2", "", "ACDEFGHIK"),
    ]
    assert proteins[0].header == "sp|P1|ONE first protein"


def test_gzip_is_recognised_by_content(tmp_path):
    path = tmp_path / "no_suffix"
    path.write_bytes(gzip.compress(b">P1\nPEPTIDEK\n"))
    assert [p.sequence for p in read_fasta(path)] == ["PEPTIDEK"]


def test_the_shipped_test_subset_reads(tmp_path):
    proteins = read_fasta(DATA / "search" / "yeast_subset.fasta.gz")
    assert len(proteins) == 254
    assert all(p.sequence.isalpha() and p.sequence.isupper() for p in proteins)


def test_text_that_is_no_fasta_names_the_line(tmp_path):
    path = _write(tmp_path / "notes.fasta", "PEPTIDEK is my favourite\n>P1\nPEP\n")
    with pytest.raises(FastaError, match=r"notes.fasta: line 1: text before the first '>'"):
        read_fasta(path)


def test_a_character_that_is_no_residue_names_entry_and_line(tmp_path):
    path = _write(tmp_path / "bad.fasta", ">P1\nPEPT\n>P2 x\nPEP1DE\n")
    with pytest.raises(FastaError, match=r"line 4 \(entry 'P2', header on line 3\): '1' is no"):
        read_fasta(path)


def test_a_stop_inside_a_sequence_is_an_error(tmp_path):
    path = _write(tmp_path / "stop.fasta", ">P1\nPEP*TIDE\n")
    with pytest.raises(FastaError, match=r"'\*' inside a sequence"):
        read_fasta(path)


def test_a_header_without_a_name_is_an_error(tmp_path):
    path = _write(tmp_path / "anon.fasta", ">\nPEPTIDE\n")
    with pytest.raises(FastaError, match="line 1: header without a name"):
        read_fasta(path)


@pytest.mark.parametrize("text", ["", "\n\n", ">P1\n>P2\n"])
def test_an_empty_fasta_is_an_error(tmp_path, text):
    path = _write(tmp_path / "empty.fasta", text)
    with pytest.raises(FastaError, match="holds no protein sequence"):
        read_fasta(path)


def test_entries_without_sequence_are_left_out_with_a_warning(tmp_path, caplog):
    path = _write(tmp_path / "gaps.fasta", ">P1\n>P2\nPEPTIDEK\n")
    assert [p.accession for p in iter_fasta(path)] == ["P2"]
    assert "1 entries without a sequence" in caplog.text


def test_a_broken_gzip_stream_is_named(tmp_path):
    path = tmp_path / "cut.fasta.gz"
    path.write_bytes(gzip.compress(b">P1\n" + b"PEPTIDEK\n" * 2000)[:60])
    with pytest.raises(FastaError, match="not a readable gzip file"):
        read_fasta(path)


def test_binary_junk_is_no_fasta(tmp_path):
    path = tmp_path / "junk.fasta"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(FastaError):
        read_fasta(path)
