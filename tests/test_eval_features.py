"""The domain feature networks of `jaxgan/eval/features.py`: the shipped fashion_cnn and the choice.

`SHIPPED_FASHION_ACCURACY` is the last line `scripts/train_mnist_classifier.py --dataset=fashion_mnist`
printed when it wrote `jaxgan/assets/fashion_cnn.npz` (Fashion-MNIST's 10,000 test images). If the
script, the recipe or the preset changes, re-run it (~3 minutes on 2 CPU cores) and update the
number here. Nothing here reads Fashion-MNIST itself (CI need not have Debian's package): the
accuracy is the file's own record, checked against the number the script printed.
"""

import json
import os

import numpy as np
import pytest

from jaxgan import data
from jaxgan.eval import features
from jaxgan.models import classifier

SHIPPED_FASHION_ACCURACY = 0.9051  # "test accuracy: 0.9051", the command in its info record


@pytest.fixture(scope="module")
def fashion():
    model = classifier.get("mnist_cnn")
    params, info = classifier.load_params(features.domain_weights_path("fashion_cnn"), model)
    return model, params, info


def _images(n: int, size: int, seed: int) -> np.ndarray:
    """Synthetic uint8 [n, size, size, 1]: a noisy bright blob on black (MNIST-like statistics)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    blobs = [
        255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / w) + rng.normal(0, 20, (size, size))
        for cx, cy, w in rng.uniform((0.3, 0.3, 0.02), (0.7, 0.7, 0.2), (n, 3))
    ]
    return np.clip(np.stack(blobs), 0, 255).astype(np.uint8)[..., None]


def test_shipped_fashion_weights_record_their_training(fashion, classifier_script):
    _, _, info = fashion
    script = classifier_script
    epochs = script.EPOCHS["fashion_mnist"]
    assert info["preset"] == "mnist_cnn" and info["dataset"] == "fashion_mnist"
    assert info["test_accuracy"] == pytest.approx(SHIPPED_FASHION_ACCURACY, abs=5e-5)
    assert (info["epochs"], info["seed"]) == (epochs, 0)
    assert info["steps"] == epochs * 60_000 // 64  # Fashion-MNIST's 60,000 train images, batch 64
    recipe = dict(script.RECIPE.asdict(), steps=info["steps"])
    assert info["recipe"] == json.loads(json.dumps(recipe))  # as stored: tuples become lists
    assert "--dataset=fashion_mnist" in info["command"]
    # The script writes where the evaluator reads (an editable install: the same file).
    assert os.path.samefile(
        script.default_out("fashion_mnist"), features.domain_weights_path("fashion_cnn")
    )
    assert os.path.getsize(features.domain_weights_path("fashion_cnn")) < 1_000_000


def test_auto_picks_the_dataset_own_network():
    for dataset in ("fashion_mnist", "fashion_mnist:n=100"):
        assert features.resolve_name("auto", dataset, 1, 32) == "fashion_cnn"
        assert features.resolve_name("auto", dataset, None, 32) == "fashion_cnn"
    for dataset in ("mnist5k", "mnist5k:n=40", "folder:clothes"):
        assert features.resolve_name("auto", dataset, 1, 32) == "mnist_cnn"
    assert features.resolve_name("auto", "folder:clothes", 1, 28) == "mnist_cnn"
    assert features.resolve_name("fashion_cnn", "mnist5k", 1, 32) == "fashion_cnn"
    assert features.resolve_name("auto", "tfds:cifar10", 3, 32) == "inception_v3"
    assert set(features.CODE_VERSION) == set(features.NAMES)  # every row names a code version
    assert features.resize_mode("fashion_cnn", 32) == "none"
    assert features.resize_mode("fashion_cnn", 28) == "pil_lanczos_32"


def test_fashion_cnn_is_the_shipped_classifier_applied_directly(fashion):
    model, params, _ = fashion
    images = _images(12, 32, seed=0)
    network = features.load("fashion_cnn", 32, 1, batch_size=16)
    direct = classifier.make_predictor(model, params, batch_size=16)(images)
    out = network.extract(images)
    # The same jitted function of the same weights on the same padded [16, 32, 32, 1] batches over
    # the same devices: one XLA program, so bit-for-bit equal (no tolerance to justify).
    for key in ("features", "logits"):
        np.testing.assert_array_equal(out[key], direct[key])
    assert out["features"].shape == (12, 128) and out["logits"].shape == (12, 10)
    assert (network.feature_layer, network.logits_layer) == (
        "Features (penultimate, post-ReLU) [128]",
        "Logits [10]",
    )
    assert network.weights == features.weights_id("fashion_cnn")
    # 28x28 images (Fashion-MNIST's own size) reach it through the project's Lanczos resize.
    small = _images(5, 28, seed=1)
    resized = np.stack([data.fit_image(im, 32, 1) for im in small])
    out = features.load("fashion_cnn", 28, 1, batch_size=16).extract(small)
    direct = classifier.make_predictor(model, params, batch_size=16)(resized)
    np.testing.assert_array_equal(out["logits"], direct["logits"])
    with pytest.raises(ValueError, match="fashion_cnn takes grayscale images of at most 32x32"):
        features.load("fashion_cnn", 32, 3)


def test_fashion_cnn_is_not_mnist_cnn():
    assert features.weights_id("fashion_cnn") != features.weights_id("mnist_cnn")
    images = _images(8, 32, seed=2)
    fashion = features.load("fashion_cnn", 32, 1, batch_size=16).extract(images)
    mnist = features.load("mnist_cnn", 32, 1, batch_size=16).extract(images)
    # Two trainings on different data: their features differ by far more than float rounding.
    assert np.max(np.abs(fashion["features"] - mnist["features"])) > 0.1


def test_missing_weights_name_the_command(monkeypatch, tmp_path):
    monkeypatch.setattr(features, "domain_weights_path", lambda name: str(tmp_path / "gone.npz"))
    with pytest.raises(FileNotFoundError, match="--dataset=fashion_mnist"):
        features.check_available("fashion_cnn")
