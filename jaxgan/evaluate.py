"""The evaluator: scores a run's saved checkpoints, or two image sets (specs/metrics.md §9, §12).

  python -m jaxgan.evaluate --workdir=runs/x [--metrics=fid,kid,is,swd,ms_ssim,pr]
      [--steps=all|latest|N,M] [--num_samples=N] [--feature_network=auto|inception_v3|mnist_cnn]
      [--force] [--watch]
  python -m jaxgan.evaluate --workdir=runs/cond --steps=latest --metrics=fid,gan_train,gan_test
  python -m jaxgan.evaluate --workdir=runs/stacked --metrics=modes --num_samples=256000
  python -m jaxgan.evaluate --real=mnist5k:train --fake=samples.npz [--metrics=...] [--output=x.jsonl]

Workdir mode (StyleGAN2-ADA `calc_metrics.py` / PGGAN `evaluate_metrics`, metrics.md §9): reads
`W/config.json`, restores only the EMA generator of each checkpoint (an Orbax partial restore),
builds it from the config that checkpoint stores (a run resumed with changed num_steps or learning
rates has several; config.json is the latest; one sampler is compiled per distinct config),
generates `--num_samples` images from latents seeded by `--seed` (the same latents for every
checkpoint, so the curve is not noisier than the models are; class-balanced labels
`arange(n) % num_classes` for conditional models), quantises them with `logging.to_uint8` (the
references' rounding, metrics.md §1.3) and scores them against the real split. Rows are appended to
`W/eval/metrics.jsonl`; a (step, metric) row already there is skipped unless `--force`, which
replaces it. The file is append-only and safe to kill or share between evaluators: rows are
appended (and --force rewrites the file as re-read) under a `flock` of `metrics.jsonl.lock`, and a
torn line (an evaluator killed mid-append) is skipped with a warning. A checkpoint that cannot be
read is named in one warning and gets a row per metric with `"value": null` and an `"error"`; the
next invocation retries it (plots and the summary skip such rows). One deleted before it is read
(the trainer keeps only its last few) is skipped. `W/eval/<metric>.png` plots each metric against
the step. With `--baseline` (the
default) the real-vs-real numbers (train split vs test split, same metric code and network) are
rows too, drawn as dashed lines. `--watch` keeps polling for new checkpoints until the run's last
checkpoint (the one the run loop marks `done` in its meta) is scored, or
`--watch_timeout` seconds pass without a new one.

Two-set mode: `--real=SPEC --fake=SPEC`, where SPEC is a dataset string as in the configs
(`mnist5k[:SPLIT]`, `stacked_mnist5k[:SPLIT]`, `tfds:NAME[:SPLIT]`, `folder:PATH`), a folder path,
or an `.npz` holding uint8 images `[N, H, W(, C)]` (array `images`, or its only array; optional
`labels`). Rows are printed and, with `--output`, appended there. `--real=mnist5k:train
--fake=mnist5k:test` is the baseline. The held-out metrics (gan_train, gan_test, iw) take the
dataset's `--baseline_split` as the test split, so `--real` must then be a dataset.

Metrics (feature metrics use `--feature_network`; see `jaxgan/eval/features.py`):
  fid        Fréchet distance of features (`fid.feature_statistics` + `frechet_distance`).
  fid5k_x10  10 aligned 5k-vs-5k FIDs, mean ± std ("How good is my GAN?"); needs 50,000 per set.
  kid        unbiased polynomial-kernel MMD², 100 subsets of min(1000, N) (value not x1e3).
  is         Inception Score of the fakes' logits, 10 splits; `real_value` is the reals' IS.
  swd        PGGAN's SWD x1e3 per Laplacian level and their average, on as many images per set as
             both sets have (PGGAN quotes 16,384); `details` says how many.
  ms_ssim    mean MS-SSIM of `--ms_ssim_pairs` random fake pairs; `real_value` is real pairs'.
  pr         improved precision and recall, k = 3 (`value` is precision).

"How good is my GAN?" and friends (`jaxgan/eval/classifier_metrics.py`; specs/metrics.md §8). The
classifier recipe (`--classifier_recipe`, auto: mnist5k for grayscale, cifar10's ResNet-32
otherwise; `jaxgan/models/classifier.py`) with `--classifier_steps` (0: the recipe's) and
`--classifier_seed`; the "real classifier" is that recipe trained on the whole real train split
(`--real_split`): for mnist5k at the recipe's steps and seed 0 the shipped mnist_cnn (the script's
run of that recipe), else trained once and kept in the cache (`<set>-classifier-<hash>.npz`).
On 2 CPU cores a mnist5k classifier (1,250 steps) takes ~1.5 minutes, so gan_train costs that per
checkpoint; the cifar10 recipe (ResNet-32, 64,000 steps of 128) is for an accelerator.
  gan_train  a fresh classifier trained on the N class-balanced fakes and their labels, accuracy
             on the real test split (`--baseline_split`, all of it). `real_value`: the real
             classifier's accuracy there (the real baseline, GAN-train's upper reference).
  gan_test   the real classifier's accuracy on all N fakes w.r.t. their labels (the reference reads
             2,560 of them, a batch-size quirk, §8.3); `real_value`: the real baseline.
  class_fid  Transferring GANs Table 6: FID (feature network) of each class's reals vs the fakes
             generated for it; `value` is their mean, `values` also has `all` (class-agnostic FID)
             and `class_<c>`. Classes with < 2 images on a side are skipped (`details.skipped`).
  iw         Transferring GANs' independent Wasserstein critic: a fresh DCGAN critic (no norm,
             `--iw_width`) trained `--iw_steps` with WGAN-GP on half A of the test split vs the
             first half of the fakes; `value` = E D(real) - E D(fake) on the other half B vs the
             other half of the fakes (`details.iw_train`: the same on the training halves).
  modes      PGGAN App. E (stacked MNIST, `stacked_mnist5k`): every channel of the 3-channel fakes
             classified by the shipped mnist_cnn, mode = d_R + 10 d_G + 100 d_B; `values`: modes
             covered (of 1,000) and KL(model || uniform) over the non-empty modes, means over
             `--modes_evals` sets of `--modes_images` (PGGAN: 10 x 25,600, so --num_samples=256000);
             `real_value`: the reals' modes over as many full sets as the reference set holds.
gan_train, gan_test and class_fid need a class-conditional generator
(`config.model.conditional_generator=True`); they raise otherwise, before any work.

Row (one JSON object per line; `value` is the headline number, `values` all numbers of the metric):
  {"kind": "checkpoint" | "real_vs_real" | "sets", "step": int | null, "metric": "fid",
   "value": 3.2, "std": null, "values": {"fid": 3.2}, "real_value": null,
   "real": "mnist5k:train", "fake": "ema_params@2000", "n_real": 4000, "n_fake": 4000,
   "feature_network": "mnist_cnn" | "inception_v3" | null (swd, ms_ssim: pixels),
   "feature_weights": "sha256:…", "resize": "none" | "tf1_bilinear_299" | …, "seed": 0,
   "sample_batch_size": 200, "wall_time_s": 0.4, "sample_time_s": 3.1, "feature_time_s": 0.8,
   "timestamp": "2025-01-01T00:00:00Z", "details": {...}}
gan_train / gan_test rows: `values` {"gan_train": 0.97}, `real_value` the real baseline, `n_fake` =
N, `details` {"classifier": {"recipe": "mnist5k", "settings": {...}, "steps": 1250, "seed": 0},
"real_classifier": "shipped:jaxgan/assets/mnist_cnn.npz" | "cache:<file>", "test_set":
"mnist5k:test", "n_test": 1000, "train_set": "mnist5k:train", "n_train": 4000}. class_fid:
`values` {"mean", "all", "class_0", ...}. iw: `values` {"iw"}, `details` {"iw_train", "steps",
"width", "batch_size", "learning_rate", "gp_weight", "real_train": "mnist5k:test[A]",
"n_real_train", "n_real_eval", "n_fake_train", "n_fake_eval"}. modes: `values` {"modes", "kl"}, `details`
{"num_images", "num_evals", "modes_std", "kl_std", "per_eval_modes", "per_eval_kl", "real_kl",
"real_evals", "classifier"}.
A row is "already there" when kind, step, metric, real, fake, feature_network, n_real, n_fake and
seed match; other settings (KID subsets, SWD preset, classifier recipe and steps, iw and modes
settings, ...) are in `details` and need `--force`.
The generator's BatchNorm uses batch statistics when sampling (as the references do), so fakes
depend on `sample_batch_size`; every batch is full (extra latents are drawn, not zero padding).

Real-feature cache: `--cache_dir` (default `$XDG_CACHE_HOME/jaxgan/eval`, else
`~/.cache/jaxgan/eval`), one `.npz` per (image set, feature network), named
`<set>-<network>-<hash>.npz` (e.g. `mnist5k_train-mnist_cnn-75f51cc00184.npz`). The hash is of the
key, which the file also stores and which must match on load: dataset and split, resolution,
channels, number of images, the seed of their (shuffled) order, the source's size (folders: the
files' names, sizes and mtimes; .npz: size and mtime), network name, weights sha256 and resize
mode. It holds the features, logits and labels; the real-pair MS-SSIM is cached the same way
(`<set>-ms_ssim-<hash>.npz`). Generated images are never cached.

Real sets: `--num_real` images (0: the whole split, at most 50,000) in a seeded random order
(`RandomState(seed).permutation`; mnist5k is stored sorted by class, so the first N would not do).
Fakes: `--num_samples` (0: as many as the real set, at most 10,000). FID and KID are biased in N,
so compare numbers only at equal (n_real, n_fake) (metrics.md §10.5).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from absl import app, flags, logging

from jaxgan import errors

METRICS = (
    "fid",
    "fid5k_x10",
    "kid",
    "is",
    "swd",
    "ms_ssim",
    "pr",
    "gan_train",
    "gan_test",
    "class_fid",
    "iw",
    "modes",
)
FEATURE_METRICS = frozenset({"fid", "fid5k_x10", "kid", "is", "pr", "class_fid"})
# Metrics that compare fakes with the labels they were generated for.
LABELLED_METRICS = frozenset({"gan_train", "gan_test", "class_fid"})
# Metrics that need the dataset's whole train and test splits (`RealSplits`).
SPLIT_METRICS = frozenset({"gan_train", "gan_test", "iw"})
# Metrics with no meaning for the real-vs-real baseline (they would train and test on one split).
NO_BASELINE_METRICS = frozenset({"gan_train", "iw"})
DEFAULT_METRICS = "fid,kid,is,swd,ms_ssim,pr"
MAX_DEFAULT_REAL = 50_000
MAX_DEFAULT_SAMPLES = 10_000
IDENTITY_FIELDS = (
    "kind",
    "step",
    "metric",
    "real",
    "fake",
    "feature_network",
    "n_real",
    "n_fake",
    "seed",
)
CACHE_FORMAT = 1

FLAGS = flags.FLAGS


@dataclasses.dataclass
class Options:
    """Everything but the inputs; the CLI flags of the same names."""

    num_samples: int = 0
    num_real: int = 0
    real_split: str = "train"
    baseline_split: str = "test"
    baseline: bool = True
    feature_network: str = "auto"
    inception_weights: str | None = None
    seed: int = 0
    batch_size: int = 200
    feature_batch_size: int = 0
    cache_dir: str | None = None
    swd_preset: str = "pggan"
    ms_ssim_pairs: int = 10_000
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_k: int = 3
    resolution: int = 0
    classifier_recipe: str = "auto"
    classifier_steps: int = 0
    classifier_seed: int = 0
    iw_steps: int = 2000
    iw_width: int = 32
    iw_batch_size: int = 64
    modes_images: int = 25_600
    modes_evals: int = 10
    progress: bool = True


def parse_metrics(names: Iterable[str]) -> list[str]:
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise errors.ConfigError(
            f"--metrics: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(METRICS)}."
        )
    return list(dict.fromkeys(names))


def default_cache_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "jaxgan", "eval")


# ----------------------------------------------------------------------------------------------
# Image sets: what is scored. Images are loaded on first use, so a cached feature set needs none.
# ----------------------------------------------------------------------------------------------


class ImageSet:
    """uint8 images [N, R, R, C] and labels [N] (or None), with a name and an optional cache key.

    `load() -> (images, labels)` runs on first access. `cache_key` (a JSON-able dict) identifies a
    reproducible set (a dataset split, a file); sets without one (generated images) are not cached.
    """

    def __init__(
        self,
        name: str,
        size: int,
        load: Callable[[], tuple[np.ndarray, np.ndarray | None]],
        cache_key: dict | None = None,
    ):
        self.name, self.size, self._load, self.cache_key = name, size, load, cache_key
        self.memo: dict[Any, Any] = {}  # per-set results reused across checkpoints

    @classmethod
    def from_arrays(cls, name: str, images: np.ndarray, labels: np.ndarray | None = None):
        return cls(name, len(images), lambda: (images, labels))

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


def load_images(
    source, indices: np.ndarray, resolution: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reads `source[indices]`, fitted to [resolution, resolution, channels] (`data.fit_image`)."""
    from jaxgan import data
    from jaxgan.data import sources

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
    take contiguous rows (PGGAN's datasets were shuffled once when written, §1.9).
    """
    from jaxgan import data

    source = source or data.open_source(dataset, split, data_dir, channels or None)
    kind, name, named_split = data.parse(dataset)
    split = named_split or split
    display = f"{kind}:{name}" if name else kind
    display = display if kind == "folder" else f"{display}:{split}"
    n = min(limit or MAX_DEFAULT_REAL, len(source))
    order = np.random.RandomState(seed).permutation(len(source))[:n]
    key = {
        "set": display,
        "resolution": resolution,
        "channels": channels,
        "n": n,
        "order_seed": seed,
        "source_size": len(source),
    }
    if kind == "folder":
        key["files"] = _fingerprint_files(source.files)
    return ImageSet(
        display, n, lambda: load_images(source, order, resolution, channels), cache_key=key
    )


EMBEDDED_DATASETS = ("mnist5k", "stacked_mnist5k")  # no files: split names follow a colon


def dataset_splits_name(dataset: str) -> str | None:
    """The dataset string that opens any split ('tfds:cifar10:train' -> 'tfds:cifar10'), or None
    for a folder (one split only)."""
    from jaxgan import data

    kind, name, _ = data.parse(dataset)
    if kind == "folder":
        return None
    return kind if kind in EMBEDDED_DATASETS else f"{kind}:{name}"


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
    from jaxgan import data

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
    """Two-set mode: an ImageSet from a dataset string, a folder path or an .npz of uint8 images."""
    from jaxgan import data

    if spec.endswith(".npz"):
        return _npz_set(spec, resolution, channels, limit, seed)
    if os.path.isdir(spec):
        spec = f"folder:{spec}"
    if spec.split(":")[0] in EMBEDDED_DATASETS and ":" in spec:  # shorthand for a split
        spec, _, split = spec.partition(":")
    source = data.open_source(spec, split, None, channels or None)
    if not resolution or not channels:
        first = source[0][0]
        resolution = resolution or first.shape[0]
        channels = channels or first.shape[-1]
    return dataset_set(spec, split, None, resolution, channels, limit, seed, source=source)


def _npz_set(path: str, resolution: int, channels: int, limit: int, seed: int) -> ImageSet:
    from jaxgan import data

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
            f"{images.shape}. Quantise [-1, 1] floats with jaxgan.logging.to_uint8 first."
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


# ----------------------------------------------------------------------------------------------
# The real-feature cache.
# ----------------------------------------------------------------------------------------------


class Cache:
    """Arrays computed from reproducible image sets, one `.npz` per key under `directory`.

    The full key is stored in the file and compared on load, so a hash collision or a renamed
    file is recomputed, never silently reused.
    """

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, key: dict) -> str:
        text = json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        slug = "-".join(
            str(key[k]) for k in ("set", "what") if k in key
        )  # for people; hash decides
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", slug).strip("_")[-60:]
        return os.path.join(self.directory, f"{slug}-{digest}.npz")

    def get_or_compute(
        self, key: dict, compute: Callable[[], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        path = self.path(key)
        text = json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True)
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["__key__"]) == text:
                    logging.info("Real-set cache hit: %s", path)
                    return {k: stored[k] for k in stored.files if k != "__key__"}
            logging.warning("Cache file %s has a different key; recomputing it.", path)
        arrays = compute()
        os.makedirs(self.directory, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez(f, __key__=np.array(text), **arrays)
        os.replace(tmp, path)
        logging.info("Real-set cache written: %s", path)
        return arrays


# ----------------------------------------------------------------------------------------------
# Scoring: one row per metric for a (real, fake) pair of image sets.
# ----------------------------------------------------------------------------------------------


class Scorer:
    """Computes metric rows; loads the feature network on first use and reuses real-set results.

    splits: the dataset's whole train and test splits, for gan_train, gan_test and iw (None where
    the real images are not a dataset: those metrics then raise).
    """

    def __init__(
        self, network_name: str | None, options: Options, splits: RealSplits | None = None
    ):
        self.network_name, self.options, self.splits = network_name, options, splits
        self.cache = Cache(options.cache_dir or default_cache_dir())
        self._network = None
        self._classifiers: dict[tuple, dict] = {}

    def network(self, resolution: int, channels: int):
        if self._network is None:
            from jaxgan.eval import features

            self._network = features.load(
                self.network_name,
                resolution,
                channels,
                self.options.feature_batch_size,
                self.options.inception_weights,
                self.options.progress,
            )
        return self._network

    def features(self, image_set: ImageSet, resolution: int, channels: int) -> dict:
        """{"features": [N, D], "logits": [N, K]} of a set (cached on disk if it has a key)."""
        if "features" not in image_set.memo:
            network = self.network(resolution, channels)
            start = time.perf_counter()

            def compute():
                out = network.extract(image_set.images)
                if image_set.labels is not None:
                    out["labels"] = np.asarray(image_set.labels, np.int32)
                return out

            if image_set.cache_key is None:
                result = compute()
            else:
                key = {
                    **image_set.cache_key,
                    "what": network.name,
                    "weights": network.weights,
                    "resize": network.resize,
                }
                result = self.cache.get_or_compute(key, compute)
            image_set.memo["features"] = result
            image_set.memo["feature_time_s"] = time.perf_counter() - start
        return image_set.memo["features"]

    def rows(
        self,
        real: ImageSet,
        fake: ImageSet,
        metrics: Sequence[str],
        resolution: int,
        channels: int,
        identity: dict,
        extra: dict | None = None,
    ) -> Iterable[dict]:
        """Yields one row per metric (as each is done, so a long run shows progress)."""
        if FEATURE_METRICS & set(metrics):  # shared by the feature metrics: timed on its own
            self.features(real, resolution, channels)
            self.features(fake, resolution, channels)
        for metric in metrics:
            start = time.perf_counter()
            result = getattr(self, f"_{metric}")(real, fake, resolution, channels)
            wall = time.perf_counter() - start
            uses_network = metric in FEATURE_METRICS
            network = self._network if uses_network else None
            values = result.pop("values")
            row = {
                **identity,
                "metric": metric,
                "value": values[next(iter(values))],
                "std": result.pop("std", None),
                "values": values,
                "real_value": result.pop("real_value", None),
                "real": real.name,
                "fake": fake.name,
                "n_real": real.size,
                "n_fake": fake.size,
                "feature_network": network.name if network else None,
                "feature_weights": network.weights if network else None,
                "resize": network.resize if network else "none",
                "seed": self.options.seed,
                **(extra or {}),
                "wall_time_s": round(wall, 3),
                "feature_time_s": round(fake.memo.get("feature_time_s", 0.0), 3)
                if uses_network
                else None,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "details": result,
            }
            yield row

    # Each metric: (real, fake, resolution, channels) -> {"values": {...}, "std"?, "real_value"?, **details}.

    def _fid(self, real, fake, resolution, channels):
        from jaxgan.eval import fid

        if "fid_stats" not in real.memo:  # FID of one reference against many checkpoints
            real.memo["fid_stats"] = fid.feature_statistics(
                self.features(real, resolution, channels)["features"]
            )
        mu, sigma = fid.feature_statistics(self.features(fake, resolution, channels)["features"])
        return {"values": {"fid": fid.frechet_distance(*real.memo["fid_stats"], mu, sigma)}}

    def _fid5k_x10(self, real, fake, resolution, channels):
        from jaxgan.eval import fid

        mean, std = fid.fid_chunks(
            self.features(real, resolution, channels)["features"],
            self.features(fake, resolution, channels)["features"],
        )
        return {"values": {"fid5k_x10": mean}, "std": std, "num_chunks": 10, "chunk_size": 5000}

    def _kid(self, real, fake, resolution, channels):
        from jaxgan.eval import kid

        o = self.options
        mean, std = kid.kernel_inception_distance(
            self.features(real, resolution, channels)["features"],
            self.features(fake, resolution, channels)["features"],
            o.kid_subsets,
            o.kid_subset_size,
            o.seed,
        )
        subset = min(o.kid_subset_size, real.size, fake.size)
        return {
            "values": {"kid": mean},
            "std": std,
            "num_subsets": o.kid_subsets,
            "subset_size": subset,
        }

    def _is(self, real, fake, resolution, channels):
        from jaxgan.eval import inception_score

        o = self.options
        if "is" not in real.memo:
            real.memo["is"] = inception_score.inception_score(
                self.features(real, resolution, channels)["logits"], o.is_splits, o.seed
            )
        mean, std = inception_score.inception_score(
            self.features(fake, resolution, channels)["logits"], o.is_splits, o.seed
        )
        return {
            "values": {"is": mean},
            "std": std,
            "real_value": real.memo["is"][0],
            "real_std": real.memo["is"][1],
            "splits": o.is_splits,
            "logits": self._network.logits_layer,
        }

    def _pr(self, real, fake, resolution, channels):
        from jaxgan.eval import prd

        result = prd.precision_recall(
            real_features=self.features(real, resolution, channels)["features"],
            fake_features=self.features(fake, resolution, channels)["features"],
            k=self.options.pr_k,
        )
        return {"values": result, "k": self.options.pr_k}

    # --- "How good is my GAN?" and friends (jaxgan/eval/classifier_metrics.py) --------------------

    def _require_splits(self, metric: str) -> RealSplits:
        if self.splits is None:
            raise errors.ConfigError(
                f"{metric} needs the real dataset's train and test splits: give --real as a "
                f"dataset (mnist5k:train, tfds:NAME:train), not a folder or an .npz."
            )
        return self.splits

    def _recipe(self, channels: int):
        """(recipe name, Recipe, steps, seed) of the classifier metrics."""
        return classifier_recipe(self.options, self._require_splits("gan_train").dataset, channels)

    def _classifier_details(self, channels: int) -> dict:
        name, recipe, steps, seed = self._recipe(channels)
        return {"recipe": name, "settings": recipe.asdict(), "steps": steps, "seed": seed}

    def real_classifier(self, resolution: int, channels: int) -> dict:
        """The recipe trained on the real train split: {"predict", "accuracy" (on the test split),
        "source"}. mnist5k at the recipe's own steps and seed 0 is the shipped mnist_cnn (the
        script's run of the same recipe); anything else is trained once and cached."""
        from jaxgan.eval import features
        from jaxgan.models import classifier

        splits = self._require_splits("gan_test")
        name, recipe, steps, seed = self._recipe(channels)
        memo_key = (name, steps, seed, resolution, channels)
        if memo_key in self._classifiers:
            return self._classifiers[memo_key]
        model = classifier.get(recipe.model, splits.num_classes)
        shipped = (
            splits.dataset == "mnist5k"
            and (name, steps, splits.num_classes) == ("mnist5k", recipe.steps, 10)
            and (resolution, channels) == classifier.INPUT_SHAPES["mnist_cnn"]
        )
        if shipped:
            params, info = classifier.load_params(features.mnist_cnn_weights_path(), model)
            shipped = info.get("seed") == seed and info.get("epochs") == 20
        if shipped:
            source = "shipped:jaxgan/assets/mnist_cnn.npz"
        else:
            key = {
                **splits.train.cache_key,
                "what": "classifier",
                "recipe": recipe.asdict(),
                "steps": steps,
                "classifier_seed": seed,
                "num_classes": splits.num_classes,
            }
            train = splits.train

            def compute():
                logging.info(
                    "Training the real classifier (%s, %d steps) on %s.", name, steps, train.name
                )
                params = classifier.train_classifier(
                    train.images, train.labels, recipe, seed, splits.num_classes, steps
                )
                return classifier.flatten(params)

            params = classifier.unflatten(self.cache.get_or_compute(key, compute))
            source = f"cache:{os.path.basename(self.cache.path(key))}"
        predict = classifier.make_predictor(model, params)
        test_logits = predict(splits.test.images)["logits"]
        self._classifiers[memo_key] = {
            "predict": predict,
            "accuracy": classifier.accuracy(test_logits, splits.test.labels),
            "source": source,
        }
        return self._classifiers[memo_key]

    def _split_details(self, splits: RealSplits) -> dict:
        return {
            "train_set": splits.train.name,
            "n_train": splits.train.size,
            "test_set": splits.test.name,
            "n_test": splits.test.size,
        }

    def _gan_train(self, real, fake, resolution, channels):
        from jaxgan.eval import classifier_metrics

        splits = self._require_splits("gan_train")
        _require_labels("gan_train", fake)
        _, recipe, steps, seed = self._recipe(channels)
        result = classifier_metrics.gan_train(
            fake.images,
            fake.labels,
            splits.test.images,
            splits.test.labels,
            recipe,
            seed,
            splits.num_classes,
            steps,
        )
        baseline = self.real_classifier(resolution, channels)
        return {
            "values": {"gan_train": result["accuracy"]},
            "real_value": baseline["accuracy"],
            "classifier": self._classifier_details(channels),
            "real_classifier": baseline["source"],
            **self._split_details(splits),
        }

    def _gan_test(self, real, fake, resolution, channels):
        from jaxgan.eval import classifier_metrics

        splits = self._require_splits("gan_test")
        _require_labels("gan_test", fake)
        baseline = self.real_classifier(resolution, channels)
        return {
            "values": {
                "gan_test": classifier_metrics.gan_test(
                    baseline["predict"], fake.images, fake.labels
                )
            },
            "real_value": baseline["accuracy"],
            "classifier": self._classifier_details(channels),
            "real_classifier": baseline["source"],
            **self._split_details(splits),
        }

    def _class_fid(self, real, fake, resolution, channels):
        from jaxgan.eval import classifier_metrics

        real_out = self.features(real, resolution, channels)
        _require_labels("class_fid", fake)
        if "labels" not in real_out:
            raise errors.ConfigError(
                f"class_fid needs the reference set's labels; {real.name} has none."
            )
        num_classes = (
            self.splits.num_classes
            if self.splits is not None
            else int(max(real_out["labels"].max(), fake.labels.max())) + 1
        )
        result = classifier_metrics.class_fid(
            real_out["features"],
            real_out["labels"],
            self.features(fake, resolution, channels)["features"],
            fake.labels,
            num_classes,
        )
        per_class = {f"class_{c}": v for c, v in result["per_class"].items()}
        return {
            "values": {"mean": result["mean"], "all": result["all"], **per_class},
            "skipped": result["skipped"],
            "singular": result["singular"],
            "num_classes": num_classes,
        }

    def _iw(self, real, fake, resolution, channels):
        from jaxgan.eval import classifier_metrics

        splits = self._require_splits("iw")
        o = self.options
        # Transferring GANs trains the critic on held-out reals (its X1, "typically a validation
        # set"); half of the test split trains it, the other half (and fresh fakes) scores it.
        order = np.random.RandomState(o.seed).permutation(splits.test.size)
        half_real, half_fake = splits.test.size // 2, fake.size // 2
        real_a = splits.test.images[np.sort(order[:half_real])]
        real_b = splits.test.images[np.sort(order[half_real:])]
        settings = {
            "steps": o.iw_steps,
            "width": o.iw_width,
            "batch_size": o.iw_batch_size,
            "learning_rate": 2e-4,
            "gp_weight": 10.0,
        }
        result = classifier_metrics.independent_wasserstein(
            real_a,
            fake.images[:half_fake],
            real_b,
            fake.images[half_fake:],
            seed=o.seed,
            **settings,
        )
        return {
            "values": {"iw": result["iw"]},
            "iw_train": result["iw_train"],
            **settings,
            "critic": "dcgan.Critic(norm='none'), WGAN-GP, Adam(b1=0, b2=0.9)",
            "real_train": f"{splits.test.name}[A]",
            "real_eval": f"{splits.test.name}[B]",
            "n_real_train": len(real_a),
            "n_real_eval": len(real_b),
            "n_fake_train": half_fake,
            "n_fake_eval": fake.size - half_fake,
        }

    def _modes(self, real, fake, resolution, channels):
        from jaxgan.eval import classifier_metrics, features

        o = self.options
        digits = features.load("mnist_cnn", resolution, 1)  # the shipped MNIST classifier
        result = classifier_metrics.stacked_modes(
            fake.images, digits.extract, o.modes_images, o.modes_evals
        )
        real_evals = min(o.modes_evals, real.size // o.modes_images)
        memo_key = ("modes", o.modes_images, real_evals)
        if real_evals and memo_key not in real.memo:
            real.memo[memo_key] = classifier_metrics.stacked_modes(
                real.images, digits.extract, o.modes_images, real_evals
            )
        reals = real.memo.get(memo_key)
        return {
            "values": {"modes": result["modes"], "kl": result["kl"]},
            "real_value": reals["modes"] if reals else None,
            "real_kl": reals["kl"] if reals else None,
            "real_evals": real_evals,
            "num_images": o.modes_images,
            "num_evals": o.modes_evals,
            **{k: result[k] for k in ("modes_std", "kl_std", "per_eval_modes", "per_eval_kl")},
            "classifier": f"mnist_cnn per channel ({digits.weights})",
        }

    def _swd(self, real, fake, resolution, channels):
        from jaxgan.eval import swd

        preset = swd.SWD_PRESETS[self.options.swd_preset]
        n = min(real.size, fake.size)  # PGGAN compares equal counts; use all that both sets have
        seed = self.options.seed
        memo_key = ("swd", n, self.options.swd_preset)
        if memo_key not in real.memo:  # PGGAN reuses desc_real for every snapshot
            real.memo[memo_key] = _swd_descriptors(real.images[:n], resolution, seed, preset)
        # Fakes: their own RNG, the same for every checkpoint, so a row does not depend on which
        # other checkpoints were scored in the same call.
        rng = np.random.RandomState(seed + 1)
        fake_descriptors = _swd_descriptors(fake.images[:n], resolution, rng, preset)
        values = swd.sliced_wasserstein_distances(
            real.memo[memo_key], fake_descriptors, swd.swd_resolutions(resolution), rng, preset
        )
        values = {"SWDx1e3_avg": values.pop("SWDx1e3_avg"), **values}
        return {
            "values": values,
            "preset": self.options.swd_preset,
            "images_per_set": n,
            "note": f"PGGAN quotes SWD at {preset.num_images} images per set; this used {n}.",
            "nhoods_per_image": preset.nhoods_per_image,
            "dir_repeats": preset.dir_repeats,
            "dirs_per_repeat": preset.dirs_per_repeat,
        }

    def _ms_ssim(self, real, fake, resolution, channels):
        from jaxgan.eval import ms_ssim

        pairs, seed = self.options.ms_ssim_pairs, self.options.seed
        if "ms_ssim" not in real.memo:

            def compute():
                return {"ms_ssim": np.array(ms_ssim.ms_ssim_random_pairs(real.images, pairs, seed))}

            if real.cache_key is None:
                real.memo["ms_ssim"] = float(compute()["ms_ssim"])
            else:
                key = {**real.cache_key, "what": "ms_ssim", "pairs": pairs, "pair_seed": seed}
                real.memo["ms_ssim"] = float(self.cache.get_or_compute(key, compute)["ms_ssim"])
        value = ms_ssim.ms_ssim_random_pairs(fake.images, pairs, seed)
        return {"values": {"ms_ssim": value}, "real_value": real.memo["ms_ssim"], "pairs": pairs}


def _swd_descriptors(images: np.ndarray, resolution: int, rng, preset) -> list[np.ndarray]:
    """PGGAN's normalised patch descriptors per level, fed 256 images at a time (its minibatches)."""
    from jaxgan.eval import swd

    accumulator = swd.SWDDescriptorAccumulator(resolution, rng, preset)
    for start in range(0, len(images), 256):
        accumulator.add(images[start : start + 256])
    return accumulator.finalize()


def classifier_recipe(options: Options, dataset: str, channels: int):
    """(name, `classifier.Recipe`, steps, seed) from --classifier_recipe/_steps/_seed."""
    from jaxgan.models import classifier

    name = options.classifier_recipe
    if name == "auto":
        name = classifier.recipe_for(dataset, channels)
    recipe = classifier.get_recipe(name)
    return name, recipe, options.classifier_steps or recipe.steps, options.classifier_seed


def _require_labels(metric: str, fake: ImageSet) -> None:
    if fake.labels is None:
        raise errors.ConfigError(
            f"{metric} compares generated images with the labels they were generated for; "
            f"{fake.name} has none (a class-conditional generator's fakes, or an .npz with labels)."
        )


def check_metric_inputs(
    metrics: Sequence[str],
    network_name: str | None,
    n_real: int,
    n_fake: int,
    labelled: bool,
    options: Options | None = None,
    channels: int | None = None,
) -> None:
    """Errors a run would otherwise hit after minutes of sampling, raised before any work.

    labelled: whether the fakes come with the labels they were generated for (workdir mode: the
    generator is class-conditional). options / channels: for the modes metric's checks.
    """
    if "fid5k_x10" in metrics and min(n_real, n_fake) < 50_000:
        raise errors.ConfigError(
            f"fid5k_x10 compares 10 aligned chunks of 5,000 and needs 50,000 images per set; this "
            f"evaluation has n_real={n_real}, n_fake={n_fake}. Pass --num_samples=50000 (and "
            f"--num_real=50000 with a split that large), or use fid."
        )
    needs_labels = [m for m in metrics if m in LABELLED_METRICS]
    if needs_labels and not labelled:
        raise errors.ConfigError(
            f"{', '.join(needs_labels)} score(s) generated images against the labels they were "
            f"generated for, so they need a class-conditional generator: a run with "
            f"config.model.conditional_generator=True (AC-GAN: with config.model.ac_head=True; an "
            f"AC head alone leaves the generator unconditional) or, for two sets, labels in both."
        )
    if "modes" in metrics and options is not None:
        needed = options.modes_images * options.modes_evals
        if channels not in (None, 3):
            raise errors.ConfigError(
                f"modes classifies the 3 channels of stacked-MNIST images (stacked_mnist5k); these "
                f"images have {channels} channel(s)."
            )
        if n_fake < needed:
            raise errors.ConfigError(
                f"modes averages {options.modes_evals} evaluations of {options.modes_images:,} "
                f"images (PGGAN App. E) and needs {needed:,} fakes; this evaluation has "
                f"{n_fake:,}. Pass --num_samples={needed}, or smaller --modes_images / --modes_evals."
            )


# ----------------------------------------------------------------------------------------------
# metrics.jsonl: append, skip what is there, replace with --force.
# ----------------------------------------------------------------------------------------------


def row_identity(row: dict) -> tuple:
    return tuple(json.dumps(row.get(k), sort_keys=True) for k in IDENTITY_FIELDS)


def error_row(identity: dict, error: str) -> dict:
    """The row of a metric that could not be computed (an unreadable checkpoint): `value` null and
    the one-line reason in `error`. It does not make its identity done: a later run retries it."""
    return {
        **identity,
        "value": None,
        "std": None,
        "values": {},
        "real_value": None,
        "error": error,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class MetricsLog:
    """`<dir>/metrics.jsonl`: rows keyed by `IDENTITY_FIELDS`, shared by concurrent evaluators.

    Append-only and safe to kill: a row is one appended line. A line that does not parse (an
    evaluator killed mid-append) is skipped with one warning, and the next append starts on a new
    line. Appends and rewrites (`--force` replacing a row, or a retried error row) hold an
    exclusive `flock` on `metrics.jsonl.lock` and work on the file as re-read under it, so rows
    another evaluator appended since this one last read are kept; a rewrite goes through a
    temporary file and a rename, so the file is never half-written. Reads take the lock shared.
    """

    def __init__(self, path: str):
        self.path = path
        self.lock_path = f"{path}.lock"
        self._reported: set[int] = set()  # unparseable line numbers already warned about
        self.rows: list[dict] = []
        self.reload()

    def reload(self) -> list[dict]:
        """Re-reads the file (picking up other evaluators' rows); returns the rows."""
        if not os.path.exists(self.path):
            self.rows = []
        else:
            with self._locked(fcntl.LOCK_SH):
                self.rows = self._read()
        return self.rows

    def has(self, identity: dict) -> bool:
        """Whether a row of this identity holds a value (an error row is not done)."""
        wanted = row_identity(identity)
        return any(row_identity(r) == wanted and "error" not in r for r in self.rows)

    def write(self, row: dict) -> None:
        """Appends `row`, or, where a row of the same identity is there, rewrites the file with
        that row replaced."""
        from jaxgan import logging as run_logging

        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        key = row_identity(row)
        with self._locked(fcntl.LOCK_EX):
            rows = self._read()
            if any(row_identity(r) == key for r in rows):
                rows = [r for r in rows if row_identity(r) != key] + [row]
                run_logging.write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
                self._reported.clear()  # the rewritten file has no unparseable lines
            else:
                run_logging.append_jsonl(self.path, row)  # after a torn last line: on a new one
                rows.append(row)
        self.rows = rows

    @contextlib.contextmanager
    def _locked(self, operation: int) -> Iterator[None]:
        # A side file: a rewrite's rename replaces metrics.jsonl's inode, and any lock held on it.
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, operation)
            yield  # closing the file releases the lock

    def _read(self) -> list[dict]:
        from jaxgan import logging as run_logging

        rows, bad_lines = run_logging.parse_jsonl(self.path)
        new = [n for n in bad_lines if n not in self._reported]
        if new:
            logging.warning(
                "%s: skipped line(s) %s, not JSON rows (an evaluator killed mid-append?).",
                self.path,
                ", ".join(map(str, new)),
            )
            self._reported.update(new)
        return rows


# ----------------------------------------------------------------------------------------------
# Generators: built through the method registry (jaxgan/methods.py), as the run loop builds them.
# ----------------------------------------------------------------------------------------------


def generator_is_conditional(config) -> bool:
    """Whether fakes are drawn for the labels given (what labelled metrics compare them with)."""
    from jaxgan import methods

    return methods.get(config.method).is_conditional(config)


def generation_inputs(config, num_classes: int, n: int, batch_size: int, seed: int):
    """Latents [n_total, z_dim] and labels [n_total] for n images in full batches of batch_size.

    n_total = ceil(n / batch_size) * batch_size: the generator's BatchNorm uses batch statistics, so
    the last batch is filled with further latents rather than zeros; the extra images are dropped.
    Labels are class-balanced, `arange % num_classes` (gan_evaluation `gan.py::generate`, §8.2).
    """
    import jax

    from jaxgan import train

    n_total = -(-n // batch_size) * batch_size
    z = np.asarray(train.sample_latents(config, jax.random.key(seed), n_total))
    if train.is_conditional(config):
        labels = np.arange(n_total, dtype=np.int32) % num_classes
    else:
        labels = np.zeros(n_total, np.int32)
    return z, labels


def generate(sample, params, z, labels, n: int, batch_size: int, mesh) -> np.ndarray:
    """uint8 [n, R, R, C]: `sample` over full batches (sharded over the mesh), `to_uint8`-quantised."""
    import jax

    from jaxgan import logging as run_logging
    from jaxgan import parallel

    batch_sharding = parallel.sharded_on(mesh, 0)
    images = []
    for start in range(0, len(z), batch_size):
        batch_z = jax.device_put(z[start : start + batch_size], batch_sharding)
        batch_labels = jax.device_put(labels[start : start + batch_size], batch_sharding)
        images.append(run_logging.to_uint8(jax.device_get(sample(params, batch_z, batch_labels))))
    return np.concatenate(images)[:n]


def checkpoint_config(meta: dict, run_config):
    """The config checkpoint `meta` was saved with (`meta["config"]`), else `run_config`.

    A run may be resumed with changed fields that are safe mid-run (num_steps, cadences, learning
    rates), so `W/config.json` is only the latest config; a checkpoint written before meta held a
    config falls back to it.
    """
    import ml_collections

    stored = meta.get("config")
    return run_config if stored is None else ml_collections.ConfigDict(stored)


class Samplers:
    """A run's generators: `samplers(config, meta) -> sample(params, z, labels)` for a checkpoint
    saved with `config` and `meta`, built (and so compiled) once per distinct config, not once per
    checkpoint."""

    def __init__(self, channels: int, num_classes: int, mesh):
        self.channels, self.num_classes, self.mesh = channels, num_classes, mesh
        self._by_config: dict[str, Callable[[dict], Callable]] = {}

    def __call__(self, config, meta: dict) -> Callable:
        key = json.dumps(config.to_dict(), sort_keys=True, default=str)
        if key not in self._by_config:
            from jaxgan import methods

            build = methods.get(config.method).sampler
            self._by_config[key] = build(config, self.channels, self.num_classes, self.mesh)
        return self._by_config[key](meta)


def sample_checkpoint(
    workdir: str,
    config,
    step: str | int,
    n: int,
    seed: int,
    batch_size: int = 200,
    samplers: Samplers | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """n uint8 fakes [n, R, R, C] of checkpoint `step` ('latest' or a step) of a run, with their
    labels [n] (class-balanced for conditional generators) and the step: the workdir mode's
    sampling (same latents for a given seed and n), for the experiments (`jaxgan.experiments`).

    `config` is the run's (W/config.json); the generator is built from the checkpoint's own
    (`checkpoint_config`). Pass one `samplers` to calls on the same run to compile once per config.
    """
    from jaxgan import checkpoint, data, parallel

    source = data.open_source(
        config.data.dataset, "train", config.data.data_dir, config.data.channels or None
    )
    channels = config.data.channels or source.channels
    mesh = samplers.mesh if samplers is not None else parallel.make_mesh()
    samplers = samplers or Samplers(channels, source.num_classes, mesh)
    devices = mesh.devices.size
    batch_size = -(-min(batch_size, n) // devices) * devices
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    try:
        available = ckpt.all_steps()
        if not available:
            raise FileNotFoundError(f"No checkpoints in {ckpt.directory}.")
        step = available[-1] if step == "latest" else int(step)
        if step not in available:
            raise errors.ConfigError(
                f"Checkpoint {step} is not in {ckpt.directory} (has {available})."
            )
        params, meta = ckpt.restore_state_entry(step, "ema_params", parallel.replicated(mesh))
    finally:
        ckpt.close()
    sample = samplers(checkpoint_config(meta, config), meta)
    z, labels = generation_inputs(config, source.num_classes, n, batch_size, seed)
    images = generate(sample, params, z, labels, n, batch_size, mesh)
    return images, labels[:n], step


# ----------------------------------------------------------------------------------------------
# Workdir mode.
# ----------------------------------------------------------------------------------------------


def load_config(workdir: str):
    import ml_collections

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be a training run's directory (jaxgan.main writes "
            f"config.json there before training)."
        )
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def select_steps(available: Sequence[int], spec: str) -> list[int]:
    """--steps: 'all', 'latest' or 'N,M,...' (listed steps that are not saved are left out)."""
    if spec == "all":
        return list(available)
    if spec == "latest":
        return list(available[-1:])
    try:
        wanted = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise errors.ConfigError(
            f"--steps={spec!r}: expected all, latest or a list like 1000,2000."
        ) from None
    return [s for s in wanted if s in set(available)]


def resolve_network(metrics, options: Options, dataset: str, channels: int | None, resolution):
    """The feature network's name (None if no metric needs one); fails fast if it is missing."""
    if not FEATURE_METRICS & set(metrics):
        return None
    from jaxgan.eval import features

    name = features.resolve_name(options.feature_network, dataset, channels, resolution)
    features.check_available(name, options.inception_weights)
    return name


def evaluate_workdir(
    workdir: str,
    metrics: Sequence[str],
    options: Options,
    steps: str = "all",
    force: bool = False,
    watch: bool = False,
    poll_seconds: float = 60.0,
    watch_timeout: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Scores `workdir`'s checkpoints; returns the rows written (also in W/eval/metrics.jsonl)."""
    metrics = parse_metrics(metrics)
    config = load_config(workdir)
    dataset, resolution = config.data.dataset, config.data.resolution
    known_channels = config.data.channels or {"mnist5k": 1, "stacked_mnist5k": 3}.get(dataset)
    # Fail fast (missing Inception weights) before opening data or building anything heavy.
    resolved_early = options.feature_network != "auto" or known_channels is not None
    if resolved_early:
        network_name = resolve_network(metrics, options, dataset, known_channels, resolution)

    from jaxgan import checkpoint, data, parallel
    from jaxgan import logging as run_logging

    source = data.open_source(
        dataset, options.real_split, config.data.data_dir, config.data.channels or None
    )
    channels = config.data.channels or source.channels
    if not resolved_early:
        network_name = resolve_network(metrics, options, dataset, channels, resolution)
    from jaxgan import methods

    methods.get(config.method)  # an unknown method fails here, before any sampling
    real = dataset_set(
        dataset,
        options.real_split,
        config.data.data_dir,
        resolution,
        channels,
        options.num_real,
        options.seed,
        source=source,
    )
    n_fake = options.num_samples or min(real.size, MAX_DEFAULT_SAMPLES)
    labelled = generator_is_conditional(config)
    check_metric_inputs(metrics, network_name, real.size, n_fake, labelled, options, channels)
    splits = None
    if SPLIT_METRICS & set(metrics):
        splits = real_splits(dataset, config.data.data_dir, resolution, channels, options)

    eval_dir = os.path.join(workdir, "eval")
    log = MetricsLog(os.path.join(eval_dir, "metrics.jsonl"))
    scorer = Scorer(network_name, options, splits)
    written: list[dict] = []

    def identity(kind, step, metric, fake_name, fake_size):
        return {
            "kind": kind,
            "step": step,
            "metric": metric,
            "real": real.name,
            "fake": fake_name,
            "feature_network": network_name if metric in FEATURE_METRICS else None,
            "n_real": real.size,
            "n_fake": fake_size,
            "seed": options.seed,
        }

    def todo(kind, step, fake_name, fake_size):
        return [
            m
            for m in metrics
            if force or not log.has(identity(kind, step, m, fake_name, fake_size))
        ]

    def is_done(step):
        return step in scored or not todo("checkpoint", step, f"ema_params@{step}", n_fake)

    def emit(rows):
        for row in rows:
            log.write(row)
            written.append(row)
            if row["value"] is None:  # an error row: its warning was logged once for all metrics
                continue
            logging.info(
                "%s %s: %s = %.6g (%s vs %s)",
                row["kind"],
                row["step"] if row["step"] is not None else "",
                row["metric"],
                row["value"],
                row["real"],
                row["fake"],
            )

    # --- Real-vs-real baseline (train split vs test split) -----------------------------------------
    if options.baseline:
        baseline = _baseline_set(config, options, resolution, channels, real)
        if baseline is not None:
            pending = todo("real_vs_real", None, baseline.name, baseline.size)
            if "fid5k_x10" in pending and baseline.size < 50_000:
                logging.warning(
                    "No real-vs-real fid5k_x10: %s has %d images.", baseline.name, baseline.size
                )
                pending.remove("fid5k_x10")
            if "modes" in pending and baseline.size < options.modes_images * options.modes_evals:
                logging.warning(
                    "No real-vs-real modes: %s has %d images (modes' real_value counts the "
                    "reference set's).",
                    baseline.name,
                    baseline.size,
                )
                pending.remove("modes")
            for metric in NO_BASELINE_METRICS & set(pending):
                # gan_train's real baseline is gan_train/gan_test's real_value; iw would train
                # and score its critic on the test split itself.
                logging.info("No real-vs-real %s: see its rows' real_value.", metric)
                pending.remove(metric)
            emit(
                scorer.rows(
                    real,
                    baseline,
                    pending,
                    resolution,
                    channels,
                    {"kind": "real_vs_real", "step": None},
                )
            )

    # --- Checkpoints ----------------------------------------------------------------------------
    mesh = parallel.make_mesh()
    devices = mesh.devices.size
    batch_size = -(-min(options.batch_size, n_fake) // devices) * devices
    samplers = Samplers(channels, source.num_classes, mesh)
    z, labels = generation_inputs(config, source.num_classes, n_fake, batch_size, options.seed)
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    replicated = parallel.replicated(mesh)
    bar = run_logging.progress_bar(0, unit="ckpt", desc="evaluate") if options.progress else None
    scored: set[int] = set()  # scored, or found unreadable, by this call: not retried each poll
    metas: dict[int, dict] = {}
    last_new = time.monotonic()

    def meta_of(step: int) -> dict:
        """The meta of checkpoint `step` ({} where it cannot be read: not the run's last, then)."""
        if step not in metas:
            try:
                metas[step] = ckpt.restore_meta(step)
            except checkpoint.UnreadableCheckpoint:
                return {}
        return metas[step]

    try:
        while True:
            available = ckpt.all_steps()
            if not available and not watch:
                raise FileNotFoundError(f"No checkpoints in {ckpt.directory}.")
            pending = []
            for step in select_steps(available, steps):
                fake_name = f"ema_params@{step}"
                missing = todo("checkpoint", step, fake_name, n_fake)
                if missing and step not in scored:
                    pending.append((step, fake_name, missing))
            if bar is not None and pending:
                bar.total += len(pending)
                bar.refresh()
            for step, fake_name, missing in pending:
                start = time.perf_counter()
                try:
                    params, meta = ckpt.restore_state_entry(step, "ema_params", replicated)
                except checkpoint.UnreadableCheckpoint as e:
                    if step not in ckpt.all_steps():  # the trainer's keep_last rotation
                        logging.warning(
                            "Checkpoint %d was deleted before it could be scored.", step
                        )
                        continue
                    reason = " ".join(str(e).split())  # one line, whatever the libraries said
                    logging.warning("Checkpoint %d is unreadable, not scored: %s", step, reason)
                    emit(
                        [
                            error_row(identity("checkpoint", step, m, fake_name, n_fake), reason)
                            for m in missing
                        ]
                    )
                    scored.add(step)
                    if bar is not None:
                        bar.update(1)
                    continue
                metas[step] = meta
                sample = samplers(checkpoint_config(meta, config), meta)
                images = generate(sample, params, z, labels, n_fake, batch_size, mesh)
                del params
                sample_time = time.perf_counter() - start
                fake = ImageSet.from_arrays(
                    fake_name, images, labels[:n_fake] if labelled else None
                )
                rows = []
                for row in scorer.rows(
                    real,
                    fake,
                    missing,
                    resolution,
                    channels,
                    {"kind": "checkpoint", "step": step},
                    {"sample_batch_size": batch_size, "sample_time_s": round(sample_time, 3)},
                ):
                    emit([row])
                    rows.append(row)
                scored.add(step)
                last_new = time.monotonic()
                if watch:  # plots follow a live run; otherwise they are drawn once at the end
                    plot_metrics(log.rows, eval_dir)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({r["metric"]: f"{r['value']:.4g}" for r in rows}, refresh=True)
            if not watch:
                break
            done = [s for s in select_steps(ckpt.all_steps(), steps) if is_done(s)]
            # The loop marks the checkpoint it saves when the run is complete.
            if done and meta_of(max(done)).get("done"):
                logging.info("Scored the run's last checkpoint (%d); done watching.", max(done))
                break
            if watch_timeout and time.monotonic() - last_new > watch_timeout:
                logging.info("No new checkpoint for %.0f s; done watching.", watch_timeout)
                break
            sleep(poll_seconds)
            log.reload()  # another evaluator of this workdir may have scored some meanwhile
    finally:
        if bar is not None:
            bar.close()
        ckpt.close()
    plot_metrics(log.rows, eval_dir)
    _print_summary(log.rows, metrics)
    return written


def _baseline_set(config, options: Options, resolution: int, channels: int, real: ImageSet):
    """The `--baseline_split` of the training dataset, or None where the dataset has no splits."""
    from jaxgan import data

    kind, name, named_split = data.parse(config.data.dataset)
    if kind == "folder":
        logging.info("No real-vs-real baseline: folder datasets have no second split.")
        return None
    if (named_split or options.real_split) == options.baseline_split:
        logging.info("No real-vs-real baseline: --baseline_split equals the reference split.")
        return None
    dataset = dataset_splits_name(config.data.dataset)
    try:
        return dataset_set(
            dataset,
            options.baseline_split,
            config.data.data_dir,
            resolution,
            channels,
            options.num_real,
            options.seed,
        )
    except (FileNotFoundError, ValueError) as e:
        logging.warning("No real-vs-real baseline (split %r): %s", options.baseline_split, e)
        return None


def _print_summary(rows: list[dict], metrics: Sequence[str]) -> None:
    """The last checkpoint's numbers next to the real-vs-real baseline, one line per metric
    (rows without a value, of unreadable checkpoints, are left out)."""
    rows = [r for r in rows if r.get("value") is not None]
    for metric in metrics:
        checkpoints = [r for r in rows if r["kind"] == "checkpoint" and r["metric"] == metric]
        if not checkpoints:
            continue
        last = max(reversed(checkpoints), key=lambda r: r["step"])  # the newest row of that step
        baselines = [
            r
            for r in rows
            if r["kind"] == "real_vs_real"
            and r["metric"] == metric
            and r["feature_network"] == last["feature_network"]
        ]
        line = f"step {last['step']}: {metric} = {last['value']:.4g}"
        if last.get("real_value") is not None:
            line += f" (reals: {last['real_value']:.4g})"
        if baselines:
            b = baselines[-1]
            line += (
                f"; real vs real ({b['real']} vs {b['fake']}, n={b['n_fake']}): {b['value']:.4g}"
            )
        print(line, flush=True)


# ----------------------------------------------------------------------------------------------
# Two-set mode.
# ----------------------------------------------------------------------------------------------


def evaluate_sets(
    real_spec: str, fake_spec: str, metrics: Sequence[str], options: Options
) -> list[dict]:
    """Scores the images of `fake_spec` against those of `real_spec`; returns the rows."""
    metrics = parse_metrics(metrics)
    if options.feature_network != "auto":  # fail before reading any images
        resolve_network(metrics, options, "", None, 0)
    real = spec_set(real_spec, "train", options.resolution, 0, options.num_real, options.seed)
    resolution, channels = real.cache_key["resolution"], real.cache_key["channels"]
    fake = spec_set(fake_spec, "train", resolution, channels, options.num_samples, options.seed)
    network_name = resolve_network(metrics, options, real_spec, channels, resolution)
    labelled = not LABELLED_METRICS & set(metrics) or (
        fake.labels is not None and (real.labels is not None or "class_fid" not in metrics)
    )
    check_metric_inputs(metrics, network_name, real.size, fake.size, labelled, options, channels)
    splits = None
    if SPLIT_METRICS & set(metrics):
        splits = _spec_splits(real_spec, resolution, channels, options)
    scorer = Scorer(network_name, options, splits)
    identity = {"kind": "sets", "step": None}
    return list(scorer.rows(real, fake, metrics, resolution, channels, identity))


def _spec_splits(real_spec: str, resolution: int, channels: int, options: Options) -> RealSplits:
    """Two-set mode: the train split `--real` names (else `--real_split`), `--baseline_split`."""
    from jaxgan import data

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


# ----------------------------------------------------------------------------------------------
# Plots.
# ----------------------------------------------------------------------------------------------


def _settings(row: dict) -> tuple:
    return tuple(row.get(k) for k in ("real", "feature_network", "n_real", "n_fake", "seed"))


def plot_metrics(rows: list[dict], directory: str) -> list[str]:
    """`<directory>/<metric>.png`: each metric's values vs step, baselines as horizontal lines.

    One line per entry of `values` (SWD: one per level and the average; pr: precision and recall),
    a band of ±std where the metric has one, the real-vs-real baseline dashed, and the reals' own
    value (IS, MS-SSIM, accuracy) dotted. Only the rows with the newest row's settings (reference,
    feature network, counts, seed) are drawn, so a changed --num_samples starts a fresh curve.
    Rows without a value (unreadable checkpoints) are not drawn.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    rows = [r for r in rows if r.get("value") is not None]
    paths = []
    for metric in dict.fromkeys(r["metric"] for r in rows if r["kind"] == "checkpoint"):
        series = [r for r in rows if r["kind"] == "checkpoint" and r["metric"] == metric]
        settings = _settings(series[-1])
        by_step = {r["step"]: r for r in series if _settings(r) == settings}
        steps = sorted(by_step)
        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        ax = fig.add_subplot()
        for i, name in enumerate(by_step[steps[-1]]["values"]):
            color = f"C{i}"
            ys = [by_step[s]["values"].get(name, np.nan) for s in steps]
            ax.plot(steps, ys, marker="o", color=color, label=name)
            if i == 0 and all(by_step[s].get("std") is not None for s in steps):
                std = np.asarray([by_step[s]["std"] for s in steps])
                ax.fill_between(
                    steps, np.asarray(ys) - std, np.asarray(ys) + std, color=color, alpha=0.2
                )
            reals = by_step[steps[-1]].get("real_value")
            if i == 0 and reals is not None:
                ax.axhline(reals, color=color, linestyle=":", label=f"reals ({settings[0]})")
            for b in rows:
                if (
                    b["kind"] == "real_vs_real"
                    and b["metric"] == metric
                    and b["feature_network"] == settings[1]
                    and b["seed"] == settings[4]
                    and name in b["values"]
                ):
                    ax.axhline(
                        b["values"][name],
                        color=color,
                        linestyle="--",
                        label=f"{name}: {b['real']} vs {b['fake']}",
                    )
                    break
        network = f", {settings[1]}" if settings[1] else ""
        ax.set_title(f"{metric}{network}: {settings[3]} fakes vs {settings[2]} {settings[0]}")
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.subplots_adjust(
            left=0.12, right=0.97, top=0.9, bottom=0.12
        )  # tight_layout: ~0.1 s each
        path = os.path.join(directory, f"{metric}.png")
        tmp = f"{path}.tmp.png"
        fig.savefig(tmp)
        os.replace(tmp, path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------------------
# CLI.
# ----------------------------------------------------------------------------------------------


def options_from_flags() -> Options:
    return Options(
        **{f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(Options) if f.name in FLAGS}
    )


def main(argv):
    del argv
    from jaxgan import logging as run_logging

    run_logging.quiet_library_logs()
    options = options_from_flags()
    try:
        if FLAGS.workdir and not (FLAGS.real or FLAGS.fake):
            evaluate_workdir(
                FLAGS.workdir,
                FLAGS.metrics,
                options,
                steps=FLAGS.steps,
                force=FLAGS.force,
                watch=FLAGS.watch,
                poll_seconds=FLAGS.poll_seconds,
                watch_timeout=FLAGS.watch_timeout,
            )
        elif FLAGS.real and FLAGS.fake and not FLAGS.workdir:
            rows = evaluate_sets(FLAGS.real, FLAGS.fake, FLAGS.metrics, options)
            for row in rows:
                print(json.dumps(row), flush=True)
            if FLAGS.output:
                os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
                with open(FLAGS.output, "a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in rows)
        else:
            raise app.UsageError("Give --workdir=W, or --real=SPEC and --fake=SPEC (not both).")
    except (errors.UserError, FileNotFoundError) as e:  # bad input: the message says what to do
        sys.exit(f"{type(e).__name__}: {e}")  # (missing weights, data, config, a bad flag ...)


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    if "metrics" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    flags.DEFINE_string("workdir", None, "A training run's workdir: score its checkpoints.")
    flags.DEFINE_string(
        "real", None, "Two-set mode: the reference images (dataset, folder or .npz)."
    )
    flags.DEFINE_string(
        "fake", None, "Two-set mode: the images to score (dataset, folder or .npz)."
    )
    flags.DEFINE_list("metrics", DEFAULT_METRICS, f"Comma-separated, from {', '.join(METRICS)}.")
    flags.DEFINE_string("steps", "all", "Checkpoints to score: all, latest, or a list N,M,...")
    flags.DEFINE_integer("num_samples", 0, "Fakes per checkpoint (0: real set size, <= 10,000).")
    flags.DEFINE_integer("num_real", 0, "Real images (0: the whole split, at most 50,000).")
    flags.DEFINE_string("real_split", "train", "Reference split for workdir mode.")
    flags.DEFINE_string(
        "baseline_split", "test", "Split scored against the reference as real-vs-real."
    )
    flags.DEFINE_bool("baseline", True, "Workdir mode: also write the real-vs-real baseline rows.")
    flags.DEFINE_enum(
        "feature_network", "auto", ["auto", "inception_v3", "mnist_cnn"], "Network for features."
    )
    flags.DEFINE_string("inception_weights", None, "Converted Inception .npz (default: the cache).")
    flags.DEFINE_integer("seed", 0, "Seed of latents, real order, subsets, pairs and projections.")
    flags.DEFINE_integer(
        "batch_size", 200, "Generator batch when sampling (rounded to the devices)."
    )
    flags.DEFINE_integer(
        "feature_batch_size", 0, "Feature-network batch (0: the network's default)."
    )
    flags.DEFINE_bool("force", False, "Recompute rows that are already in metrics.jsonl.")
    flags.DEFINE_bool("watch", False, "Keep scoring new checkpoints as the run writes them.")
    flags.DEFINE_float("poll_seconds", 60.0, "--watch: seconds between looks for new checkpoints.")
    flags.DEFINE_float(
        "watch_timeout", 0.0, "--watch: stop after this long without one (0: never)."
    )
    flags.DEFINE_string("cache_dir", None, "Real-feature cache (default ~/.cache/jaxgan/eval).")
    flags.DEFINE_enum("swd_preset", "pggan", ["pggan", "shmelkov"], "SWD patch/direction counts.")
    flags.DEFINE_integer("ms_ssim_pairs", 10_000, "MS-SSIM random pairs (PGGAN: 10,000).")
    flags.DEFINE_integer("kid_subsets", 100, "KID subsets.")
    flags.DEFINE_integer("kid_subset_size", 1000, "KID subset size (clipped to the set sizes).")
    flags.DEFINE_integer("is_splits", 10, "Inception Score splits.")
    flags.DEFINE_integer("pr_k", 3, "Precision/recall neighbourhood size.")
    flags.DEFINE_integer("resolution", 0, "Two-set mode: image size (0: the real images' size).")
    flags.DEFINE_string("output", None, "Two-set mode: also append the rows to this JSONL file.")
    flags.DEFINE_string(
        "classifier_recipe", "auto", "gan_train/gan_test classifier: auto, mnist5k or cifar10."
    )
    flags.DEFINE_integer("classifier_steps", 0, "Classifier training steps (0: the recipe's).")
    flags.DEFINE_integer("classifier_seed", 0, "Seed of the classifiers' weights and batches.")
    flags.DEFINE_integer("iw_steps", 2000, "Independent critic: WGAN-GP training steps.")
    flags.DEFINE_integer("iw_width", 32, "Independent critic: DCGAN critic width.")
    flags.DEFINE_integer("iw_batch_size", 64, "Independent critic: reals (and fakes) per step.")
    flags.DEFINE_integer("modes_images", 25_600, "modes: images per evaluation (PGGAN: 25,600).")
    flags.DEFINE_integer("modes_evals", 10, "modes: evaluations averaged (PGGAN: 10).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
