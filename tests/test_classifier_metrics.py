"""GAN-train, GAN-test, class-wise FID, the independent Wasserstein critic and the stacked-MNIST
mode count (`jaxgan/eval/classifier_metrics.py`), alone and as evaluator rows.

References: brute-force numpy / scipy for class-wise FID and the mode histogram (PGGAN's
`calc_mnistrgb_histogram` loop written out), the stacked dataset's own labels for the mode count,
chance (1/10) for GAN-test on noise, the real baseline for GAN-train on real images, and the
returned critic re-applied for IW. Classifiers train for CLASSIFIER_STEPS (not the recipe's 1,250)
to keep the tests fast; GAN-train and its baseline use the same count.
"""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest
import scipy.linalg

from jaxgan import data, evaluate
from jaxgan.core import npz_weights
from jaxgan.eval import catalog, classifier_training, features, imagesets, sampling, scoring
from jaxgan.eval import classifier_metrics as cm
from jaxgan.eval.options import Options
from jaxgan.models import classifier, dcgan

CLASSIFIER_STEPS = 100
NUM_SAMPLES = 200  # fakes per checkpoint in the workdir test


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    return Options(
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        classifier_steps=CLASSIFIER_STEPS,
        iw_steps=20,
        iw_width=16,
        progress=False,
    )


@pytest.fixture(scope="module")
def mnist_cnn():
    return features.load("mnist_cnn", 32, 1)


# ----------------------------------------------------------------------------------------------
# Pure functions against brute force.
# ----------------------------------------------------------------------------------------------


def _fid_scipy(a, b):
    """FID with scipy's sqrtm, the textbook formula (pytorch-fid's), as the independent path."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def test_class_fid_is_the_per_class_fid():
    rng = np.random.RandomState(0)
    real_labels, fake_labels = np.repeat(np.arange(3), 60), np.tile(np.arange(3), 50)
    real = rng.normal(size=(180, 4)) + real_labels[:, None]
    fake = rng.normal(scale=1.3, size=(150, 4)) + 0.8 * fake_labels[:, None]
    result = cm.class_fid(real, real_labels, fake, fake_labels, num_classes=4)  # class 3: empty
    expected = [_fid_scipy(real[real_labels == c], fake[fake_labels == c]) for c in range(3)]
    # float64 NumPy/SciPy on both sides (eigh vs Schur sqrtm): ~1e-14 apart; not a float32 bound.
    np.testing.assert_allclose([result["per_class"][c] for c in range(3)], expected, rtol=1e-6)
    assert result["mean"] == pytest.approx(np.mean(expected), rel=1e-6)
    assert result["all"] == pytest.approx(_fid_scipy(real, fake), rel=1e-6)
    assert result["skipped"] == [3] and result["singular"] == []


def test_mode_histogram_is_pggans_loop():
    rng = np.random.RandomState(1)
    classes = rng.randint(0, 37, 500) * 27  # 37 distinct modes of 1000
    # calc_mnistrgb_histogram: counts, the non-empty buckets normalised, KL against 1/1000.
    model = [0.0] * 1000
    for x in classes:
        model[int(x)] += 1.0
    model = np.array([b / len(classes) for b in model if b > 0])
    kl = np.sum(model * np.log(model / np.array([1.0 / 1000] * len(model))))
    assert cm.mode_histogram(classes) == (len(model), pytest.approx(kl, rel=1e-12))
    assert len(model) == len(np.unique(classes))


def test_stacked_mnist_is_pggans_create_mnistrgb():
    split = data.open_source("stacked_mnist5k", "test")
    digits = data.open_source("mnist5k", "test")
    assert (len(split), split.channels, split.num_classes) == (10_000, 3, 1000)
    triples = np.random.RandomState(123).randint(len(digits), size=(10_000, 3))
    images, labels = data.sources.fetch(split, [0, 17, 9999])
    for image, label, (r, g, b) in zip(images, labels, triples[[0, 17, 9999]]):
        for channel, index in enumerate((r, g, b)):
            np.testing.assert_array_equal(image[..., channel], digits.images[index, ..., 0])
        assert label == digits.labels[r] + 10 * digits.labels[g] + 100 * digits.labels[b]
    assert data.parse("stacked_mnist5k") == ("stacked_mnist5k", "", None)


def test_modes_count_stacked_real_digits_and_a_constant_generator(mnist_cnn):
    """The 10,000 stacked test digits cover ~all 1,000 modes, with the KL of their true labels
    (the classifier reads all three digits right 94% of the time); a constant generator covers one
    mode, KL = log(1000)."""
    split = data.open_source("stacked_mnist5k", "test")
    images, labels = split.get_batch(np.arange(len(split)))
    result = cm.stacked_modes(images, mnist_cnn.extract, num_images=10_000, num_evals=1)
    modes, kl = cm.mode_histogram(labels)
    assert modes == 1000 and result["modes"] >= 995
    assert result["kl"] == pytest.approx(kl, abs=0.01)  # ~0.05: 10 draws per mode
    constant = np.repeat(images[:1], 3000, axis=0)
    result = cm.stacked_modes(constant, mnist_cnn.extract, num_images=1000, num_evals=3)
    assert result["per_eval_modes"] == [1, 1, 1]
    assert result["kl"] == pytest.approx(np.log(1000), rel=1e-12)
    with pytest.raises(ValueError, match="need 10,000"):
        cm.stacked_modes(constant, mnist_cnn.extract, num_images=1000, num_evals=10)


def test_modes_row(options, mnist_cnn, tmp_path):
    """Two-set mode: a constant "generator" against stacked test digits; the reals' value is the
    same function on the evaluator's seeded 2,000 of them."""
    split = data.open_source("stacked_mnist5k", "test")
    fakes = tmp_path / "constant.npz"
    np.savez(fakes, images=np.repeat(split.get_batch([5])[0], 2000, axis=0))
    small = dataclasses.replace(options, modes_images=1000, modes_evals=2, num_real=2000)
    (row,) = evaluate.evaluate_sets("stacked_mnist5k:test", str(fakes), ["modes"], small)
    assert row["values"] == {"modes": 1.0, "kl": pytest.approx(np.log(1000), rel=1e-12)}
    order = np.random.RandomState(0).permutation(len(split))[:2000]
    reals = cm.stacked_modes(split.get_batch(order)[0], mnist_cnn.extract, 1000, 2)
    assert row["real_value"] == reals["modes"] and row["details"]["real_kl"] == reals["kl"]
    assert row["details"]["per_eval_modes"] == [1, 1] and row["details"]["num_evals"] == 2


def test_balanced_subset():
    labels = np.repeat(np.arange(10), 400)
    index = cm.balanced_subset(labels, 250, seed=3)
    assert len(np.unique(index)) == 250
    np.testing.assert_array_equal(np.bincount(labels[index]), [25] * 10)
    np.testing.assert_array_equal(index, cm.balanced_subset(labels, 250, seed=3))
    skewed = np.array([0] * 3 + [1] * 50 + [2] * 50)  # class 0 gives all it has
    np.testing.assert_array_equal(
        np.bincount(skewed[cm.balanced_subset(skewed, 30, 0)]), [3, 14, 13]
    )


# ----------------------------------------------------------------------------------------------
# GAN-test, GAN-train, IW.
# ----------------------------------------------------------------------------------------------


def test_gan_test_on_uniform_noise_is_near_chance(mnist_cnn):
    noise = np.random.RandomState(0).randint(0, 256, (2000, 32, 32, 1)).astype(np.uint8)
    accuracy = cm.gan_test(mnist_cnn.extract, noise, cm.balanced_labels(2000, 10))
    assert accuracy == pytest.approx(0.1, abs=0.03)
    test = data.open_source("mnist5k", "test")  # and the shipped accuracy on real test digits
    assert cm.gan_test(mnist_cnn.extract, test.images, test.labels) == pytest.approx(0.98, abs=2e-3)


@pytest.mark.slow
def test_gan_train_on_the_real_train_split_reproduces_the_real_baseline():
    """The real train split standing in for generated data, in the generator's class-interleaved
    order (labels 0, 1, ..., 9, 0, 1, ...): GAN-train is then another run of the baseline's recipe
    on the baseline's images, and matches its accuracy within run-to-run noise."""
    split, test = data.open_source("mnist5k", "train"), data.open_source("mnist5k", "test")
    recipe = classifier_training.RECIPES["mnist5k"]
    baseline = cm.gan_train(
        split.images, split.labels, test.images, test.labels, recipe, steps=CLASSIFIER_STEPS
    )
    rank = np.zeros(len(split), int)  # each image's place among its class's images
    for c in range(10):
        rank[split.labels == c] = np.arange(np.sum(split.labels == c))
    order = np.lexsort((split.labels, rank))
    np.testing.assert_array_equal(split.labels[order], cm.balanced_labels(4000, 10))
    result = cm.gan_train(
        split.images[order],
        split.labels[order],
        test.images,
        test.labels,
        recipe,
        steps=CLASSIFIER_STEPS,
    )
    assert baseline["accuracy"] > 0.85  # 100 steps of the recipe already learn digits
    assert result["accuracy"] == pytest.approx(baseline["accuracy"], abs=0.025)


def test_split_metrics_need_a_dataset(options, tmp_path):
    reals = tmp_path / "reals.npz"
    np.savez(reals, images=np.zeros((4, 32, 32), np.uint8), labels=np.arange(4))
    with pytest.raises(ValueError, match="is not a dataset"):
        evaluate.evaluate_sets(str(reals), "mnist5k:test", ["gan_test"], options)


@pytest.mark.slow
def test_iw_reports_the_critic_gap_and_separates_noise_from_digits():
    """IW is E D(real B) - E D(fake B) of the critic it trained (re-applied here); on noise it is
    far larger than between two halves of real digits."""
    test, digits = data.open_source("mnist5k", "test"), data.open_source("mnist5k", "train")
    noise = np.random.RandomState(0).randint(0, 256, (1000, 32, 32, 1)).astype(np.uint8)
    args = dict(seed=0, steps=40, width=16, batch_size=32)
    result = cm.independent_wasserstein(
        test.images[:500], noise[:500], test.images[500:], noise[500:], **args
    )
    critic = dcgan.Critic(resolution=32, width=16, norm="none")
    score = lambda x: np.asarray(
        critic.apply({"params": result["params"]}, data.to_float(x, jax.random.key(0)))[0]
    )
    expected = score(test.images[500:]).mean() - score(noise[500:]).mean()
    # The float32 critic applied by two programs: ~1e-6 of |D| per score, against a gap of |D|.
    assert result["iw"] == pytest.approx(float(expected), rel=1e-4)
    real = cm.independent_wasserstein(
        test.images[:500], digits.images[:500], test.images[500:], digits.images[500:1000], **args
    )
    assert result["iw"] > 1.0 and abs(real["iw"]) < 0.1 * result["iw"]


# ----------------------------------------------------------------------------------------------
# The evaluator on a conditional run.
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conditional_run(make_smoke_run):
    """A 3-step conditional `:smoke` run (AC-GAN: conditional BN generator + AC head)."""
    return make_smoke_run("conditional_run", conditional_generator=True, ac_head=True)


@pytest.mark.slow
def test_conditional_run_rows_equal_the_functions(conditional_run, options, mnist_cnn):
    workdir, config = conditional_run
    metrics = ["gan_train", "gan_test", "class_fid", "iw"]
    steps = 20  # a 3-step GAN's fakes teach nothing: what is tested is which images go where
    small = dataclasses.replace(
        options, num_samples=NUM_SAMPLES, num_real=400, batch_size=100, classifier_steps=steps
    )
    rows = evaluate.evaluate_workdir(workdir, metrics, small, steps="latest")
    by = {(r["kind"], r["metric"]): r for r in rows}
    # Baselines: gan_test on the test split is the real classifier's own accuracy; gan_train and
    # iw have none (they would train and test on one split).
    assert set(by) == {("checkpoint", m) for m in metrics} | {
        ("real_vs_real", "gan_test"),
        ("real_vs_real", "class_fid"),
    }
    fakes, labels, step = sampling.sample_checkpoint(workdir, config, "latest", NUM_SAMPLES, 0, 100)
    assert step == 3
    np.testing.assert_array_equal(labels, np.arange(NUM_SAMPLES) % 10)
    splits = imagesets.real_splits("mnist5k", None, 32, 1, small)
    recipe = classifier_training.RECIPES["mnist5k"]
    gan_train = cm.gan_train(
        fakes, labels, splits.test.images, splits.test.labels, recipe, steps=steps
    )
    row = by["checkpoint", "gan_train"]
    assert row["value"] == pytest.approx(gan_train["accuracy"], abs=2e-3)
    assert row["n_fake"] == NUM_SAMPLES and row["details"]["classifier"]["steps"] == steps
    predict = classifier_training.make_predictor(
        classifier.get("mnist_cnn"),
        npz_weights.unflatten(_cached_classifier(small.cache_dir, steps)),
    )
    assert by["checkpoint", "gan_test"]["value"] == pytest.approx(
        cm.gan_test(predict, fakes, labels), abs=1.5 / NUM_SAMPLES
    )
    source = data.open_source("mnist5k", "train")  # the evaluator's reference: 400, seeded order
    order = np.random.RandomState(0).permutation(len(source))[:400]
    real, real_labels = source.images[order], source.labels[order]
    expected = cm.class_fid(
        mnist_cnn.extract(real)["features"],
        real_labels,
        mnist_cnn.extract(fakes)["features"],
        labels,
        10,
    )
    row = by["checkpoint", "class_fid"]
    # Singular per-class covariances: the trace sqrt has infinite slope at zero eigenvalues, so
    # float32 feature rounding (2^-24) can move FID by ~sqrt(2^-24) = 2.4e-4 relative, not 1e-7.
    assert row["value"] == pytest.approx(expected["mean"], rel=1e-3)
    assert row["values"]["all"] == pytest.approx(expected["all"], rel=1e-3)
    assert row["values"]["class_7"] == pytest.approx(expected["per_class"][7], rel=1e-3)
    assert row["feature_network"] == "mnist_cnn" and row["details"]["singular"] == list(range(10))
    # The real baseline both classifier rows carry: the real classifier on the whole test split.
    baseline = classifier_training.accuracy(
        predict(splits.test.images)["logits"], splits.test.labels
    )
    assert by["checkpoint", "gan_train"]["real_value"] == baseline > 0.5
    assert by["checkpoint", "gan_test"]["real_value"] == baseline
    iw = by["checkpoint", "iw"]  # halves of the test split, halves of the fakes
    assert (iw["details"]["n_real_train"], iw["details"]["n_fake_eval"]) == (500, NUM_SAMPLES // 2)
    assert np.isfinite(iw["value"]) and iw["details"]["steps"] == options.iw_steps
    assert os.path.getsize(os.path.join(workdir, "eval", "gan_train.png")) > 1000


def _cached_classifier(cache_dir, steps):
    """The real classifier the evaluator trained for `steps` steps, read from its cache file."""
    for name in os.listdir(cache_dir):
        if name.startswith("mnist5k_train-classifier-"):
            with np.load(os.path.join(cache_dir, name)) as stored:
                if json.loads(str(stored["__key__"]))["steps"] == steps:
                    return {k: stored[k] for k in stored.files if k != "__key__"}
    raise AssertionError(f"no cached classifier of {steps} steps in {os.listdir(cache_dir)}")


def test_labelled_metrics_need_a_conditional_generator(options):
    def check(name, n_fake, labelled, channels=None):
        metrics = catalog.parse([name])
        scoring.check_metric_inputs(metrics, 60_000, {name: n_fake}, labelled, options, channels)

    for metric in ("gan_train", "gan_test", "class_fid"):
        with pytest.raises(ValueError, match="config.model.conditional_generator=True"):
            check(metric, 4000, False)
    with pytest.raises(ValueError, match="at least 256,000 fakes"):
        check("modes", 10_000, False, 3)
    with pytest.raises(ValueError, match="3 channels"):
        check("modes", 300_000, False, 1)
    check("modes", 256_000, False, 3)
