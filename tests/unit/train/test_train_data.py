"""Reading shards into padded arrays, and the step-indexed batch order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from trm.chem import parse_peptidoform, peptide_mass
from trm.train.data import SpectrumDataset, batch_indices

from .theoretical_spectra import theoretical_table


def test_tokens_masses_and_peaks(spectrum_table, peptides, vocabulary):
    dataset = SpectrumDataset.from_table(spectrum_table, vocabulary, 16, 32, 10)
    assert len(dataset) == len(peptides)
    assert dataset.report.n_kept == len(peptides) and not dataset.report.skipped
    for row in (0, 17):
        tokens, _ = parse_peptidoform(peptides[row])
        assert vocabulary.decode(dataset.tokens[row]) == tokens
        assert dataset.tokens[row, len(tokens) :].tolist() == [0] * (16 - len(tokens))
        assert dataset.precursor_mass[row] == pytest.approx(peptide_mass(tokens), abs=1e-6)
        n = dataset.n_peaks[row]
        assert n == 2 * (len(tokens) - 1)
        assert np.all(np.diff(dataset.mz[row, :n]) >= 0)
        assert not dataset.mz[row, n:].any()


def test_only_the_most_intense_peaks_are_kept(vocabulary):
    table = theoretical_table(["PEPTIDEK"], seed=0)
    dataset = SpectrumDataset.from_table(table, vocabulary, 16, n_peaks=5, max_charge=10)
    intensity = np.asarray(table["intensity"][0])
    mz = np.asarray(table["mz"][0])
    strongest = np.sort(mz[np.argsort(-intensity)[:5]])
    np.testing.assert_array_equal(dataset.mz[0], strongest)


def test_unusable_rows_are_skipped_and_counted(vocabulary):
    table = theoretical_table(["PEPTIDEK"] * 6, seed=0).with_columns(
        peptide=pl.Series(
            ["PEPTIDEK", None, "PEPTIDEXK", "PEPS[Phospho]IDEK", "PEPTIDEK" * 3, "PEPTIDEK"]
        ),
        charge=pl.Series([2, 2, 2, 2, 2, None], dtype=pl.Int16),
    )
    dataset = SpectrumDataset.from_table(table, vocabulary, 16, 32, 10)
    assert len(dataset) == 1
    assert dataset.report.n_rows == 6
    assert dataset.report.skipped == {
        "no peptide": 1,
        "unsupported residue or modification": 2,
        "longer than 15 tokens": 1,
        "no charge": 1,
    }


def test_from_shards_reads_a_directory(tmp_path, spectrum_table, vocabulary):
    spectrum_table.head(40).with_columns(extra=pl.lit(1)).write_parquet(tmp_path / "a.parquet")
    spectrum_table.tail(24).write_parquet(tmp_path / "b.parquet")
    dataset = SpectrumDataset.from_shards(tmp_path, vocabulary, 16, 32, 10)
    assert dataset.peptides == spectrum_table["peptide"].to_list()
    limited = SpectrumDataset.from_shards(tmp_path, vocabulary, 16, 32, 10, limit=45)
    assert len(limited) == 45
    with pytest.raises(FileNotFoundError):
        SpectrumDataset.from_shards(tmp_path / "a.parquet.d", vocabulary, 16, 32, 10)


def test_batch_tensors(spectrum_table, vocabulary):
    dataset = SpectrumDataset.from_table(spectrum_table, vocabulary, 16, 32, 10)
    batch = dataset.batch([3, 0])
    assert batch.mz.shape == (2, 32) and batch.tokens.shape == (2, 16)
    assert batch.peak_mask.sum(dim=1).tolist() == dataset.n_peaks[[3, 0]].tolist()


def test_batch_order_is_a_pure_function_of_the_step():
    first = [batch_indices(step, 8, 20, seed=5) for step in range(5)]
    again = [batch_indices(step, 8, 20, seed=5) for step in range(5)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    flat = np.concatenate(first)
    # Each epoch of 20 spectra visits every spectrum once.
    assert sorted(flat[:20]) == list(range(20)) and sorted(flat[20:40]) == list(range(20))
    assert not np.array_equal(flat[:20], flat[20:40])


def test_processes_split_the_global_batch():
    parts = [batch_indices(3, 4, 50, seed=1, rank=r, world_size=3) for r in range(3)]
    together = batch_indices(3, 12, 50, seed=1)
    np.testing.assert_array_equal(np.concatenate(parts), together)
