"""trm.noise_model: the unexplained-peak count is not extrapolated past what it was fitted on."""

import numpy as np
import pytest
import torch

from trm.noise_model import log_unexplained_count

COUNT = {
    "precursor_mz_range": [400.0, 1000.0],
    "charge_range": [2, 3],
    "intercept": 3.0,
    "per_precursor_kmz": 1.0,
    "per_charge": 1.5,
    "sd": 0.5,
}


@pytest.mark.parametrize("array", [np.asarray, torch.tensor])
def test_charge_and_precursor_mz_stay_within_the_fitted_ranges(array):
    mz = array([600.0, 600.0, 600.0, 300.0, 2000.0])
    charge = array([2.0, 3.0, 4.0, 2.0, 2.0])
    got = np.asarray(log_unexplained_count(COUNT, mz, charge), dtype=np.float64)
    np.testing.assert_allclose(got[:2], [3.6, 5.1], rtol=1e-6)
    assert got[2] == pytest.approx(got[1])  # charge 4 counts as the highest fitted, 3
    assert got[3] == pytest.approx(3.4, rel=1e-6)  # m/z 300 as 400
    assert got[4] == pytest.approx(4.0, rel=1e-6)  # m/z 2000 as 1000


def test_a_file_without_a_charge_range_is_not_clamped():
    older = {key: value for key, value in COUNT.items() if key != "charge_range"}
    got = log_unexplained_count(older, np.array([600.0, 600.0]), np.array([3.0, 4.0]))
    assert got[1] - got[0] == pytest.approx(1.5)
