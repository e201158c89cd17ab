"""Pooling: independent members firm up more together than apart; identical (perfectly correlated) ones do not."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from testbed.domain.fpp.pooling import (
    firm_capacity_from_samples,
    firm_capacity_kw,
    individual_firm_kw,
    pooled_sd_kw,
    pooling_gain,
)

Z95 = NormalDist().inv_cdf(0.95)  # 1.6448536...


def test_independent_members_gain_by_hand():
    # Four members, 5 kW each with a 1 kW forecast error, 95 %:
    # alone each firms 5 - 1.6449 = 3.3551 kW, 13.4206 kW in total;
    # together 20 - 1.6449 * sqrt(4) = 16.7103 kW; gain = 1.6449 * (4 - 2) = 3.2897 kW.
    g = pooling_gain([5, 5, 5, 5], [1, 1, 1, 1], 0.95)
    assert Z95 == pytest.approx(1.6448536, abs=1e-7)
    assert g.sum_individual_firm_kw == pytest.approx(4 * (5 - Z95))
    assert g.pooled_firm_kw == pytest.approx(20 - 2 * Z95)
    assert g.gain_kw == pytest.approx(2 * Z95) and g.gain_kw > 3.28
    assert g.gain_share == pytest.approx(2 * Z95 / (4 * (5 - Z95)))


def test_identical_members_gain_nothing():
    # Perfectly correlated errors: the pooled sd is the sum of the sds, so the pool is the sum of its parts.
    g = pooling_gain([5, 5, 5, 5], [1, 1, 1, 1], 0.95, correlation=1.0)
    assert g.gain_kw == pytest.approx(0.0, abs=1e-12)
    assert g.pooled_firm_kw == pytest.approx(g.sum_individual_firm_kw)


def test_gain_grows_with_diversity():
    gains = [pooling_gain([3, 4, 6], [0.5, 1.0, 1.5], 0.9, correlation=rho).gain_kw for rho in (1.0, 0.5, 0.0)]
    assert gains[0] == pytest.approx(0.0, abs=1e-12) and 0 < gains[1] < gains[2]


def test_a_noisy_member_can_lower_the_pool_and_the_gain_says_so():
    # mean 1 kW, sd 1 kW: alone 1 - 1.645 < 0, so 0; with a 10 kW +- 0.5 kW member the pool firms
    # 11 - 1.645 * sqrt(1.25) = 9.1610 kW against 10 - 0.8224 = 9.1776 kW alone: a small loss, reported as such.
    assert individual_firm_kw([1.0], [1.0], 0.95)[0] == 0.0
    g = pooling_gain([10, 1], [0.5, 1.0], 0.95)
    assert g.pooled_firm_kw == pytest.approx(11 - Z95 * math.sqrt(1.25))
    assert g.gain_kw == pytest.approx(11 - Z95 * math.sqrt(1.25) - (10 - 0.5 * Z95))


def test_correlation_matrix_equals_uniform_rho():
    sd = np.array([0.5, 1.0, 2.0])
    r = np.full((3, 3), 0.3) + 0.7 * np.eye(3)
    assert pooled_sd_kw(sd, r) == pytest.approx(pooled_sd_kw(sd, 0.3))
    with pytest.raises(ValueError, match="positive semi-definite"):
        pooled_sd_kw(sd, np.full((3, 3), -0.9) + 1.9 * np.eye(3))
    with pytest.raises(ValueError, match="symmetric with ones on the diagonal"):
        pooled_sd_kw(sd, np.eye(3) * 2)


def test_gaussian_quantile_agrees_with_scenarios():
    # 50 independent members, 400,000 Gaussian scenarios: the empirical 5 % quantile of the sum is within
    # 0.05 kW of the closed form (its sampling error is ~0.01 kW here).
    rng = np.random.default_rng(3)
    mean = rng.uniform(1, 5, 50)
    sd = rng.uniform(0.1, 1.0, 50)
    samples = mean[:, None] + sd[:, None] * rng.standard_normal((50, 400_000))
    assert firm_capacity_from_samples(samples, 0.95) == pytest.approx(firm_capacity_kw(mean, sd, 0.95), abs=0.05)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"confidence must be in \[0.5, 1\)"):
        firm_capacity_kw([1], [0.1], 1.0)
    with pytest.raises(ValueError, match="sd_kw must be >= 0"):
        firm_capacity_kw([1], [-0.1], 0.9)
    with pytest.raises(ValueError, match="mean_kw has 2 members but sd_kw has 1"):
        firm_capacity_kw([1, 2], [0.1], 0.9)
