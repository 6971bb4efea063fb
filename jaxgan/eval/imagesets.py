"""Image sets: what the evaluator scores. A dataset split, a folder, an .npz, or generated images;
and, standing in for the reals, an FID statistics file (`stats:FILE.npz`, a `StatsSet`).

Images are loaded on first use, so a set whose features are cached needs none. A reproducible set
(a dataset split, a file) carries a `cache_key`: everything its pixels depend on.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxgan import data
from jaxgan.core import errors
from jaxgan.data import sources
from jaxgan.data.sources import (
    EMBEDDED_DATASETS,
)  # strings with no name part: SPLIT follows a colon
from jaxgan.eval import fid
from jaxgan.eval.options import MAX_DEFAULT_REAL, Options

STATS_PREFIX = "stats:"  # --real=stats:FILE.npz: the reals' FID statistics instead of their images


class ImageSet:
    """uint8 images [N, R, R, C] and labels [N] (or None), with a name and an optional cache key.

    `load() -> (images, labels)` runs on first access. `cache_key` (a JSON-able dict) identifies a
    reproducible set (a dataset split, a file); sets without one (generated images) are not cached.
    `parent`: the set this one is the first `size` images of (`head`), whose features it slices.
    """

    def __init__(
        self,
        name: str,
        size: int,
        load: Callable[[], tuple[np.ndarray, np.ndarray | None]],
        cache_key: dict | None = None,
        parent: ImageSet | None = None,
    ):
        self.name, self.size, self._load, self.cache_key = name, size, load, cache_key
        self.parent = parent
        self.memo: dict[Any, Any] = {}  # per-set results reused across checkpoints

    @classmethod
    def from_arrays(cls, name: str, images: np.ndarray, labels: np.ndarray | None = None):
        return cls(name, len(images), lambda: (images, labels))

    def head(self, n: int) -> ImageSet:
        """The first n images: a metric's share of a checkpoint's fakes (all metrics score prefixes
        of the same latents, so a row does not depend on which other metrics were asked for)."""
        if n >= self.size:
            return self
        labels = lambda: None if self.labels is None else self.labels[:n]  # noqa: E731
        return ImageSet(self.name, n, lambda: (self.images[:n], labels()), parent=self)

    @functools.cached_property
    def _data(self) -> tuple[np.ndarray, np.ndarray | None]:
        images, labels = self._load()
        if images.dtype != np.uint8 or images.ndim != 4:
            raise errors.ConfigError(
                f"{self.name}: expected uint8 images [N, H, W, C], got {images.dtype} {images.shape}."
            )
        return images, labels

    @property
    def images(self) -> np.ndarray:
        return self._data[0]

    @property
    def labels(self) -> np.ndarray | None:
        return self._data[1]


class StatsSet(ImageSet):
    """The reals as an FID statistics file (`stats:FILE.npz`, `fid.load_statistics`): no images.

    `memo["fid_stats"]` holds the file's (mu [D], sigma [D, D]), which is all the fid metric reads
    of the reals (`eval/metrics.py`); its features are empty, so the Scorer extracts none. Any
    other metric is refused before scoring (`fid_stats.options_for`). metadata: the file's (None
    for pytorch-fid's or TTUR's own files), whose `n`, `resolution` and `channels` are the set's
    size (None where unknown) and the size its images were read at (0 where unknown).
    """

    def __init__(self, spec: str, path: str, mu: np.ndarray, sigma: np.ndarray, metadata):
        self.path, self.metadata = path, metadata
        known = metadata or {}
        self.resolution, self.channels = known.get("resolution", 0), known.get("channels", 0)
        super().__init__(spec, known.get("n"), self._no_images)
        self.memo["fid_stats"] = (mu, sigma)
        self.memo["features"] = {}

    def _no_images(self):
        raise errors.ConfigError(f"{self.name} holds FID statistics, not images.")


def stats_set(spec: str) -> StatsSet | None:
    """`stats:FILE.npz` -> its StatsSet (the file read and checked now); None for other specs."""
    if not spec.startswith(STATS_PREFIX):
        return None
    path = spec[len(STATS_PREFIX) :]
    return StatsSet(spec, path, *fid.load_statistics(path))


def load_images(
    source, indices: np.ndarray, resolution: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reads `source[indices]`, fitted to [resolution, resolution, channels] (`data.fit_image`)."""

    images, labels = [], []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for start in range(0, len(indices), 1000):
            chunk, chunk_labels = sources.fetch(source, indices[start : start + 1000], pool)
            images.append(np.stack([data.fit_image(im, resolution, channels) for im in chunk]))
            labels.append(np.asarray(chunk_labels, np.int32))
    return np.concatenate(images), np.concatenate(labels)


def _fingerprint_files(paths: Sequence[str]) -> str:
    """Names, sizes and mtimes of files: a folder set's identity in the cache key."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def dataset_set(
    dataset: str,
    split: str,
    data_dir: str | None,
    resolution: int,
    channels: int,
    limit: int,
    seed: int,
    source=None,
) -> ImageSet:
    """`limit` images (0: all, at most 50,000) of a dataset split, in a seeded random order.

    The order matters: mnist5k is stored sorted by class, and fid5k_x10 chunks and SWD's first-N
    take contiguous rows (PGGAN's datasets were shuffled once when written, `dataset_tool.py`).
    """

    source = source or data.open_source(dataset, split, data_dir, channels or None)
    kind, name, named_split = data.parse(dataset)
    split = named_split or split
    display = f"{kind}:{name}" if name else kind
    display = display if kind == "folder" else f"{display}:{split}"
    per_class = data.parse_per_class(dataset)[1]
    if per_class and (kind == "folder" or split == "train"):  # `:n=K` subsets the train split
        display = f"{display}:n={per_class}"
    only_class = data.parse_class(dataset)[1]
    if only_class is not None:  # `:class=C` keeps one class of every split
        display = f"{display}:class={only_class}"
    n = min(limit or MAX_DEFAULT_REAL, len(source))
    order = np.random.RandomState(seed).permutation(len(source))[:n]
    key = {
        "set": display,
        "resolution": resolution,
        "channels": channels,
        "n": n,
        "order_seed": seed,
        "source_size": len(source),
        # Another copy or version of the data is another set (a prepared TFDS version, a data_dir).
        "data_dir": os.path.abspath(data_dir) if data_dir else None,
        "version": str(getattr(source, "version", "")) or None,
    }
    if kind == "folder":
        key["files"] = _fingerprint_files(source.files)
    return ImageSet(
        display, n, lambda: load_images(source, order, resolution, channels), cache_key=key
    )


def dataset_splits_name(dataset: str) -> str | None:
    """The dataset string that opens any split ('tfds:cifar10:train' -> 'tfds:cifar10'), or None
    for a folder (one split only); a `:class=C` dataset keeps its class in every split."""

    kind, name, _ = data.parse(dataset)
    if kind == "folder":
        return None
    only_class = data.parse_class(data.parse_per_class(dataset)[0])[1]
    whole = kind if kind in EMBEDDED_DATASETS else f"{kind}:{name}"
    return whole if only_class is None else f"{whole}:class={only_class}"


@dataclasses.dataclass
class RealSplits:
    """A dataset's whole train and test splits: what gan_train trains or scores on, the real
    classifier's training set, and iw's held-out reals. `dataset` opens any split."""

    dataset: str
    train: ImageSet
    test: ImageSet
    num_classes: int


def real_splits(
    dataset: str, data_dir: str | None, resolution: int, channels: int, options: Options
) -> RealSplits:
    """`--real_split` and `--baseline_split` of `dataset` (all of each, at most 50,000, in the
    evaluator's seeded order) at the run's resolution and channels."""

    root = dataset_splits_name(dataset)
    if root is None:
        raise errors.ConfigError(
            f"gan_train, gan_test and iw need a dataset with a train and a test split; {dataset!r} "
            f"is a folder. Use a dataset string (mnist5k, tfds:NAME) for the real images."
        )
    sets = []
    for split in (options.real_split, options.baseline_split):
        source = data.open_source(root, split, data_dir, channels)
        sets.append(
            dataset_set(root, split, data_dir, resolution, channels, 0, options.seed, source)
        )
    return RealSplits(root, sets[0], sets[1], source.num_classes)


def spec_set(spec: str, split: str, resolution: int, channels: int, limit: int, seed: int):
    """Two-set mode: an ImageSet from a dataset string, a folder path or an .npz of uint8 images
    (or a `StatsSet` from `stats:FILE.npz`)."""

    if spec.startswith(STATS_PREFIX):
        return stats_set(spec)
    if spec.endswith(".npz"):
        return _npz_set(spec, resolution, channels, limit, seed)
    if os.path.isdir(spec):
        spec = f"folder:{spec}"
    base, _, rest = spec.partition(":")
    if base in EMBEDDED_DATASETS and rest and "=" not in rest.split(":")[0]:
        # A split named after the dataset (mnist5k:test), before any :n=K or :class=C.
        split, _, selection = rest.partition(":")
        spec = f"{base}:{selection}" if selection else base
    source = data.open_source(spec, split, None, channels or None)
    if not resolution or not channels:
        first = source[0][0]
        resolution = resolution or first.shape[0]
        channels = channels or first.shape[-1]
    return dataset_set(spec, split, None, resolution, channels, limit, seed, source=source)


def _npz_set(path: str, resolution: int, channels: int, limit: int, seed: int) -> ImageSet:

    with np.load(path, allow_pickle=False) as stored:
        names = stored.files
        name = "images" if "images" in names else (names[0] if len(names) == 1 else None)
        if name is None:
            raise errors.ConfigError(
                f"{path}: expected an array named 'images' (or a single array), found {names}."
            )
        images = stored[name]
        labels = stored["labels"].astype(np.int32) if "labels" in names else None
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise errors.ConfigError(
            f"{path}: '{name}' must be uint8 images [N, H, W(, C)], got {images.dtype} "
            f"{images.shape}. Quantise [-1, 1] floats with jaxgan.core.run_files.to_uint8 first."
        )
    resolution = resolution or images.shape[1]
    channels = channels or images.shape[-1]
    n = min(limit or len(images), len(images))
    order = np.random.RandomState(seed).permutation(len(images))[:n]

    def load():
        picked = images[order]
        if picked.shape[1:] != (resolution, resolution, channels):
            picked = np.stack([data.fit_image(im, resolution, channels) for im in picked])
        return picked, None if labels is None else labels[order]

    stat = os.stat(path)
    key = {
        "set": os.path.abspath(path),
        "file": f"{stat.st_size}:{stat.st_mtime_ns}",
        "resolution": resolution,
        "channels": channels,
        "n": n,
        "order_seed": seed,
    }
    return ImageSet(path, n, load, cache_key=key)


def spec_splits(real_spec: str, resolution: int, channels: int, options: Options) -> RealSplits:
    """Two-set mode: the train split `--real` names (else `--real_split`), `--baseline_split`."""

    if real_spec.endswith(".npz") or os.path.isdir(real_spec):
        raise errors.ConfigError(
            f"gan_train, gan_test and iw need the real dataset's train and test splits; "
            f"--real={real_spec} is not a dataset. Use e.g. --real=mnist5k:train or "
            f"--real=tfds:cifar10:train (the test split is --baseline_split)."
        )
    dataset, _, split = real_spec.partition(":")
    if dataset not in EMBEDDED_DATASETS:
        dataset, split = real_spec, data.parse(real_spec)[2]
    options = dataclasses.replace(options, real_split=split or options.real_split)
    return real_splits(dataset, None, resolution, channels, options)
