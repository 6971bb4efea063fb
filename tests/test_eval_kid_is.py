"""KID (unbiased MMD² against a double loop) and Inception Score (closed-form cases)."""

import numpy as np
import pytest

from jaxgan.eval import inception_score as isc
from jaxgan.eval import kid


def test_mmd2_unbiased_matches_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.5
    d, m = x.shape[1], len(x)

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    expected = (xx + yy) / (m * (m - 1)) - 2 * xy / m**2
    assert kid.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-10)


def test_kid_near_zero_for_one_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(600, 8))
    same = rng.normal(size=(600, 8))
    shifted = rng.normal(size=(600, 8)) + 0.5
    same_mean, same_std = kid.kernel_inception_distance(real, same, num_subsets=20, subset_size=200)
    shift_mean, _ = kid.kernel_inception_distance(real, shifted, num_subsets=20, subset_size=200)
    assert shift_mean > 0.1
    assert abs(same_mean) < 0.05 * shift_mean
    assert same_std > 0


def test_kid_clips_subset_size_to_smaller_set():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(60, 3))
    clipped = kid.kernel_inception_distance(real, fake, num_subsets=5, subset_size=1000, seed=3)
    explicit = kid.kernel_inception_distance(real, fake, num_subsets=5, subset_size=40, seed=3)
    assert clipped == explicit
    assert clipped != kid.kernel_inception_distance(
        real, fake, num_subsets=5, subset_size=40, seed=4
    )


def test_kid_errors_on_mismatched_dims():
    with pytest.raises(ValueError, match="same D"):
        kid.kernel_inception_distance(np.zeros((10, 3)), np.zeros((10, 4)))


def test_inception_score_uniform_logits_is_one():
    mean, std = isc.inception_score(np.zeros((100, 1008)))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_inception_score_k_equiprobable_confident_classes_is_k(k):
    labels = np.arange(1000) % k  # every contiguous split holds each class equally often
    logits = np.zeros((1000, 20))
    logits[np.arange(1000), labels] = 60.0  # p(y|x) one-hot up to e^-60
    mean, std = isc.inception_score(logits, splits=10, seed=None)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_shuffles_class_sorted_inputs():
    # Sorted labels: each contiguous split holds one class (IS 1); the seeded shuffle mixes them (§10.7).
    logits = np.zeros((1000, 20))
    logits[np.arange(1000), np.repeat(np.arange(10), 100)] = 60.0
    assert isc.inception_score(logits, seed=None)[0] == pytest.approx(1.0, rel=1e-9)
    assert isc.inception_score(logits, seed=0)[0] > 9.0


def test_inception_score_matches_direct_formula():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(90, 7)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    order = np.random.RandomState(11).permutation(90)
    scores = []
    for part in np.split(p[order], 3):
        py = part.mean(0)
        scores.append(np.exp(np.mean([np.sum(row * np.log(row / py)) for row in part])))
    mean, std = isc.inception_score(logits, splits=3, seed=11)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)
