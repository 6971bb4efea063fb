"""Two-domain (unpaired) image sources and batches for translation (CycleGAN, NICE-GAN).

Dataset strings (config `data.dataset` of a translation run):
  folder:PATH                 PATH holds trainA/ trainB/ testA/ testB/ (the CycleGAN layout,
                              `data/unaligned_dataset.py`); each read by `sources.FolderSource`.
                              `python -m jaxgan.data.prepare emoji --out=PATH` writes one.
  tfds:NAME                   a prepared TFDS dataset with splits trainA/trainB/testA/testB, e.g.
                              `tfds:cycle_gan/horse2zebra`, read by `sources.TFDSSource`
                              (`tfds.data_source`, no TensorFlow).
`split` 'train' opens (trainA, trainB), 'test' opens (testA, testB).

Transforms (`base_dataset.py::get_transform`), chosen by `config.data.preprocess` (`PREPROCESS`);
size is the crop (`data.resolution`), load = `load_size(size)`: 286 at 256, scaled with it (143 at
128, 72 at 64). Train: the mode's resize step (`resized_shape`), a random size×size crop where the
mode crops, a random horizontal flip; every bicubic resize is PIL's.
  resize_and_crop (default)  resize to load×load (aspect not kept), crop
  crop                       no resize, crop; an image smaller than size×size is an error
  scale_width_and_crop       width to load, height max(load·h/w, size) (`__scale_width`), crop
  none                       each side rounded to a multiple of 4 (`__make_power_2`); only images
                             that become size×size so are accepted
  scale_width                refused: its images keep their aspect ratio, a batch needs one square
                             shape (the reference trains scale_width_and_crop and tests scale_width;
                             `jaxgan.translate` translates whole images at their own size)
Test (`eval_transform`): the same resize step with load = size (`test_options.py` sets load_size to
crop_size), then a centred size×size crop where the mode crops (the reference's test crop is
random: `RandomCrop` without params), no flip (`test.py`). For resize_and_crop that is a resize to
size×size.

A and B are drawn independently (unaligned): each domain is a `pipeline.Batches` stream of its own,
walking its own per-epoch permutations, so the pair (A_i, B_i) is re-drawn every epoch, as the
reference's `random.randint` for B and NICE-GAN's two shuffled loaders do. As in `Batches`, the
example at global position p of domain d is a pure function of (seed, d, p): its index from the
domain's permutation and its crop and flip from `np.random.default_rng([domain_seed(seed, d),
AUGMENT_STREAM, p])` (`crop_params`; the crop's range is that image's size after the resize step).
A checkpoint stores `TwoDomainBatches.cursor`; a run resumed there sees the batches of the
uninterrupted run, on any number of processes.

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
# CG-PT's `--preprocess` modes (`base_options.py`); the first is its default and jaxgan's.
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
SIZE_BASE = 4  # `__make_power_2(img, base=4)`: the generators halve the size twice
OTHER_MODES_FIX = (
    "Use --config.data.preprocess=resize_and_crop (the default: every image resized to a square "
    "first) or scale_width_and_crop (width resized, aspect kept, then a square crop)."
)
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


def check_preprocess(preprocess: str) -> str:
    """`preprocess` if it is a mode jaxgan can batch, else a ConfigError saying what to use."""
    if preprocess not in PREPROCESS:
        raise errors.ConfigError(
            f"data.preprocess={preprocess!r} is not a preprocessing mode; expected one of "
            f"{', '.join(PREPROCESS)} (the reference's --preprocess)."
        )
    if preprocess == "scale_width":
        raise errors.ConfigError(
            "data.preprocess='scale_width' keeps each image's aspect ratio, so its images have no "
            "one shape, and a batch here is data.resolution² squares. The reference code uses it "
            "to test whole images after training with scale_width_and_crop: train with "
            "--config.data.preprocess=scale_width_and_crop, and translate whole images with "
            "python -m jaxgan.translate (each at its own size)."
        )
    return preprocess


def scale_width_shape(height: int, width: int, load: int, crop: int) -> tuple[int, int]:
    """`__scale_width`: width `load`, height load·h/w but at least `crop`, so a crop fits."""
    if width == load and height >= crop:
        return height, width
    return int(max(load * height / width, crop)), load


def multiple_of_base_shape(height: int, width: int) -> tuple[int, int]:
    """`__make_power_2(base=4)`: each side rounded to a multiple of 4 (Python's round: 18 -> 16)."""
    return int(round(height / SIZE_BASE) * SIZE_BASE), int(round(width / SIZE_BASE) * SIZE_BASE)


def resized_shape(
    height: int, width: int, size: int, preprocess: str, train: bool = True
) -> tuple[int, int]:
    """(rows, cols) of a height×width image after `preprocess`'s resize step: what the size×size
    crop is cut from, or (size, size) for a mode without a crop. load is `load_size(size)` in
    training and size in testing (`test_options.py`). DataError where no size×size image comes of
    it: for 'crop' an image smaller than the crop, for 'none' one not about size×size already."""
    check_preprocess(preprocess)
    load = load_size(size) if train else size
    if preprocess == "resize_and_crop":
        return load, load
    if preprocess == "scale_width_and_crop":
        return scale_width_shape(height, width, load, size)
    if preprocess == "crop":
        if height < size or width < size:
            raise errors.DataError(
                f"the image is {height}x{width} (HxW), smaller than the {size}x{size} crop "
                f"(data.resolution) of data.preprocess='crop', which does not resize. "
                f"{OTHER_MODES_FIX} Or use a data.resolution of at most {min(height, width)}."
            )
        return height, width
    rounded = multiple_of_base_shape(height, width)  # 'none'
    if rounded != (size, size):
        raise errors.DataError(
            f"the image is {height}x{width} (HxW); data.preprocess='none' only rounds each side "
            f"to a multiple of {SIZE_BASE} ({rounded[0]}x{rounded[1]}), not to the "
            f"{size}x{size} of data.resolution. {OTHER_MODES_FIX} Or resize the images to "
            f"{size}x{size} first."
        )
    return rounded


def crop_params(
    seed: int, position: int, size: int, resized: tuple[int, int] | None = None
) -> tuple[int, int, bool]:
    """(top, left, flip) of the example at global `position` of a stream seeded `seed`.

    `resized`: (rows, cols) of the image the crop is cut from (`resized_shape`; default
    resize_and_crop's load×load). torchvision's RandomCrop draws top in [0, rows - size] and left
    in [0, cols - size] uniformly (`get_params`), RandomHorizontalFlip mirrors with probability ½;
    here from the example's own generator, so resume is exact. (Bounds as an array draw what
    `integers(0, high, size=2)` drew when they are equal: default crops are those of before.)
    """
    rows, cols = resized or (load_size(size),) * 2
    rng = np.random.default_rng([seed, AUGMENT_STREAM, position])
    top, left = rng.integers(0, [rows - size + 1, cols - size + 1])
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


def _resize_step(
    image: np.ndarray, size: int, channels: int, preprocess: str, train: bool
) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [rows, cols, channels] of `resized_shape`, by PIL bicubic (the
    reference's `Resize` and its own `img.resize` calls); an image of that size already is kept."""
    rows, cols = resized_shape(*image.shape[:2], size, preprocess, train)
    pil = _pil(image, channels)
    return _array(pil if pil.size == (cols, rows) else pil.resize((cols, rows), Image.BICUBIC))


def train_transform(
    image: np.ndarray,
    size: int,
    channels: int,
    top: int,
    left: int,
    flip: bool,
    preprocess: str = PREPROCESS[0],
) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [size, size, channels]: `preprocess`'s resize step with load =
    `load_size(size)` (resize_and_crop: load×load, aspect not kept, as `Resize([286, 286])`),
    the crop at (top, left) (0, 0 for a mode without one), mirrored if `flip`."""
    resized = _resize_step(image, size, channels, preprocess, train=True)
    crop = resized[top : top + size, left : left + size]
    return np.ascontiguousarray(crop[:, ::-1] if flip else crop)


def eval_transform(
    image: np.ndarray, size: int, channels: int = 3, preprocess: str = PREPROCESS[0]
) -> np.ndarray:
    """The reference's test transform, uint8 [H, W, C] -> uint8 [size, size, channels]: the resize
    step with load = size (resize_and_crop: a resize to size×size), the centred crop where the mode
    crops (the reference's is random), no flip."""
    resized = _resize_step(image, size, channels, preprocess, train=False)
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return np.ascontiguousarray(resized[top : top + size, left : left + size])


def image_name(source: sources.Source, index: int) -> str:
    """The file of `source`'s image `index` where it has one, for messages."""
    if isinstance(source, sources.Subset):
        return image_name(source.source, int(source.indices[index]))
    files = getattr(source, "files", None)
    return files[index] if files is not None else f"image {index} of the {type(source).__name__}"


def _naming(error: errors.DataError, source: sources.Source, index: int) -> errors.DataError:
    return errors.DataError(f"{image_name(source, index)}: {error}")


class DomainBatches(pipeline.Batches):
    """One domain's stream: `Batches` (order, cursor, process slices, prefetch) with the train
    transform of `preprocess` in place of `fit_image`. Yields {'image': uint8 [S, B_local, size,
    size, C], 'label'}."""

    def __init__(self, *args, preprocess: str = PREPROCESS[0], **kwargs):
        super().__init__(*args, **kwargs)
        self.preprocess = check_preprocess(preprocess)

    def _prepare(self, image: np.ndarray, position: int) -> np.ndarray:
        try:
            resized = resized_shape(*image.shape[:2], self.resolution, self.preprocess)
        except errors.DataError as e:
            raise _naming(e, self.source, int(self.indices(position, 1)[0])) from e
        crop = crop_params(self.seed, position, self.resolution, resized)
        return train_transform(image, self.resolution, self.channels, *crop, self.preprocess)


class TwoDomainBatches:
    """Infinite stream of {'A': uint8 [S, B, size, size, C], 'B': same}: A and B independent.

    S = `steps` batches per call (1 for a CycleGAN step); `preprocess` is the train transform's
    mode (`PREPROCESS`, config `data.preprocess`); with `sharding` (e.g.
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
        preprocess: str = PREPROCESS[0],
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
                preprocess=preprocess,
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
    source: sources.Source,
    size: int,
    channels: int = 3,
    threads: int = 8,
    preprocess: str = PREPROCESS[0],
) -> np.ndarray:
    """Every image of `source` in order through the test transform of `preprocess`: uint8
    [N, size, size, C]."""
    check_preprocess(preprocess)

    def transform(index: int, image: np.ndarray) -> np.ndarray:
        try:
            return eval_transform(image, size, channels, preprocess)
        except errors.DataError as e:
            raise _naming(e, source, index) from e

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        images, _ = sources.fetch(source, range(len(source)), pool)
        return np.stack(list(pool.map(transform, range(len(images)), images)))


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
