"""trm.synth.mix: length, charge and missed cleavages of identified spectra, and synthetic
spectra drawn from them."""

from __future__ import annotations

import numpy as np
import pytest

from trm.synth.mix import (
    LENGTH_EDGES,
    PeptideMix,
    PeptideMixError,
    length_bin,
    missed_cleavages,
    plan_spectra,
)


def test_missed_cleavages_and_length_bins():
    assert missed_cleavages("PEPTIDEK") == 0
    assert missed_cleavages("PEPKTIDEK") == 1
    assert missed_cleavages("PEPKPTIDEK") == 0  # K before P is no cleavage site
    assert missed_cleavages("AKRPEK") == 1
    assert length_bin(5) == 0 and length_bin(7) == 0 and length_bin(9) == 1
    assert length_bin(40) == len(LENGTH_EDGES) - 1


def test_fit_counts_each_cell_and_leaves_out_other_charges(tmp_path):
    peptides = ["PEPTIDEK", "PEPTIDEKAAK", "LGGNEQVTR", "AAAAAAAAAAAAAAAAAAK"]
    mix = PeptideMix.fit(peptides, [2, 2, 3, 5], (2, 3, 4), "test", pseudo_count=0.0)
    assert mix.counts.sum() == 3
    assert mix.marginal("charge").tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert mix.marginal("missed").tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    path = tmp_path / "mix.yaml"
    mix.write(path)
    again = PeptideMix.read(path)
    assert again.charges == mix.charges and again.provenance == "test"
    np.testing.assert_allclose(again.probability, mix.probability, atol=1e-6)
    with pytest.raises(PeptideMixError, match="no identified spectrum"):
        PeptideMix.fit(peptides, [5, 5, 5, 5], (2, 3), "none")


def test_spectra_follow_the_mix_and_skip_cells_without_peptides():
    rng = np.random.default_rng(0)
    mix = PeptideMix.fit(["PEPTIDEK"] * 3 + ["PEPKTIDEKAAAR"], [2, 2, 3, 3], (2, 3), "t")
    pool = ["PEPTIDEK", "LGGNEQVR", "PEPKTIDEKAAAR", "AAAAAAAAAAAAAAAAAAAAAAAAK"]
    order, charge = plan_spectra(pool, 4000, mix, rng)
    chosen = np.asarray(pool)[order]
    # the 25-residue peptide has no spectrum in the mix's cells but the pseudo-count's
    assert (chosen == pool[3]).mean() < 0.05
    short = np.isin(chosen, pool[:2])
    # cells whose (length bin, missed cleavages) has a peptide of the pool, renormalised
    usable = mix.probability[[0, 3, 7]][:, :, [0, 2, 0]].diagonal(axis1=0, axis2=2)
    assert short.mean() == pytest.approx(usable[:, 0].sum() / usable.sum(), abs=0.03)
    assert set(charge.tolist()) <= {2, 3}
    assert (charge[short] == 2).mean() > 0.6
    with pytest.raises(PeptideMixError, match="no peptide of the pool"):
        plan_spectra(["AAAAK"], 10, PeptideMix((2,), _only_last_bin()), rng)


def _only_last_bin() -> np.ndarray:
    probability = np.zeros((len(LENGTH_EDGES), 1, 3))
    probability[-1, 0, 0] = 1.0
    return probability


def test_a_mix_needs_the_number_of_spectra():
    from trm.synth.generate import SyntheticSettings
    from trm.synth.peptides import SyntheticInputError

    with pytest.raises(SyntheticInputError, match="n_spectra"):
        SyntheticSettings(model="m", model_dir="d", mix=PeptideMix((2,), _only_last_bin()))


def test_mix_share_keeps_the_rest_of_the_spectra_drawn_as_without_a_mix():
    from trm.synth.generate import SyntheticSettings, plan_splits
    from trm.synth.peptides import SyntheticInputError

    peptides = [f"{'A' * n}{'G' * (i % 3)}K" for n in range(5, 25) for i in range(3)]
    only_long = PeptideMix((2,), _only_last_bin())
    settings = SyntheticSettings(
        model="m",
        model_dir="d",
        split_fractions={"train": 1.0},
        n_spectra=2000,
        seed=3,
        mix=only_long,
        mix_share=0.6,
    )
    plan = plan_splits(peptides, settings)["train"]
    lengths = np.array([len(plan.peptides[i]) for i in plan.order])
    from_mix = plan.charges > 0
    # 60% from the mix (25+ residues, charge 2), the rest from the whole pool with the
    # sampler's charge (0 in the plan), shuffled together
    assert from_mix.sum() == 1200
    assert (lengths[from_mix] >= LENGTH_EDGES[-1]).all()
    assert set(plan.charges[from_mix].tolist()) == {2}
    assert (lengths[~from_mix] < LENGTH_EDGES[-1]).mean() > 0.5
    assert from_mix[:800].mean() == pytest.approx(0.6, abs=0.1)
    # a share of 1 is the plain mix, unchanged
    whole = plan_splits(peptides, SyntheticSettings(**{**settings.__dict__, "mix_share": 1.0}))
    assert (whole["train"].charges == 2).all()
    for share, mix, message in ((0.0, only_long, "mix_share must be"), (0.5, None, "needs a")):
        with pytest.raises(SyntheticInputError, match=message):
            SyntheticSettings(**{**settings.__dict__, "mix": mix, "mix_share": share})


def test_peptide_mix_command_falls_back_below_the_minimum(tmp_path, project_root):
    import polars as pl
    import yaml

    from trm.cli import main

    labels = tmp_path / "labels.parquet"
    peptides = [f"{'A' * n}K" for n in range(6, 16)]
    pl.DataFrame({"peptide": peptides * 2, "charge": [2] * 10 + [3] * 10}).write_parquet(labels)
    instrument = str(project_root / "config/instruments/orbitrap_hcd.yaml")
    shipped = project_root / "resources/peptide_mix/orbitrap_hcd.yaml"
    command = ["peptide-mix", "--labels", str(labels), "--instrument", instrument]
    # 20 distinct peptides and charges: fitted when allowed, else refused or replaced
    assert main([*command, "--out", str(tmp_path / "fit.yaml"), "--min-peptides", "20"]) == 0
    fitted = PeptideMix.read(tmp_path / "fit.yaml")
    assert fitted.counts.sum() == 20 and "20 distinct" in fitted.provenance
    assert main([*command, "--out", str(tmp_path / "none.yaml")]) != 0
    assert not (tmp_path / "none.yaml").exists()
    assert main([*command, "--out", str(tmp_path / "fb.yaml"), "--fallback", str(shipped)]) == 0
    written = yaml.safe_load((tmp_path / "fb.yaml").read_text())
    assert written["probability"] == yaml.safe_load(shipped.read_text())["probability"]
    assert (
        "used instead of a fit" in written["provenance"]
        and "fewer than the 50" in written["provenance"]
    )
