"""Feature networks behind one interface: uint8 images -> {"features": [N, D], "logits": [N, K]}.

  inception_v3  the FID Inception-v3 port (`jaxgan.eval.inception`): features = pool3 [N, 2048],
                logits = `logits_unbiased` [N, 1008] (the original IS protocol);
                TF1 bilinear resize to 299x299 inside the network. Needs the converted weights.
  mnist_cnn     the project's own MNIST classifier (`jaxgan.models.classifier`, shipped as
                `jaxgan/assets/mnist_cnn.npz`): features = its penultimate layer [N, 128], logits
                [N, 10]. Takes 32x32 grayscale; smaller grayscale images are resized to 32x32 with
                PIL Lanczos (`data.fit_image`, the project's resize). Its FID is a "domain FID":
                comparable only with other mnist_cnn numbers, never with Inception FIDs.
  fashion_cnn   the same network (preset `mnist_cnn`, same input and resize) trained on
                Fashion-MNIST, shipped as `jaxgan/assets/fashion_cnn.npz`; its domain FID is
                comparable only with other fashion_cnn numbers.
  emoji_cnn     the same network on 32x32 *RGB* input with 20 classes, trained on the emoji pair
                (`python -m jaxgan.data.prepare emoji`, both domains' train splits) to tell style
                (Google / Twitter) x category (emoji.json's 10), so its features see both what an
                emoji shows and how it is drawn; shipped as `jaxgan/assets/emoji_cnn.npz`:
                features [N, 128], logits [N, 20]. Takes RGB images of at most 64x64, resized to
                32x32 with the same PIL Lanczos (`data.fit_image`). A domain FID comparable only
                with other emoji_cnn numbers.

The domain networks (`DOMAIN_NETWORKS`: network -> the dataset it was trained on) are written by
`scripts/train_mnist_classifier.py --dataset=DATASET`. `resolve_name("auto", ...)` picks a
dataset's own network (fashion_mnist and its `:n=K` subsets -> fashion_cnn; emoji -> emoji_cnn: a
prepared folder is known by prepare.json's "dataset", which the caller passes), mnist_cnn for
mnist5k and other grayscale data of at most 32x32, inception_v3 otherwise. `check_available` is the fast
part of `load`: it fails in milliseconds (before anything is built) when the weights are missing,
with the URL and the one conversion command for Inception (`InceptionWeightsNotFoundError`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import os
from collections.abc import Callable, Iterable

import numpy as np

from jaxgan import data
from jaxgan.eval import classifier_training, inception
from jaxgan.eval import resize as resizing
from jaxgan.models import classifier

NAMES = ("inception_v3", "mnist_cnn", "fashion_cnn", "emoji_cnn")
# The project's own classifiers (preset `mnist_cnn` of `jaxgan.models.classifier`, shipped as
# `jaxgan/assets/<network>.npz`) -> the dataset each was trained on; `auto` picks it for that data.
DOMAIN_NETWORKS = {"mnist_cnn": "mnist5k", "fashion_cnn": "fashion_mnist", "emoji_cnn": "emoji"}
MNIST_CNN_RESOLUTION = 32  # every domain network's input: 32x32 (grayscale or RGB)
# Each domain network's input channels, classes, and the largest images it accepts (resized down
# to 32x32): the digit/clothes networks stay off larger images, emoji_cnn takes the prepared 64.
DOMAIN_CHANNELS = {"mnist_cnn": 1, "fashion_cnn": 1, "emoji_cnn": 3}
DOMAIN_CLASSES = {"mnist_cnn": 10, "fashion_cnn": 10, "emoji_cnn": 20}
DOMAIN_MAX_RESOLUTION = {"mnist_cnn": 32, "fashion_cnn": 32, "emoji_cnn": 64}
# Bumped when the code from pixels to features changes (network, resize, preprocessing): part of
# the real-feature cache key and of every row, so features of older code are never reused.
CODE_VERSION = {"inception_v3": 1, "mnist_cnn": 1, "fashion_cnn": 1, "emoji_cnn": 1}


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
    """A loaded feature network.

    name: one of NAMES. resize: how images reach the network's input size (recorded
    in every result row). weights: "sha256:<first 16 hex digits>" of the weights file (part of the
    real-feature cache key). feature_layer / logits_layer: what `features` / `logits` are.
    extract: uint8 [N, H, W, C] (or an iterable of such chunks) -> {"features": float32 [N, D],
    "logits": float32 [N, K]}.
    """

    name: str
    resize: str
    weights: str
    feature_layer: str
    logits_layer: str
    extract: Callable[[np.ndarray | Iterable[np.ndarray]], dict[str, np.ndarray]]


def domain_weights_path(name: str) -> str:
    """A domain network's shipped weights, `jaxgan/assets/<name>.npz` (package data)."""
    if name not in DOMAIN_NETWORKS:
        raise ValueError(f"{name!r} is not one of the shipped networks {sorted(DOMAIN_NETWORKS)}.")
    return str(importlib.resources.files("jaxgan") / "assets" / f"{name}.npz")


def mnist_cnn_weights_path() -> str:
    """The shipped MNIST classifier weights, `jaxgan/assets/mnist_cnn.npz`."""
    return domain_weights_path("mnist_cnn")


def resolve_name(name: str, dataset: str, channels: int | None, resolution: int) -> str:
    """`auto` -> a dataset's own network (`DOMAIN_NETWORKS`: fashion_mnist[:n=K] -> fashion_cnn,
    mnist5k[:n=K] -> mnist_cnn, emoji -> emoji_cnn), mnist_cnn for other grayscale data <= 32x32,
    else inception_v3.

    dataset: the dataset string, or for a folder written by `jaxgan.data.prepare` its prepare.json
    "dataset" (`eval.translation.feature_dataset`: 'folder:/tmp/emoji64' -> 'emoji').
    channels: the images' channel count, or None if unknown (auto then picks inception_v3 unless
    the dataset has its own network). An explicit name is checked and returned as it is.
    """
    if name != "auto":
        if name not in NAMES:
            raise ValueError(
                f"--feature_network={name!r}: expected auto or one of {', '.join(NAMES)}."
            )
        return name
    kind = dataset.split(":")[0]  # "fashion_mnist:n=100" -> "fashion_mnist"
    for network, trained_on in DOMAIN_NETWORKS.items():
        if kind == trained_on:
            return network
    if channels == 1 and resolution <= MNIST_CNN_RESOLUTION:
        return "mnist_cnn"
    return "inception_v3"


def resize_mode(name: str, resolution: int, resize: str = "legacy") -> str:
    """How images reach the network's input, as rows name it. `resize` ('legacy' | 'clean')
    applies to Inception: TF1 bilinear (TTUR, PGGAN, pytorch-fid, torch-fidelity) or clean-fid's
    PIL bicubic (`eval/resize.py`). The domain CNNs have one resize, PIL Lanczos (the data's) to
    32x32, grayscale or RGB alike: 'none' at 32, else 'pil_lanczos_32' (emoji_cnn's 64 -> 32)."""
    if name == "inception_v3":
        return resizing.CLEAN if resize == "clean" else resizing.LEGACY
    if resolution == MNIST_CNN_RESOLUTION:
        return "none"
    return f"pil_lanczos_{MNIST_CNN_RESOLUTION}"


def check_available(name: str, inception_weights: str | None = None) -> None:
    """Fails fast (file lookups only) if the network's weights are missing."""
    if name == "inception_v3":
        inception.find_weights(inception_weights)  # raises InceptionWeightsNotFoundError
    elif not os.path.isfile(domain_weights_path(name)):
        raise FileNotFoundError(
            f"{domain_weights_path(name)} is missing from the installed package; recreate it with "
            f"`python scripts/train_mnist_classifier.py --dataset={DOMAIN_NETWORKS[name]}"
            f"{' --data_dir=DIR' if DOMAIN_NETWORKS[name] == 'emoji' else ''}`."
        )


def weights_id(name: str, inception_weights: str | None = None) -> str:
    """The weights' hash a row and the cache name, without building the network."""
    if name == "inception_v3":
        return _sha256_prefix(str(inception.find_weights(inception_weights)))
    return _sha256_prefix(domain_weights_path(name))


@functools.lru_cache(maxsize=8)  # a 95 MB file is hashed once per process, not once per row
def _sha256_prefix(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def load(
    name: str,
    resolution: int,
    channels: int,
    batch_size: int = 0,
    inception_weights: str | None = None,
    progress: bool = False,
    resize: str = "legacy",
) -> FeatureNetwork:
    """Loads feature network `name` for uint8 images [N, resolution, resolution, channels].

    channels: 1 or 3; a domain CNN takes its own (`DOMAIN_CHANNELS`: emoji_cnn RGB, else grayscale).
    batch_size: images per compiled batch (0: 50 for inception_v3, 500 for the domain CNNs).
    progress: a progress bar per extraction (Inception only: minutes on a CPU; the CNN is instant).
    resize: 'legacy' or 'clean' (Inception only, see `resize_mode`).
    """
    check_available(name, inception_weights)
    if name == "inception_v3":
        return _load_inception(resolution, batch_size or 50, inception_weights, progress, resize)
    return _load_domain_cnn(
        name, domain_weights_path(name), resolution, channels, batch_size or 500
    )


def _load_inception(
    resolution: int, batch_size: int, weights: str | None, progress: bool, resize: str
) -> FeatureNetwork:

    path = inception.find_weights(weights)
    variables = inception.load_params(path)
    host_resize = resizing.clean_resize if resize == "clean" else None
    extractor = inception.make_feature_extractor(
        variables, batch_size, progress=progress, host_resize=host_resize
    )

    def extract(images) -> dict[str, np.ndarray]:
        out = extractor(images)
        return {"features": out["pool3"], "logits": out["logits_unbiased"]}

    return FeatureNetwork(
        name="inception_v3",
        resize=resize_mode("inception_v3", resolution, resize),
        weights=_sha256_prefix(str(path)),
        feature_layer="pool3 [2048]",
        logits_layer="logits_unbiased [1008]",
        extract=extract,
    )


def _load_domain_cnn(
    name: str, path: str, resolution: int, channels: int, batch_size: int
) -> FeatureNetwork:
    """A `mnist_cnn`-preset classifier with the weights file `path`, as feature network `name`:
    `DOMAIN_CHANNELS[name]` channels in, `DOMAIN_CLASSES[name]` logits out."""

    want, largest = DOMAIN_CHANNELS[name], DOMAIN_MAX_RESOLUTION[name]
    if channels != want or resolution > largest:
        kind = "grayscale" if want == 1 else "RGB"
        raise ValueError(
            f"feature network {name} takes {kind} images of at most {largest}x{largest}; these "
            f"are {resolution}x{resolution}x{channels}. Use --feature_network=inception_v3 (or "
            f"auto)."
        )
    model = classifier.get("mnist_cnn", DOMAIN_CLASSES[name])
    params, _ = classifier.load_params(path, model)
    predict = classifier_training.make_predictor(model, params, batch_size)

    def fit(chunk: np.ndarray) -> np.ndarray:
        if chunk.shape[1] == MNIST_CNN_RESOLUTION:
            return chunk
        return np.stack([data.fit_image(im, MNIST_CNN_RESOLUTION, want) for im in chunk])

    def extract(images) -> dict[str, np.ndarray]:
        chunks = [images] if isinstance(images, np.ndarray) else images
        return predict(fit(np.asarray(chunk)) for chunk in chunks)

    return FeatureNetwork(
        name=name,
        resize=resize_mode(name, resolution),
        weights=_sha256_prefix(path),
        feature_layer=f"Features (penultimate, post-ReLU) [{model.feature_dim}]",
        logits_layer=f"Logits [{model.num_classes}]",
        extract=extract,
    )
