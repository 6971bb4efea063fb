"""FID: eigh trace-sqrt against scipy.linalg.sqrtm and closed forms; fid5k_x10 chunking."""

import warnings

import numpy as np
import pytest
import scipy.linalg

from jaxgan.eval import fid


def _random_covariance(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)  # well conditioned: eigenvalues >= 0.5


def _fid_with_sqrtm(mu1, sigma1, mu2, sigma2):
    """The pytorch-fid / TTUR formula (scipy sqrtm of the non-symmetric product)."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("d", [1, 8, 64])
def test_frechet_distance_matches_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    sigma1, sigma2 = _random_covariance(rng, d), _random_covariance(rng, d)
    expected = _fid_with_sqrtm(mu1, sigma1, mu2, sigma2)
    # float64 on both sides (NumPy/SciPy, no XLA): eigh and Schur sqrtm of well-conditioned
    # matrices agree to ~1e-14; 1e-6 is slack for sqrtm, not for CPU-dependent rounding.
    np.testing.assert_allclose(fid.frechet_distance(mu1, sigma1, mu2, sigma2), expected, rtol=1e-6)


def test_frechet_distance_diagonal_closed_form():
    # Commuting (diagonal) covariances: FID = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
        expected, rel=1e-12
    )


def test_feature_statistics_is_float64_unbiased():
    features = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    mu, sigma = fid.feature_statistics(features)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    x = features.astype(np.float64)
    centred = x - x.mean(0)
    np.testing.assert_allclose(sigma, centred.T @ centred / (len(x) - 1), rtol=1e-12)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(1).normal(size=(300, 16))
    assert abs(fid.fid_from_features(features, features)) < 1e-9


def test_fid_from_features_matches_sqrtm_on_samples():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 10))
    b = rng.normal(size=(300, 10)) * 1.3 + 0.2
    expected = _fid_with_sqrtm(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )
    np.testing.assert_allclose(fid.fid_from_features(a, b), expected, rtol=1e-6)


def test_rank_deficient_covariance_stays_finite():
    # N <= D (the TTUR pitfall): eigh with clipping gives a finite, non-negative value, no NaN/complex.
    rng = np.random.default_rng(3)
    with pytest.warns(UserWarning, match="singular"):
        value = fid.fid_from_features(rng.normal(size=(10, 32)), rng.normal(size=(10, 32)) + 1.0)
    assert np.isfinite(value) and value > 0


def test_feature_statistics_errors_and_warnings():
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid.feature_statistics(np.zeros((1, 4)))
    with pytest.warns(UserWarning, match="N=4 samples <= D=4"):
        fid.feature_statistics(np.random.default_rng(0).normal(size=(4, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fid.feature_statistics(np.random.default_rng(0).normal(size=(5, 4)))


def test_fid_chunks_matches_per_chunk_fid():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(160, 4))  # 10 extra rows beyond 3 x 50 are ignored
    fake = rng.normal(size=(150, 4)) + 0.3
    per_chunk = [
        fid.fid_from_features(real[i * 50 : (i + 1) * 50], fake[i * 50 : (i + 1) * 50])
        for i in range(3)
    ]
    mean, std = fid.fid_chunks(real, fake, num_chunks=3, chunk_size=50)
    assert mean == pytest.approx(np.mean(per_chunk), rel=1e-12)
    assert std == pytest.approx(np.std(per_chunk), rel=1e-12)
    assert std > 0


def test_fid_chunks_too_few_samples_names_counts():
    real, fake = np.zeros((100, 2)), np.zeros((149, 2))
    with pytest.raises(ValueError, match=r"need 150 samples per set, got N_real=100, N_fake=149"):
        fid.fid_chunks(real, fake, num_chunks=3, chunk_size=50)
