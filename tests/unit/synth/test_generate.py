"""The synthetic data set end to end: shards, manifest, determinism, splits, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest

from trm.chem import parse_peptidoform
from trm.fragments import fragment_mz
from trm.io.table import SPECTRUM_SCHEMA
from trm.synth.generate import MANIFEST_FILE, SyntheticSettings, write_synthetic_dataset
from trm.synth.ms2pip_models import Ms2pipModelError
from trm.synth.peptides import DigestionSettings, SyntheticInputError
from trm.synth.spectra import SYNTHETIC_SCHEMA


def _read_split(out, split: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted((out / split).glob("shard-*.parquet"))])


def _shard_bytes(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, yeast_fasta, model_dir):
    """One tiny data set (300 spectra in shards of 100), written once for several tests."""
    from trm.synth.peptides import PeptidoformSampler

    settings = SyntheticSettings(
        model="HCD2019-distilled",
        model_dir=str(model_dir),
        digestion=DigestionSettings(missed_cleavages=1),
        sampler=PeptidoformSampler(variable_probability=0.5),
        n_spectra=300,
        seed=7,
        batch_size=64,
        shard_size=100,
        threads=1,
        run="tiny",
    )
    out = tmp_path_factory.mktemp("synthetic")
    manifest = write_synthetic_dataset(yeast_fasta, out, settings)
    return out, manifest, settings


def test_shards_have_the_spectrum_schema_and_manifest_counts(dataset) -> None:
    out, manifest, _ = dataset
    assert json.loads((out / MANIFEST_FILE).read_text()) == manifest
    total = 0
    for split, entry in manifest["splits"].items():
        for name in entry["shards"]:
            shard = pl.read_parquet(out / split / name)
            assert shard.schema == pl.Schema(SYNTHETIC_SCHEMA)
            assert set(SPECTRUM_SCHEMA) <= set(shard.columns)
            assert shard.height <= 100
        table = _read_split(out, split)
        assert table.height == entry["spectra"] == entry["planned_spectra"]
        assert sum(int(n) for n in entry["charges"].values()) == table.height
        total += table.height
    assert total == 300
    assert manifest["ms2pip_model"]["model_hash"]
    assert manifest["settings"]["seed"] == 7
    shards = manifest["splits"]["train"]["shards"]
    assert shards == [f"shard-{i:05d}.parquet" for i in range(len(shards))]


def test_splits_share_no_peptide(dataset) -> None:
    out, manifest, _ = dataset

    def stripped(table: pl.DataFrame) -> set[str]:
        # the unmodified sequence, I and L merged: no twin may cross a split
        plain = table["peptide"].str.replace_all(r"\[[^\]]*\]-?", "")
        return set(plain.str.replace_all("I", "L").to_list())

    sets = {split: stripped(_read_split(out, split)) for split in manifest["splits"]}
    names = list(sets)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not sets[first] & sets[second], (first, second)


def test_spectra_are_consistent_with_their_peptide(dataset) -> None:
    out, _, settings = dataset
    table = _read_split(out, "train")
    assert table["spectrum_id"].n_unique() == table.height
    assert table["run"].unique().to_list() == ["tiny"]
    assert set(table["charge"].unique().to_list()) <= {2, 3, 4}
    for row in table.head(40).iter_rows(named=True):
        tokens, charge = parse_peptidoform(row["peptide"])
        assert charge is None
        assert "C" not in tokens  # fixed carbamidomethylation
        mz = np.asarray(row["mz"])
        assert np.all(np.diff(mz) >= 0)
        assert max(row["intensity"]) == pytest.approx(1.0)
        assert min(row["intensity"]) > 0
        ladder = fragment_mz(tokens, charges=(1, 2))
        for peak, series, number, z in zip(
            mz, row["ion_type"], row["ion_number"], row["ion_charge"], strict=True
        ):
            assert abs(peak - ladder[f"{series}{z}"][number - 1]) < 5e-4
        # the shipped model has b/y of charge 1 only
        assert set(row["ion_charge"]) == {1}
        assert len(row["mz"]) <= 2 * (len(tokens) - 1)


def test_same_seed_gives_byte_identical_shards(dataset, tmp_path, yeast_fasta) -> None:
    out, _, settings = dataset
    # another batch size and thread count must not change a byte
    again = dataclasses.replace(settings, batch_size=37, threads=2)
    write_synthetic_dataset(yeast_fasta, tmp_path / "again", again)
    assert _shard_bytes(tmp_path / "again") == _shard_bytes(out)
    other = dataclasses.replace(settings, seed=8)
    write_synthetic_dataset(yeast_fasta, tmp_path / "other", other)
    assert _shard_bytes(tmp_path / "other") != _shard_bytes(out)


def test_rerun_replaces_stale_shards(dataset, tmp_path, yeast_fasta) -> None:
    _, _, settings = dataset
    target = tmp_path / "rerun"
    write_synthetic_dataset(yeast_fasta, target, dataclasses.replace(settings, shard_size=50))
    manifest = write_synthetic_dataset(yeast_fasta, target, settings)
    for split, entry in manifest["splits"].items():
        assert sorted(p.name for p in (target / split).glob("*.parquet")) == entry["shards"]


def test_more_spectra_than_peptides_repeats_peptides(tmp_path, write_fasta, tiny_settings) -> None:
    fasta = write_fasta({"p": "GGGGGGGKAAAAAAAMKWWWWWWWR"})
    settings = dataclasses.replace(
        tiny_settings, n_spectra=40, split_fractions={"train": 1.0}, shard_size=1000
    )
    manifest = write_synthetic_dataset(fasta, tmp_path / "out", settings)
    table = _read_split(tmp_path / "out", "train")
    assert table.height == 40
    assert (
        manifest["unique_peptides"]
        == table["peptide"].str.replace_all(r"\[[^\]]*\]", "").n_unique()
    )


def test_bad_inputs_give_clear_errors(tmp_path, write_fasta, tiny_settings) -> None:
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(SyntheticInputError, match="no protein"):
        write_synthetic_dataset(empty, tmp_path / "a", tiny_settings)
    odd = write_fasta({"odd": "".join(f"GGG{letter}GGGK" for letter in "BJOUXZ")})
    with pytest.raises(SyntheticInputError, match="non-standard residue"):
        write_synthetic_dataset(odd, tmp_path / "b", tiny_settings)
    with pytest.raises(SyntheticInputError, match="exceeds the 100 residues"):
        dataclasses.replace(tiny_settings, digestion=DigestionSettings(max_length=101))
    with pytest.raises(Ms2pipModelError, match="unknown ms2pip model 'NoSuchModel'"):
        write_synthetic_dataset(
            empty, tmp_path / "c", dataclasses.replace(tiny_settings, model="NoSuchModel")
        )
    with pytest.raises(SyntheticInputError, match="received no peptide"):
        write_synthetic_dataset(
            write_fasta({"one": "GGGGGGGK"}, name="one.fasta"), tmp_path / "d", tiny_settings
        )


def test_non_standard_peptides_are_counted_in_the_manifest(tmp_path, write_fasta, tiny_settings):
    fasta = write_fasta({"mixed": "GGGUGGGK" + "".join(f"{a * 7}K" for a in "ADEFGHLNPQSTVWY")})
    settings = dataclasses.replace(tiny_settings, split_fractions={"train": 1.0}, n_spectra=None)
    manifest = write_synthetic_dataset(fasta, tmp_path / "out", settings)
    assert manifest["skipped_peptides"]["non-standard residue U"] >= 1
    assert manifest["splits"]["train"]["spectra"] == manifest["unique_peptides"]
