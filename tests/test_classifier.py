"""The classifier home (`jaxgan/models/classifier.py`) and the shipped MNIST feature network.

`SHIPPED_TEST_ACCURACY` is the last line `scripts/train_mnist_classifier.py` printed when it wrote
`jaxgan/assets/mnist_cnn.npz`. If the script or the preset changes, re-run it (~2 minutes on
2 CPU cores) and update the number here.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import data
from jaxgan.eval import classifier_training, features
from jaxgan.models import classifier
from jaxgan.training import benchmark

SHIPPED_TEST_ACCURACY = 0.9800  # "test accuracy: 0.9800", python scripts/train_mnist_classifier.py


@pytest.fixture(scope="module")
def shipped(classifier_script):
    script = classifier_script
    model = classifier.get(script.PRESET)  # the script's model definition loads the file
    params, info = classifier.load_params(features.mnist_cnn_weights_path(), model)
    return model, params, info


def test_shipped_weights_reach_the_printed_test_accuracy(shipped):
    model, params, info = shipped
    test = data.open_source("mnist5k", "test")
    logits = classifier_training.make_predictor(model, params)(test.images)["logits"]
    # 1,000 test images: a one-image flip from float rounding on another machine is 0.001.
    assert classifier_training.accuracy(logits, test.labels) == pytest.approx(
        SHIPPED_TEST_ACCURACY, abs=1.5e-3
    )
    assert info["test_accuracy"] == pytest.approx(SHIPPED_TEST_ACCURACY, abs=5e-5)
    assert info["preset"] == "mnist_cnn" and info["dataset"] == "mnist5k"
    assert os.path.getsize(features.mnist_cnn_weights_path()) < 1_000_000


def test_shipped_weights_are_the_preset_and_nothing_else(shipped, tmp_path):
    _, params, _ = shipped
    assert benchmark.count_params(params) == 155_786
    other = classifier.MnistCNN(widths=(8, 16, 32))
    with pytest.raises(ValueError, match="does not match the MnistCNN definition"):
        classifier.load_params(features.mnist_cnn_weights_path(), other)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a jaxgan classifier file"):
        classifier.load_params(foreign, other)


def test_save_load_round_trip(shipped, tmp_path):
    model, params, _ = shipped
    path = tmp_path / "cnn.npz"
    classifier.save_params(path, params, {"preset": "mnist_cnn", "test_accuracy": 0.5})
    loaded, info = classifier.load_params(path, model)
    assert info == {"preset": "mnist_cnn", "test_accuracy": 0.5}
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_random_translate_is_a_shifted_crop():
    rng = np.random.RandomState(0)
    images = rng.randint(1, 256, (6, 8, 8, 1)).astype(np.uint8)
    key = jax.random.key(1)
    shifted = np.asarray(classifier_training.random_translate(key, images, pad=2))
    # The same offsets the function draws: (dy, dx) in [0, 4] of the zero-padded image.
    offsets = np.asarray(jax.random.randint(key, (6, 2), 0, 5))
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for image, out, (dy, dx) in zip(padded, shifted, offsets):
        np.testing.assert_array_equal(out, image[dy : dy + 8, dx : dx + 8])
    assert len({tuple(o) for o in offsets}) > 1


@pytest.mark.slow
def test_train_step_fits_a_batch():
    """The pure step learns: 20 Adam steps on one batch of 32 digits drive the loss below 0.1."""
    model = classifier.get("mnist_cnn")
    train = data.open_source("mnist5k", "train")
    index = np.random.RandomState(0).choice(len(train), 32, replace=False)
    images, labels = train.images[index], train.labels[index]
    # An 'rbg' key: XLA:CPU compiles threefry weight draws slowly (gan.create_state's note).
    params = classifier.init_params(model, jax.random.key(0, impl="rbg"), 32, 1)
    tx = optax.adam(3e-3)
    opt_state = tx.init(params)
    step = jax.jit(classifier_training.make_train_step(model, tx))
    first = None
    for i in range(20):
        params, opt_state, metrics = step(params, opt_state, images, labels, jax.random.key(i))
        first = first if first is not None else float(metrics["loss"])
    assert first > 1.5  # ~log(10) at initialisation
    assert float(metrics["loss"]) < 0.1
    logits = classifier_training.make_predictor(model, params)(images)["logits"]
    assert classifier_training.accuracy(logits, labels) == 1.0


# ----------------------------------------------------------------------------------------------
# The recipes and train_classifier (one training loop for the script, GAN-train and baselines).
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_classifier_is_the_scripts_loop():
    """`train_classifier` with the mnist5k recipe equals the loop the script used to hold (the one
    that wrote the shipped file), written out here: same batches, init, optimiser and keys."""
    steps, seed = 5, 3
    split = data.open_source("mnist5k", "train")
    recipe = classifier_training.RECIPES["mnist5k"]
    got = classifier_training.train_classifier(
        split.images, split.labels, recipe, seed, steps=steps
    )

    model = classifier.MnistCNN()
    tx = optax.adamw(optax.cosine_decay_schedule(1e-3, steps), weight_decay=1e-4)
    params = classifier.init_params(model, jax.random.key(seed), 32, 1)
    opt_state = tx.init(params)
    step_fn = jax.jit(
        classifier_training.make_train_step(
            model, tx, lambda key, x: classifier_training.random_translate(key, x, pad=2)
        )
    )
    batches = data.Batches(split, 64, 32, 1, seed=seed)
    key = jax.random.key(seed + 1)
    for step in range(steps):
        batch = next(batches)
        params, opt_state, _ = step_fn(
            params, opt_state, batch["image"][0], batch["label"][0], jax.random.fold_in(key, step)
        )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert recipe.steps == 20 * len(split) // 64  # the shipped file's --epochs=20


def _resnet32_param_count(width=16, blocks=5, classes=10, in_channels=3):
    """resnet_tf_models.py's CifarModel(32) by hand: conv weights (no biases), BN scale + offset,
    a 1x1 projection in the first block of every stage, the final BN and the dense logits."""
    count = 9 * in_channels * width
    channels = width
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks):
            count += 2 * channels + 9 * channels * filters + 2 * filters + 9 * filters * filters
            count += channels * filters if block == 0 else 0
            channels = filters
    return count + 2 * channels + channels * classes + classes


def test_resnet32_is_the_reference_architecture():
    model = classifier.get("resnet32")
    shapes = classifier.expected_shapes(model, 32, 3)
    params = {k: v for k, v in shapes.items() if k.startswith("params/")}
    stats = {k: v for k, v in shapes.items() if k.startswith("batch_stats/")}
    assert sum(int(np.prod(s)) for s in params.values()) == _resnet32_param_count() == 466_970
    # BN running mean and variance of every BN layer: a block's BN0 normalises its input
    # (the previous stage's width in a stage's first block), BN1 its own width; then the final BN.
    inputs = [16] * 6 + [32] * 5 + [64] * 4
    widths = [16] * 5 + [32] * 5 + [64] * 5
    assert sum(int(np.prod(s)) for s in stats.values()) == 2 * (sum(inputs + widths) + 64)
    assert shapes["params/Stage1Block0/Projection/kernel"] == (1, 1, 16, 32)
    assert shapes["params/Stage0Block0/Projection/kernel"] == (1, 1, 16, 16)
    assert "params/Stage0Block1/Projection/kernel" not in shapes
    out = jax.eval_shape(
        lambda: model.apply(
            classifier.init_params(model, jax.random.key(0), 32, 3), np.zeros((2, 32, 32, 3))
        )
    )
    assert out["features"].shape == (2, 64) and out["logits"].shape == (2, 10)


def test_cifar10_recipe_schedule_is_tf_piecewise_constant():
    """lr(step) = 0.1 up to and including step 32,031, 0.01 up to 48,046, then 0.001: TF's
    `piecewise_constant(step, [32031, 48046], [0.1, 0.01, 0.001])`."""
    recipe = classifier_training.RECIPES["cifar10"]
    assert (recipe.steps, recipe.batch_size, recipe.weight_decay) == (64_000, 128, 2e-4)
    assert recipe.boundaries == (int(50_000 / 128 * 82), int(50_000 / 128 * 123))
    schedule = classifier_training.learning_rate_schedule(recipe)
    steps = np.array([0, 1, 32_030, 32_031, 32_032, 48_046, 48_047, 63_999])
    expected = np.where(steps <= 32_031, 0.1, np.where(steps <= 48_046, 0.01, 0.001))
    # float32 constants and one product: within 2 roundings (1.2e-7) of the float64 values.
    np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, rtol=1e-6)
    # A shorter run keeps the boundaries at the same fractions of its steps (~50% and ~75%).
    short = classifier_training.learning_rate_schedule(recipe, 640)
    assert [float(short(s)) for s in (320, 321, 480, 481)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001], rel=1e-6
    )


@pytest.mark.slow
def test_sgd_weight_decay_is_the_l2_term():
    """One SGD step with the L2 term moves every weight by exactly -lr * wd * w more than without
    (momentum's first trace is the gradient): the reference's `wd * sum(l2_loss(v))`."""
    model = classifier.get("mnist_cnn")
    split = data.open_source("mnist5k", "test")
    images, labels = split.images[:16], split.labels[:16]
    params = classifier.init_params(model, jax.random.key(0, impl="rbg"), 32, 1)
    tx = classifier_training.make_optimizer(classifier_training.RECIPES["cifar10"], 100)
    moved = {}
    for wd in (0.0, 0.5):
        step = jax.jit(classifier_training.make_train_step(model, tx, weight_decay=wd))
        moved[wd], _, _ = step(params, tx.init(params), images, labels, jax.random.key(1))
    # float32: each side rounds w - lr·g once (|w| <= 0.75, ulp 6e-8), and if the two programs
    # round g differently, lr·(a few ulps of |g| <~ 1) adds ~1e-8: 2e-7 is ~3 ulps of w.
    for name in ("Conv0", "Logits"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_allclose(
                moved[0.5][name][leaf] - moved[0.0][name][leaf],
                -0.1 * 0.5 * params[name][leaf],
                atol=2e-7,
            )


@pytest.mark.slow
def test_resnet32_overfits_64_images_and_tracks_batch_statistics():
    """The SGD recipe (lr 0.1, momentum 0.9, L2 2e-4) drives the ResNet-32's loss on 64 digits
    (RGB, 16x16 to keep the test fast) to ~0 in 15 steps, and BN's running mean moves by exactly
    (1 - 0.997) x the batch mean (Flax momentum = TF decay 0.997)."""
    split = data.open_source("mnist5k", "train")
    index = np.random.RandomState(0).choice(len(split), 64, replace=False)
    images = np.repeat(split.images[index, ::2, ::2], 3, axis=-1)
    labels = split.labels[index]
    model = classifier.get("resnet32")
    variables = classifier.init_params(model, jax.random.key(0, impl="rbg"), 16, 3)
    recipe = classifier_training.RECIPES["cifar10"]
    tx = classifier_training.make_optimizer(recipe)
    opt_state = tx.init(classifier_training.trainable(variables))
    step = jax.jit(classifier_training.make_train_step(model, tx, weight_decay=recipe.weight_decay))
    first_conv = variables["params"]["Input"]["kernel"]
    x = data.to_float(images, jax.random.key(0))
    conv = jax.lax.conv_general_dilated(
        x, first_conv, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    losses = []
    for i in range(15):
        variables, opt_state, metrics = step(
            variables, opt_state, images, labels, jax.random.key(i)
        )
        losses.append(float(metrics["loss"]))
        if i == 0:
            running = variables["batch_stats"]["Stage0Block0"]["BN0"]["mean"]
            # 0.003 x a float32 mean of 16,384 conv outputs (|x| <~ 3), taken in two programs:
            # rounding ~sqrt(n)·2^-24·3 = 2e-5 in the mean, ~7e-8 after the factor 0.003.
            np.testing.assert_allclose(running, 0.003 * conv.mean(axis=(0, 1, 2)), atol=1e-6)
    assert losses[0] > 1.5 and losses[-1] < 0.15, losses
    assert float(metrics["accuracy"]) == 1.0


@pytest.mark.slow
def test_resnet32_weights_round_trip_and_predict_in_eval_mode(tmp_path):
    """A variables dict {"params", "batch_stats"} saves and loads by name; the predictor applies it
    with the running statistics (evaluation mode), as a direct `model.apply` does."""
    model = classifier.get("resnet32")
    variables = classifier.init_params(model, jax.random.key(0, impl="rbg"), 32, 3)
    # Non-trivial running statistics, so that evaluation mode differs from batch statistics (mean
    # 0.1, var 0.6; a mean of 0.5 would zero every ReLU and make the comparison below vacuous).
    variables["batch_stats"] = jax.tree.map(lambda x: 0.5 * x + 0.1, variables["batch_stats"])
    path = tmp_path / "resnet.npz"
    classifier.save_params(path, variables, {"preset": "resnet32"})
    loaded, info = classifier.load_params(path, model)
    assert info == {"preset": "resnet32"} and set(loaded) == {"params", "batch_stats"}
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), b)
    images = np.random.RandomState(0).randint(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    # In float64: the predictor's padded batches of 2 and a batch of 3 are different programs,
    # whose float32 rounding through 32 layers differs by CPU. The predictor returns float32, so
    # the two agree to its rounding (2^-24 relative), far inside 1e-6.
    with jax.enable_x64(True):
        loaded64 = jax.tree.map(lambda x: x.astype(jnp.float64), loaded)
        got = classifier_training.make_predictor(model, loaded64, batch_size=2)(images)
        expected = jax.jit(model.apply)(loaded64, images.astype(np.float64) / 127.5 - 1.0)
    for name in ("features", "logits"):
        assert np.abs(expected[name]).max() > 1.0 and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_predictor_shards_batches_and_keeps_input_order(shipped):
    """13 images in batches of 5 rounded up to 8 (the 8 test devices): 2 batches, 3 padded images,
    sharded over all devices, also inside a caller's mesh; the reference is the network on one
    device over all 13 at once."""
    model, params, _ = shipped
    images = np.random.RandomState(0).randint(0, 256, (13, 32, 32, 1)).astype(np.uint8)
    # In float64 (as the ResNet test above): the two are different programs whose float32
    # rounding differs by CPU; in float64 they agree to ~1e-14, and the predictor's float32
    # outputs to its rounding (2^-24 relative), far inside 1e-6. A misplaced or padded image
    # would move its features by O(1).
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        predict = classifier_training.make_predictor(model, params64, batch_size=5)
        got = predict(iter([images[:4], images[4:]]))
        with jax.set_mesh(jax.make_mesh((jax.device_count(),), ("data",))):
            in_mesh = predict(images)
        one_device = jax.jit(model.apply)({"params": params64}, images / 127.5 - 1.0)
    assert len(one_device["features"].devices()) == 1
    for name in ("features", "logits"):
        assert got[name].shape[0] == 13 and np.abs(one_device[name]).max() > 1.0
        np.testing.assert_allclose(got[name], one_device[name], rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(in_mesh[name], got[name])
