"""DCGAN's representation experiment (jaxgan/experiments/dcgan_features.py) and the latent-space pictures
(jaxgan/interpolate.py) of a DCGAN run: features against numpy, the SVM and k-means baselines
against hand computations, walks and arithmetic against the generator's own images."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import interpolate
from jaxgan.core import errors
from jaxgan.experiments import dcgan_features
from jaxgan.models import dcgan


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    """`dcgan:smoke` (BatchNorm in both networks), trained on one device."""
    from jaxgan.configs import dcgan as dcgan_config
    from jaxgan.training import loop

    config = dcgan_config.get_config("smoke")
    config.tensorboard, config.num_devices = False, 1
    workdir = str(tmp_path_factory.mktemp("dcgan_run"))
    loop.train_and_evaluate(config, workdir)
    return workdir


def _tiny_critic(seed=0):
    critic = dcgan.Critic(resolution=16, width=2, norm="batch")
    params = critic.init(jax.random.key(seed), jnp.zeros((1, 16, 16, 1)))["params"]
    # Away from the init's scale 1 / offset 0, so that frozen statistics are visibly applied.
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape), params)
    return critic, {"params": params}


def _images(n, seed, size=16):
    return np.random.RandomState(seed).randint(0, 256, (n, size, size, 1)).astype(np.uint8)


def _max_pool_loops(x, grid=4):
    """numpy, one window at a time: [N, H, W, C] -> [N, grid, grid, C]."""
    n, h, w, c = x.shape
    if h <= grid:
        return x
    k = h // grid
    out = np.empty((n, grid, grid, c), x.dtype)
    for i in range(grid):
        for j in range(grid):
            out[:, i, j] = x[:, i * k : (i + 1) * k, j * k : (j + 1) * k].max(axis=(1, 2))
    return out


@pytest.mark.slow
def test_critic_features_are_every_block_max_pooled_to_4x4_and_concatenated():
    critic, variables = _tiny_critic()
    images = _images(6, 0)
    statistics, features = dcgan_features.make_critic_features(critic)
    # Statistics frozen from the same batch: the critic exactly as it runs in training.
    got = np.asarray(features(variables, statistics(variables, images), images))
    x = images.astype(np.float32) / 127.5 - 1.0
    _, state = critic.apply(variables, x, mutable=["intermediates"])
    maps = [np.asarray(m) for m in state["intermediates"]["features"]]
    assert [m.shape for m in maps] == [(6, 8, 8, 2), (6, 4, 4, 4)]
    expected = np.concatenate([_max_pool_loops(m).reshape(6, -1) for m in maps], axis=1)
    assert got.shape == (6, 4 * 4 * 2 + 4 * 4 * 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_frozen_statistics_make_an_images_features_its_own():
    critic, variables = _tiny_critic()
    statistics, features = dcgan_features.make_critic_features(critic)
    reference = _images(50, 1)
    frozen = statistics(variables, reference)
    assert sorted(frozen) == ["Norm1"]
    mean, var = (np.asarray(s) for s in frozen["Norm1"])
    assert mean.shape == var.shape == (4,) and (var > 0).all()
    one, others = _images(1, 2), _images(7, 3)
    alone = np.asarray(features(variables, frozen, np.concatenate([one, np.zeros_like(others)])))
    with_others = np.asarray(features(variables, frozen, np.concatenate([one, others])))
    np.testing.assert_allclose(alone[0], with_others[0], rtol=1e-6, atol=1e-7)
    # ...while with the batch's own statistics it would not be.
    own = np.asarray(
        features(
            variables,
            statistics(variables, np.concatenate([one, others])),
            np.concatenate([one, others]),
        )
    )
    assert np.abs(own[0] - with_others[0]).max() > 1e-3


def test_map_batches_pads_and_trims_on_the_test_mesh():
    from jaxgan.core import parallel

    images = _images(13, 4)
    out = dcgan_features.map_batches(
        lambda x: x.reshape(x.shape[0], -1).astype(jnp.float32).sum(axis=1, keepdims=True),
        images, 4, parallel.make_mesh(),
    )  # fmt: skip
    np.testing.assert_array_equal(out[:, 0], images.reshape(13, -1).astype(np.float32).sum(axis=1))


def test_the_svm_separates_linearly_separable_features():
    rng = np.random.RandomState(0)
    centres = 6.0 * rng.randn(4, 20)
    draw = lambda n: (lambda y: (centres[y] + rng.randn(n, 20), y))(rng.randint(0, 4, n))  # noqa: E731
    result = dcgan_features.linear_svm(*draw(80), *draw(40), *draw(200))
    assert result["accuracy"] == 1.0 and result["validation_accuracy"] == 1.0
    assert result["C"] == min(dcgan_features.C_GRID)  # ties go to the smallest C
    assert result["converged"]
    # Shuffled labels: nothing to learn, near chance (4 classes).
    x, y = draw(200)
    shuffled = dcgan_features.linear_svm(
        x[:120], rng.permutation(y[:120]), x[120:160], y[120:160], x[160:], y[160:]
    )
    assert shuffled["accuracy"] < 0.6


def test_the_svm_solver_finds_liblinears_solution():
    """The same objective as scikit-learn's LinearSVC (squared hinge, one-vs-rest, the bias
    regularised): liblinear to a tight tolerance and our L-BFGS reach the same weights, float64."""
    from sklearn.svm import LinearSVC

    rng = np.random.RandomState(0)
    x, y = rng.randn(300, 20), rng.randint(0, 3, 300)
    x[:, :3] += 1.5 * np.eye(3)[y]  # classes that overlap: many margins are active
    design = np.concatenate([x, np.ones((300, 1))], axis=1)
    targets = np.where(y[:, None] == np.arange(3), 1.0, -1.0)
    for c in (1e-3, 0.1, 1.0):
        reference = LinearSVC(C=c, dual=False, tol=1e-10, max_iter=100_000).fit(x, y)
        expected = np.concatenate([reference.coef_.T, reference.intercept_[None]])
        with jax.enable_x64(True):
            weights, iterations = dcgan_features.fit_svm_weights(
                jnp.asarray(design), jnp.asarray(targets), jnp.asarray(c),
                jnp.zeros((21, 3)), tolerance=1e-10, max_iterations=5000,
            )  # fmt: skip
        assert int(iterations) < 5000
        np.testing.assert_allclose(
            np.asarray(weights), expected, atol=1e-6 * np.abs(expected).max()
        )


def test_kmeans_features_against_a_hand_computation():
    """A 7x7 image, 6x6 patches: 2x2 positions, one per quadrant."""
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (1, 7, 7, 1)).astype(np.uint8)
    d, k = 36, 3
    mean = rng.randn(d).astype(np.float32) * 0.1
    whitening = (np.eye(d) + 0.05 * rng.randn(d, d)).astype(np.float32)
    centroids = rng.randn(k, d).astype(np.float32)
    got = np.asarray(dcgan_features.kmeans_features(image, mean, whitening, centroids))
    expected = np.zeros(4 * k)
    for quadrant, (y, x) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        patch = image[0, y : y + 6, x : x + 6, 0].astype(np.float64).reshape(-1)
        patch = (patch - patch.mean()) / np.sqrt(patch.var(ddof=1) + 10.0)
        white = (patch - mean) @ whitening
        z = np.array([np.sqrt(np.sum((white - c) ** 2)) for c in centroids])
        expected[quadrant * k : (quadrant + 1) * k] = np.maximum(z.mean() - z, 0.0)
    assert got.shape == (1, 4 * k)
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-4)


def test_quadrants_split_as_matlab_rounds_and_patches_are_row_column_channel():
    codes = jnp.arange(1 * 3 * 3 * 1, dtype=jnp.float32).reshape(1, 3, 3, 1)
    # round(3 / 2) = 2: rows/columns {0, 1} and {2}.
    np.testing.assert_array_equal(
        dcgan_features.quadrant_sums(codes)[0], [0 + 1 + 3 + 4, 2 + 5, 6 + 7, 8]
    )
    images = jnp.arange(1 * 3 * 3 * 2, dtype=jnp.float32).reshape(1, 3, 3, 2)
    patches = dcgan_features.image_patches(images, size=2)
    assert patches.shape == (1, 2, 2, 8)
    np.testing.assert_array_equal(patches[0, 1, 0], np.asarray(images[0, 1:3, 0:2, :]).reshape(-1))


def test_zca_whitening_flattens_the_spectrum_as_the_reference():
    rng = np.random.RandomState(0)
    patches = rng.randn(5000, 6) @ rng.randn(6, 6)
    mean, whitening = dcgan_features.fit_whitening(patches)
    covariance = np.cov(patches, rowvar=False)
    eigenvalues = np.linalg.eigvalsh(covariance)
    whitened = np.cov((patches - mean) @ whitening, rowvar=False)
    # W C W = V diag(λ / (λ + 0.1)) Vᵀ: eigenvalues λ / (λ + ε), symmetric W (ZCA, not PCA).
    np.testing.assert_allclose(
        np.linalg.eigvalsh(whitened), eigenvalues / (eigenvalues + 0.1), rtol=1e-4
    )
    np.testing.assert_allclose(whitening, whitening.T, atol=1e-6)


def test_labelled_split_holds_out_a_fixed_balanced_validation_set():
    labels = np.repeat(np.arange(10), 50)
    held_out, labelled = dcgan_features.labelled_split(labels, 100, 30, seed=0)
    assert len(set(held_out) & set(labelled)) == 0
    assert np.bincount(labels[held_out]).tolist() == [10] * 10
    assert np.bincount(labels[labelled]).tolist() == [3] * 10
    held_out_2, labelled_2 = dcgan_features.labelled_split(labels, 100, 30, seed=1)
    np.testing.assert_array_equal(held_out, held_out_2)
    assert set(labelled) != set(labelled_2)
    _, everything = dcgan_features.labelled_split(labels, 100, 0, seed=0)
    assert len(everything) == 400
    with pytest.raises(errors.ConfigError, match="only 400 train images remain"):
        dcgan_features.labelled_split(labels, 100, 401, seed=0)


def test_svm_fits_plan_one_extraction_per_seed_only_for_the_random_critic():
    fits = dcgan_features.svm_fits
    # Trained features: one extraction (seed 0), every seed's draw of 20 labels, one all-label fit.
    assert fits("dcgan", (20, 0), (0, 1, 2)) == [(0, 20, 0), (0, 20, 1), (0, 20, 2), (0, 0, 0)]
    # The random critic: one critic per seed, its own draw; all labels only for the first.
    assert fits("random_critic", (20, 0), (0, 1)) == [(0, 20, 0), (0, 0, 0), (1, 20, 1)]
    assert fits("pixels", (0,), (3, 4)) == [(3, 0, 3)]


@pytest.mark.slow
def test_the_experiment_on_a_dcgan_run(dcgan_run):
    # 40 train images per class (400), all 1,000 test images.
    table = dcgan_features.dcgan_features(
        dcgan_run, "mnist5k:n=40", labels=(20, 0), label_seeds=(0, 1), validation=100,
        kmeans_centroids=4,
    )  # fmt: skip
    rows = {(r["features"], r["labels"]): r for r in table["rows"]}
    assert set(rows) == {(f, n) for f in dcgan_features.FEATURE_SETS for n in (20, 300)}
    # The smoke critic at 32x32, width w: 16x16xw, 8x8x2w, 4x4x4w blocks -> 4x4 x 7w.
    width = json.load(open(os.path.join(dcgan_run, "config.json")))["model"]["d_width"]
    assert rows[("dcgan", 20)]["dims"] == 16 * 7 * width
    assert rows[("kmeans", 20)]["dims"] == 16 and rows[("pixels", 20)]["dims"] == 1024
    assert len(rows[("dcgan", 20)]["per_seed"]) == 2 and len(rows[("dcgan", 300)]["per_seed"]) == 1
    # The random critic is initialised per seed (one draw of 20 labels each); all labels: one fit.
    assert [r["seed"] for r in rows[("random_critic", 20)]["per_seed"]] == [0, 1]
    assert len(rows[("random_critic", 300)]["per_seed"]) == 1
    for row in table["rows"]:
        assert row["accuracy_min"] <= row["accuracy_mean"] <= row["accuracy_max"]
    # Raw pixels with 300 labels classify MNIST far above chance.
    assert rows[("pixels", 300)]["accuracy_mean"] > 0.6
    stem = os.path.join(dcgan_run, "eval", "dcgan_features_mnist5k_n40")
    with open(stem + ".json") as f:
        assert json.load(f)["rows"] == table["rows"]
    assert f"| dcgan | {16 * 7 * width} |" in open(stem + ".md").read()
    assert Image.open(stem + ".png").size == (640, 400)


def test_the_experiment_refuses_a_run_without_a_dcgan_critic(tmp_path):
    import ml_collections

    config = ml_collections.ConfigDict({"method": "progressive", "model": {"name": "progan"}})
    with pytest.raises(errors.ConfigError, match="DCGAN critic"):
        dcgan_features._load_critic(str(tmp_path), config, "latest", 1, 0)


# ----------------------------------------------------------------------------------------------
# Latent walks and arithmetic (jaxgan/interpolate.py) on the same run.
# ----------------------------------------------------------------------------------------------


def test_slerp_and_lerp_between_two_latents():
    rng = np.random.RandomState(0)
    a, b = rng.randn(16), rng.randn(16)
    for space in ("slerp", "lerp"):
        path = interpolate.interpolate_latents(a, b, 5, space)
        np.testing.assert_allclose(path[0], a, rtol=1e-6)
        np.testing.assert_allclose(path[-1], b, rtol=1e-6)
    np.testing.assert_allclose(
        interpolate.interpolate_latents(a, b, 3, "lerp")[1], (a + b) / 2, rtol=1e-6
    )
    path = interpolate.interpolate_latents(a, b, 5, "slerp").astype(np.float64)
    # On the great circle: norms interpolate linearly, the angle to a grows linearly.
    norms = np.linalg.norm(path, axis=1)
    np.testing.assert_allclose(
        norms, np.linspace(np.linalg.norm(a), np.linalg.norm(b), 5), rtol=1e-6
    )
    cos = path @ a / (norms * np.linalg.norm(a))
    omega = np.arccos(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    np.testing.assert_allclose(np.arccos(np.clip(cos, -1, 1)), np.linspace(0, omega, 5), atol=1e-5)


def test_generator_images_are_their_latents_own(dcgan_run):
    generator = interpolate.CheckpointGenerator(dcgan_run, batch_size=8)
    assert generator._frozen  # the DCGAN generator's BatchNorm layers
    z = generator.latents(12, seed=0)
    labels = generator.labels(np.arange(12))
    together = generator(z, labels)
    alone = generator(z[5:6], labels[5:6])
    np.testing.assert_allclose(alone[0], together[5], atol=1e-5)
    assert together.shape == (12, 32, 32, 1) and np.abs(together).max() <= 1.0


def test_the_numbered_grid(dcgan_run, tmp_path):
    path = interpolate.make_grid_picture(dcgan_run, out=str(tmp_path / "g.png"), count=10, zoom=1)
    picture = np.asarray(Image.open(path))
    assert picture.shape == (3 * 34 + 2, 4 * 34 + 2, 3)  # 4 columns, RGB for the white numbers
    generator = interpolate.CheckpointGenerator(dcgan_run)
    from jaxgan.core import run_files

    tile = run_files.to_uint8(generator(generator.latents(10, 0), generator.labels(range(10))))
    # Tile 9 (row 2, column 1) below its number's box equals the generator's image of latent 9.
    np.testing.assert_array_equal(picture[70 + 16 : 70 + 32, 36:68, 0], tile[9, 16:, :, 0])


def test_walk_endpoints_are_the_grid_images_of_their_latents(dcgan_run, tmp_path):
    generator = interpolate.CheckpointGenerator(dcgan_run)
    z = generator.latents(64, seed=0)
    ends = generator(z[[3, 17]], generator.labels([3, 17]))
    png, gif = interpolate.make_walk(
        dcgan_run, [(3, 17)], out=str(tmp_path / "walk.png"), steps=5, zoom=1
    )
    strip = np.asarray(Image.open(png))
    tiles = [strip[2:34, 2 + 34 * t : 34 + 34 * t] for t in range(5)]
    from jaxgan.core import run_files

    np.testing.assert_array_equal(tiles[0], run_files.to_uint8(ends[0])[..., 0])
    np.testing.assert_array_equal(tiles[-1], run_files.to_uint8(ends[1])[..., 0])
    assert np.abs(tiles[0].astype(int) - tiles[2]).mean() > 0.5  # the walk does move
    animation = Image.open(gif)
    assert animation.n_frames == 5 + 3 and animation.info["loop"] == 0  # forward, then back


def test_arithmetic_is_mean_a_minus_mean_b_plus_mean_c(dcgan_run, tmp_path):
    z = np.random.RandomState(0).randn(10, 4)
    result, means = interpolate.concept_arithmetic(z, [0, 1, 2], [3, 4, 5], [6, 7, 8])
    np.testing.assert_allclose(means[1], z[3:6].mean(axis=0))
    np.testing.assert_allclose(result, z[0:3].mean(0) - z[3:6].mean(0) + z[6:9].mean(0))
    path = interpolate.make_arithmetic(
        dcgan_run, [0, 1, 2], [3, 4, 5], [6, 7, 8], out=str(tmp_path / "a.png"), zoom=1
    )
    picture = np.asarray(Image.open(path))
    # Three columns of 4 tiles (34 px each + 2) and a 3x3 block, with 12 px signs between.
    assert picture.shape == (4 * 34 + 2, 3 * 36 + 3 * 34 + 2 + 3 * 12)
    generator = interpolate.CheckpointGenerator(dcgan_run)
    zs = generator.latents(64, seed=0)
    exact, _ = interpolate.concept_arithmetic(zs, [0, 1, 2], [3, 4, 5], [6, 7, 8])
    from jaxgan.core import run_files

    centre = run_files.to_uint8(generator(exact[None], generator.labels([6]))[0])[..., 0]
    left = 3 * 36 + 3 * 12 + 34 + 2
    np.testing.assert_array_equal(picture[36:68, left : left + 32], centre)
    with pytest.raises(errors.ConfigError, match="grid indices from 0 to 63"):
        interpolate.make_arithmetic(dcgan_run, [0], [64], [1])


@pytest.mark.slow
def test_a_translation_run_has_no_latents(translation_run):
    with pytest.raises(errors.ConfigError, match="jaxgan.translate"):
        interpolate.CheckpointGenerator(translation_run[0])
