"""The domain feature networks of `jaxgan/eval/features.py`: the shipped fashion_cnn and
emoji_cnn, and the choice.

`SHIPPED_FASHION_ACCURACY` is the last line `scripts/train_mnist_classifier.py --dataset=fashion_mnist`
printed when it wrote `jaxgan/assets/fashion_cnn.npz` (Fashion-MNIST's 10,000 test images);
`SHIPPED_EMOJI_ACCURACIES` the three lines `--dataset=emoji --data_dir=DIR` printed when it wrote
`jaxgan/assets/emoji_cnn.npz` (the 2 x 807 test emoji of `python -m jaxgan.data.prepare emoji`).
If the script, the recipe or the preset changes, re-run them (~3 and ~2 minutes on 2 CPU cores)
and update the numbers here. Nothing here reads Fashion-MNIST or the emoji itself (CI need not
have them): the accuracies are the files' own records, checked against the numbers the script
printed.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxgan import data
from jaxgan.data import prepare
from jaxgan.eval import classifier_training, features
from jaxgan.models import classifier

SHIPPED_FASHION_ACCURACY = 0.9051  # "test accuracy: 0.9051", the command in its info record
# "style accuracy", "category accuracy", "test accuracy" (joint: style x category, 20 classes).
SHIPPED_EMOJI_ACCURACIES = {
    "style_accuracy": 0.9294,
    "category_accuracy": 0.8408,
    "test_accuracy": 0.8086,
}
EMOJI_TRAIN = 2 * 2979  # trainA + trainB of emoji-datasource-*@16.0.0


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
    direct = classifier_training.make_predictor(model, params, batch_size=16)(images)
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
    direct = classifier_training.make_predictor(model, params, batch_size=16)(resized)
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


# ----------------------------------------------------------------------------------------------
# emoji_cnn: style x category of the emoji pair, on 32x32 RGB.
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emoji():
    model = classifier.get("mnist_cnn", 20)
    params, info = classifier.load_params(features.domain_weights_path("emoji_cnn"), model)
    return model, params, info


def _rgb_images(n: int, size: int, seed: int) -> np.ndarray:
    """Synthetic uint8 [n, size, size, 3]: a coloured disc on white (emoji-like statistics)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = np.full((n, size, size, 3), 255, np.uint8)
    for image, (cx, cy, r), colour in zip(
        out, rng.uniform((0.3, 0.3, 0.15), (0.7, 0.7, 0.4), (n, 3)), rng.integers(0, 256, (n, 3))
    ):
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = colour
    return out


def _numpy_forward(path: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """MnistCNN in float64 numpy, from the weights file's arrays: x/127.5 - 1, 3 x [3x3 SAME conv,
    ReLU, 2x2 max-pool], flatten, Dense + ReLU (features), Dense (logits)."""
    with np.load(path) as stored:
        w = {k: stored[k].astype(np.float64) for k in stored.files if not k.startswith("__")}
    x = images.astype(np.float64) / 127.5 - 1
    for i in range(3):
        kernel = w[f"Conv{i}/kernel"]  # [3, 3, in, out]
        n, h, wd, c = x.shape
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        patches = np.stack(
            [padded[:, dy : dy + h, dx : dx + wd] for dy in range(3) for dx in range(3)], 3
        )
        x = np.einsum("nhwpc,pco->nhwo", patches, kernel.reshape(9, c, -1)) + w[f"Conv{i}/bias"]
        x = np.maximum(x, 0).reshape(n, h // 2, 2, wd // 2, 2, -1).max(axis=(2, 4))
    feats = np.maximum(x.reshape(len(x), -1) @ w["Features/kernel"] + w["Features/bias"], 0)
    return {"features": feats, "logits": feats @ w["Logits/kernel"] + w["Logits/bias"]}


def test_shipped_emoji_weights_record_their_training(emoji, classifier_script):
    _, _, info = emoji
    script = classifier_script
    epochs = script.EPOCHS["emoji"]
    assert info["preset"] == "mnist_cnn" and info["dataset"] == "emoji"
    for name, value in SHIPPED_EMOJI_ACCURACIES.items():
        assert info[name] == pytest.approx(value, abs=5e-5), name
    assert (info["epochs"], info["seed"], info["channels"], info["num_classes"]) == (
        epochs,
        0,
        3,
        20,
    )
    assert info["steps"] == epochs * EMOJI_TRAIN // 64
    assert info["prepare"]["counts"] == {"trainA": 2979, "trainB": 2979, "testA": 807, "testB": 807}
    assert info["categories"] == list(prepare.EMOJI_CATEGORIES) == sorted(prepare.EMOJI_CATEGORIES)
    recipe = dict(script.RECIPE.asdict(), steps=info["steps"])  # the one recipe of every network
    assert info["recipe"] == json.loads(json.dumps(recipe))
    assert "--dataset=emoji" in info["command"] and "--data_dir=" in info["command"]
    assert os.path.samefile(script.default_out("emoji"), features.domain_weights_path("emoji_cnn"))
    assert os.path.getsize(features.domain_weights_path("emoji_cnn")) < 1_000_000


def test_emoji_labels_are_style_times_ten_plus_category(tmp_path, classifier_script):
    """The script's arrays from a prepared folder: A then B by file name, the project's resize."""
    names = {"1f600.png": "Smileys & Emotion", "1f9ff.png": "Objects", "1f1e6-1f1e8.png": "Flags"}
    pixels = _rgb_images(6, 64, seed=3)
    for d, split in enumerate(("trainA", "trainB")):
        os.makedirs(tmp_path / split)
        for i, name in enumerate(sorted(names)):
            Image.fromarray(pixels[3 * d + i]).save(tmp_path / split / name)
    (tmp_path / "categories.json").write_text(json.dumps(names))
    images, labels = classifier_script.emoji_arrays(str(tmp_path), "train")
    # sorted names: 1f1e6-1f1e8 (Flags 3), 1f600 (Smileys & Emotion 7), 1f9ff (Objects 5).
    assert labels.tolist() == [3, 7, 5, 13, 17, 15]
    np.testing.assert_array_equal(images, np.stack([data.fit_image(p, 32, 3) for p in pixels]))
    # Predicted: right, wrong style, right, wrong style, wrong style, wrong category (9 for 5).
    logits = np.eye(20)[[3, 17, 5, 3, 7, 19]]
    accuracies = classifier_script.measure_accuracies("emoji", logits, labels)
    assert accuracies == {
        "test_accuracy": 2 / 6,
        "style_accuracy": 3 / 6,
        "category_accuracy": 5 / 6,
    }


def test_emoji_cnn_is_the_shipped_classifier_on_resized_rgb(emoji):
    model, params, _ = emoji
    images = _rgb_images(10, 64, seed=0)
    resized = np.stack([data.fit_image(im, 32, 3) for im in images])
    network = features.load("emoji_cnn", 64, 3, batch_size=16)
    out = network.extract(images)
    # The evaluator's path (64 -> 32 by PIL Lanczos, then the jitted classifier) is the classifier
    # applied to the project's resize: one XLA program on the same batches, so bit-for-bit equal.
    direct = classifier_training.make_predictor(model, params, batch_size=16)(resized)
    for key in ("features", "logits"):
        np.testing.assert_array_equal(out[key], direct[key])
    assert out["features"].shape == (10, 128) and out["logits"].shape == (10, 20)
    assert network.logits_layer == "Logits [20]" and network.resize == "pil_lanczos_32"
    assert network.weights == features.weights_id("emoji_cnn")
    # ...and that classifier is the documented network on RGB in [-1, 1], channel order kept: a
    # float64 numpy forward pass of the file's arrays (float32 rounding: ~1e-5 of values ~1-10).
    reference = _numpy_forward(features.domain_weights_path("emoji_cnn"), resized)
    for key in ("features", "logits"):
        np.testing.assert_allclose(out[key], reference[key], rtol=1e-4, atol=1e-4)
    swapped = _numpy_forward(features.domain_weights_path("emoji_cnn"), resized[..., ::-1])
    assert np.max(np.abs(swapped["logits"] - reference["logits"])) > 0.1  # the check can fail


def test_emoji_cnn_choice_input_and_errors(monkeypatch, tmp_path):
    assert features.resolve_name("auto", "emoji", 3, 64) == "emoji_cnn"
    assert features.resolve_name("auto", "emoji", None, 32) == "emoji_cnn"
    assert features.resolve_name("auto", "folder:/data/emoji64", 3, 64) == "inception_v3"
    assert features.resize_mode("emoji_cnn", 64) == "pil_lanczos_32"
    assert features.resize_mode("emoji_cnn", 32) == "none"
    assert features.DOMAIN_CHANNELS == {"mnist_cnn": 1, "fashion_cnn": 1, "emoji_cnn": 3}
    with pytest.raises(
        ValueError, match="emoji_cnn takes RGB images of at most 64x64; these are 64x64x1"
    ):
        features.load("emoji_cnn", 64, 1)
    with pytest.raises(
        ValueError, match="emoji_cnn takes RGB images of at most 64x64; these are 128x128x3"
    ):
        features.load("emoji_cnn", 128, 3)
    with pytest.raises(ValueError, match="mnist_cnn takes grayscale images of at most 32x32"):
        features.load("mnist_cnn", 32, 3)
    monkeypatch.setattr(features, "domain_weights_path", lambda name: str(tmp_path / "gone.npz"))
    with pytest.raises(FileNotFoundError, match="--dataset=emoji --data_dir=DIR"):
        features.check_available("emoji_cnn")
