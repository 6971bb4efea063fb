"""Two-domain (unpaired) image sources and batches for translation (CycleGAN, NICE-GAN).

Dataset strings (config `data.dataset` of a translation run):
  folder:PATH                 PATH holds trainA/ trainB/ testA/ testB/ (the CycleGAN layout,
                              `data/unaligned_dataset.py`); each read by `sources.FolderSource`.
                              `python -m jaxgan.data.prepare emoji --out=PATH` writes one.
  tfds:NAME                   a prepared TFDS dataset with splits trainA/trainB/testA/testB, e.g.
                              `tfds:cycle_gan/horse2zebra`, read by `sources.TFDSSource`
                              (`tfds.data_source`, no TensorFlow).
`split` 'train' opens (trainA, trainB), 'test' opens (testA, testB).

Train transform (`base_dataset.py::get_transform`, resize_and_crop):
PIL bicubic resize to load×load, a random size×size crop, a random horizontal flip; load = 286 at
size 256 and scales with it (`load_size`: 143 at 128, 72 at 64). Test transform
(`eval_transform`): bicubic resize to size×size, nothing random (`test.py`: load_size =
crop_size, no flip).

A and B are drawn independently (unaligned): each domain is a `pipeline.Batches` stream of its own,
walking its own per-epoch permutations, so the pair (A_i, B_i) is re-drawn every epoch, as the
reference's `random.randint` for B and NICE-GAN's two shuffled loaders do. As in `Batches`, the
example at global position p of domain d is a pure function of (seed, d, p): its index from the
domain's permutation and its crop and flip from `np.random.default_rng([domain_seed(seed, d),
AUGMENT_STREAM, p])` (`crop_params`). A checkpoint stores `TwoDomainBatches.cursor`; a run resumed
there sees the batches of the uninterrupted run, on any number of processes.

Images stay uint8 until they are on the device (`pipeline.to_float` maps them to [-1, 1] in the
step; no flip there, the flip is part of the transform here).
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator

import jax
import numpy as np
from PIL import Image

from jaxgan.core import errors
from jaxgan.data import pipeline, sources

SPLITS = {"train": ("trainA", "trainB"), "test": ("testA", "testB")}
REFERENCE_LOAD, REFERENCE_CROP = 286, 256  # CG-PT `base_options.py` load_size, crop_size
AUGMENT_STREAM = 1  # tags the crop/flip generator apart from the permutation's ([seed, epoch])
LAYOUT_FIX = (
    "A two-domain folder holds trainA/, trainB/, testA/ and testB/, each with image files (the "
    "CycleGAN layout; `python -m jaxgan.data.prepare emoji --out=DIR` writes one)."
)


def open_domains(
    dataset: str, split: str = "train", data_dir: str | None = None, channels: int = 3
) -> tuple[sources.Source, sources.Source]:
    """(domain A, domain B) of `split` ('train' or 'test') of a two-domain dataset string."""
    if split not in SPLITS:
        raise errors.ConfigError(
            f"Two-domain dataset {dataset!r}: split {split!r} is not 'train' or 'test' (which "
            f"open trainA/trainB and testA/testB)."
        )
    if (
        sources.parse_per_class(dataset)[1] is not None
        or sources.parse_class(dataset)[1] is not None
    ):
        raise errors.ConfigError(
            f"Two-domain dataset {dataset!r}: ':n=K' and ':class=C' select classes of one domain "
            f"and do not apply to a pair of domains; drop the field."
        )
    kind, name, named_split = sources.parse(dataset)
    if kind == "tfds":
        if named_split:
            raise errors.ConfigError(
                f"Two-domain dataset {dataset!r} names split {named_split!r}; the splits "
                f"{', '.join(SPLITS['train'] + SPLITS['test'])} are implied. Use tfds:{name}."
            )
        return tuple(sources.TFDSSource(name, s, data_dir) for s in SPLITS[split])
    if kind == "folder":
        return tuple(_domain_folder(name, s, channels) for s in SPLITS[split])
    raise errors.ConfigError(
        f"Two-domain dataset {dataset!r}: expected 'folder:PATH' (PATH holding trainA/ trainB/ "
        f"testA/ testB/) or 'tfds:NAME' (e.g. tfds:cycle_gan/horse2zebra)."
    )


def _domain_folder(root: str, split_name: str, channels: int) -> sources.FolderSource:
    path = os.path.join(root, split_name)
    if not os.path.isdir(root):
        raise errors.DataError(f"folder:{root} does not exist or is not a directory. {LAYOUT_FIX}")
    if not os.path.isdir(path):
        found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        raise errors.DataError(
            f"folder:{root} has no {split_name}/ sub-folder (its sub-folders: "
            f"{', '.join(found) or 'none'}). {LAYOUT_FIX}"
        )
    try:
        return sources.FolderSource(path, channels)
    except errors.DataError as e:  # no images, or none readable: say which domain and split
        raise errors.DataError(
            f"folder:{root}: its {split_name}/ split is unusable: {e} Put the images of that "
            f"domain in {path}. {LAYOUT_FIX}"
        ) from e


def load_size(size: int) -> int:
    """The resize before the random crop: 286 at 256 (CG-PT's defaults), scaled by 286/256."""
    return int(size * REFERENCE_LOAD / REFERENCE_CROP + 0.5)


def domain_seed(seed: int, domain: int) -> int:
    """Seed of domain `domain`'s (0: A, 1: B) stream: A and B order and crop independently."""
    return int(np.random.SeedSequence([seed, domain]).generate_state(1)[0])


def crop_params(seed: int, position: int, size: int) -> tuple[int, int, bool]:
    """(top, left, flip) of the example at global `position` of a stream seeded `seed`.

    torchvision's RandomCrop draws top and left uniformly in [0, load - size], RandomHorizontalFlip
    mirrors with probability ½; here from the example's own generator, so resume is exact.
    """
    rng = np.random.default_rng([seed, AUGMENT_STREAM, position])
    top, left = rng.integers(0, load_size(size) - size + 1, size=2)
    return int(top), int(left), bool(rng.random() < 0.5)


def _pil(image: np.ndarray, channels: int) -> Image.Image:
    """uint8 [H, W, C] (C 1, 3 or 4) -> a PIL image of mode L (channels 1) or RGB; RGBA is
    composited on white first."""
    if image.shape[-1] == 4:
        image = sources.composite_on_white(image)
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return pil.convert("L" if channels == 1 else "RGB")


def _array(pil: Image.Image) -> np.ndarray:
    array = np.asarray(pil, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def train_transform(
    image: np.ndarray, size: int, channels: int, top: int, left: int, flip: bool
) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [size, size, channels]: bicubic resize to `load_size(size)`
    squared (aspect not kept, as `Resize([286, 286])`), crop at (top, left), mirror if `flip`."""
    load = load_size(size)
    resized = _array(_pil(image, channels).resize((load, load), Image.BICUBIC))
    crop = resized[top : top + size, left : left + size]
    return np.ascontiguousarray(crop[:, ::-1] if flip else crop)


def eval_transform(image: np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """The reference's test transform, uint8 [H, W, C] -> uint8 [size, size, channels]: bicubic
    resize, no crop, no flip."""
    return _array(_pil(image, channels).resize((size, size), Image.BICUBIC))


class DomainBatches(pipeline.Batches):
    """One domain's stream: `Batches` (order, cursor, process slices, prefetch) with the train
    transform in place of `fit_image`. Yields {'image': uint8 [S, B_local, size, size, C], 'label'}."""

    def _prepare(self, image: np.ndarray, position: int) -> np.ndarray:
        crop = crop_params(self.seed, position, self.resolution)
        return train_transform(image, self.resolution, self.channels, *crop)


class TwoDomainBatches:
    """Infinite stream of {'A': uint8 [S, B, size, size, C], 'B': same}: A and B independent.

    S = `steps` batches per call (1 for a CycleGAN step); with `sharding` (e.g.
    `parallel.sharded_on(mesh, 1)`) each value is a global `jax.Array` sharded over the batch axis,
    without it this process's numpy slice [S, B_local, ...]. `cursor` counts the examples of each
    domain consumed (the same for both): a checkpoint saves it, `cursor=` resumes there.
    `epoch_size` = max(|A|, |B|), the reference's `UnalignedDataset.__len__`, for epoch schedules.
    """

    def __init__(
        self,
        source_a: sources.Source,
        source_b: sources.Source,
        batch_size: int,
        size: int,
        seed: int,
        cursor: int = 0,
        steps: int = 1,
        channels: int = 3,
        sharding: jax.sharding.NamedSharding | None = None,
        process_index: int | None = None,
        process_count: int | None = None,
        prefetch: int = 2,
    ):
        self.domains = {
            name: DomainBatches(
                source,
                batch_size,
                size,
                channels,
                seed=domain_seed(seed, d),
                cursor=cursor,
                steps=steps,
                process_index=process_index,
                process_count=process_count,
                prefetch=prefetch,
            )
            for d, (name, source) in enumerate((("A", source_a), ("B", source_b)))
        }
        self.sharding = sharding
        self.epoch_size = max(len(source_a), len(source_b))

    @property
    def cursor(self) -> int:
        return self.domains["A"].cursor

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        batch = {name: next(stream)["image"] for name, stream in self.domains.items()}
        return batch if self.sharding is None else pipeline.to_global(batch, self.sharding)

    def close(self):
        for stream in self.domains.values():
            stream.close()


def eval_images(
    source: sources.Source, size: int, channels: int = 3, threads: int = 8
) -> np.ndarray:
    """Every image of `source` in order through the test transform: uint8 [N, size, size, C]."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        images, _ = sources.fetch(source, range(len(source)), pool)
        return np.stack(list(pool.map(lambda im: eval_transform(im, size, channels), images)))


def pairs(source_a: sources.Source, source_b: sources.Source) -> tuple[np.ndarray, np.ndarray]:
    """Indices (ia, ib) of the images of two folder sources with the same file name, sorted by name:
    the ground-truth pairs of a prepared pair such as emoji (A_ia[k] and B_ib[k] show one emoji).
    """
    names = []
    for source in (source_a, source_b):
        if not hasattr(source, "files"):
            raise errors.DataError(
                f"{type(source).__name__} has no file names, so its images cannot be paired; "
                f"pairs need two folders whose counterparts share a file name."
            )
        names.append({os.path.basename(f): i for i, f in enumerate(source.files)})
    common = sorted(names[0].keys() & names[1].keys())
    return (
        np.asarray([names[0][n] for n in common], int),
        np.asarray([names[1][n] for n in common], int),
    )
