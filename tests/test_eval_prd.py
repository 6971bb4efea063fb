"""Improved precision/recall against a brute-force computation."""

import numpy as np
import pytest

from jaxgan.eval import prd


def _brute_force(real, fake, k):
    def radii(x):
        return np.array([sorted(np.linalg.norm(x - row, axis=1))[k] for row in x])

    def inside(probes, centres, r):
        return np.mean(
            [any(np.linalg.norm(p - c) <= rc for c, rc in zip(centres, r)) for p in probes]
        )

    return {"precision": inside(fake, real, radii(real)), "recall": inside(real, fake, radii(fake))}


def test_knn_radii_blocked_matches_full_sort():
    x = np.random.default_rng(0).normal(size=(23, 4))
    full = np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1), axis=1)[:, 3]
    np.testing.assert_allclose(prd.knn_radii(x, k=3, block_size=5), full, rtol=1e-10)


@pytest.mark.parametrize("block_size", [4, 7, 1000])
def test_precision_recall_matches_brute_force(block_size):
    rng = np.random.default_rng(1)
    real = rng.normal(size=(30, 3))
    fake = rng.normal(size=(25, 3)) * 1.5 + 0.7
    result = prd.precision_recall(real, fake, k=3, block_size=block_size)
    expected = _brute_force(real, fake, 3)
    assert result == pytest.approx(expected, abs=1e-12)
    assert 0 < result["precision"] < 1 and 0 < result["recall"] < 1


def test_identical_sets_give_one():
    x = np.random.default_rng(2).normal(size=(40, 8))
    assert prd.precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}


def test_far_apart_sets_give_zero():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 100.0
    assert prd.precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}


def test_argument_order_mode_collapse_has_high_precision_low_recall():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(200, 2))
    fake = real[:5][rng.integers(0, 5, 200)] + 1e-3 * rng.normal(
        size=(200, 2)
    )  # collapsed onto 5 reals
    result = prd.precision_recall(real_features=real, fake_features=fake)
    assert result["precision"] == 1.0
    assert result["recall"] < 0.2


def test_too_few_samples_for_k():
    with pytest.raises(ValueError, match="more than k samples"):
        prd.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
