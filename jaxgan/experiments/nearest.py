"""Nearest neighbours: is the generator drawing new images or copies of its training set?

  python -m jaxgan.experiments nearest --workdir=W [--num_fakes=16] [--num_neighbours=5]
      [--checkpoint=latest|STEP] [--seed=0] [--feature_network=auto] [--batch_size=200]

For a latent-space run (not a translation run), the first `--num_fakes` fakes of checkpoint
`--checkpoint` (the evaluator's sampling: EMA generator, latents from `--seed`), each beside its
`--num_neighbours` nearest images of the run's training split, by L2 distance

  pixel    over the pixels in [0, 1] (uint8 / 255) at the run's resolution;
  feature  over the evaluator's feature network for the run's data (`--feature_network=auto`:
           mnist_cnn's penultimate layer for mnist5k, fashion_cnn's for fashion_mnist, Inception's
           pool3 for RGB data; `jaxgan/eval/features.py`), the table names the one used.

PGGAN's Fig. 10 (neighbours in VGG-16 feature space) and "How good is my GAN?" Fig. 3 show the same
thing; jaxgan ships no VGG, so "feature" is the evaluator's network. The search is exact: the full
matrix of squared distances, in float64, computed in batches of training images, and a stable sort
(ties go to the lower index). Pixel distances are exact: squared distances of uint8 images are
integers, which float64 holds exactly.

Beside the fakes, the same number of the dataset's held-out test images (when it has one apart
from its training images: not a folder, nor a string that names its split) and their nearest
training image in each space: a fake much closer to the training set than held-out real images are
is a sign of memorisation; the JSON's "held_out" holds their distances, and the command prints both.

The training images are those of `data.open_run_source(config, "train")` (the run's dataset string,
`:n=K` subsets included), read as the evaluator reads them (`imagesets.load_images`: fitted to
the run's resolution); an index is a position in that source.

Outputs: W/eval/nearest.json
  {"experiment": "nearest", "workdir": W, "checkpoint": 2400, "dataset": "mnist5k",
   "train_set": "mnist5k:train", "n_train": 4000, "seed": 0, "num_fakes": 16,
   "num_neighbours": 5, "pixel_space": "...", "feature_network": {"name": "mnist_cnn",
   "layer": ..., "weights": ..., "resize": ...}, "rows": [{"fake": 0, "label": 0,
   "pixel": {"indices": [...], "distances": [...]}, "feature": {...}}, ...],
   "held_out": {"split": "test", "n": 16, "pixel": [...], "feature": [...]} or null,
   "wall_time_s": ...}
and W/eval/nearest.png: one row per fake, its exact pixels: the fake, a blank tile, its pixel
neighbours nearest first, a blank tile, its feature neighbours nearest first (`tile_layout`).
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import logging

from jaxgan import data
from jaxgan.core import errors, run_files
from jaxgan.eval import features, imagesets, sampling
from jaxgan.eval.options import Options
from jaxgan.eval.translation import feature_dataset
from jaxgan.experiments.tables import write_table

PIXEL_SPACE = "L2 over pixels in [0, 1] (uint8 / 255)"
BLOCK_VALUES = 1 << 24  # float64 values of the training images in one block (128 MB)


def squared_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """[Q, N] float64 squared L2 distances between rows of queries [Q, D] and references [N, D],
    as |q|^2 + |r|^2 - 2 q.r in float64 over blocks of references (clipped at 0, where rounding
    takes it below)."""
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    q_norms = np.einsum("ij,ij->i", q, q)[:, None]
    block = max(1, BLOCK_VALUES // q.shape[1])
    blocks = []
    for start in range(0, len(references), block):
        r = np.asarray(references[start : start + block], np.float64).reshape(-1, q.shape[1])
        blocks.append(q_norms + np.einsum("ij,ij->i", r, r)[None] - 2.0 * q @ r.T)
    return np.maximum(np.concatenate(blocks, axis=1), 0.0)


def nearest_neighbours(
    queries: np.ndarray, references: np.ndarray, m: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(indices int [Q, m], distances float64 [Q, m]): each query's m nearest references by L2,
    nearest first, ties to the lower index; distances are those of queries / scale."""
    d2 = squared_distances(queries, references)
    indices = np.argsort(d2, axis=1, kind="stable")[:, :m]
    return indices, np.sqrt(np.take_along_axis(d2, indices, axis=1)) / scale


def held_out_source(config):
    """(the run's test split or None, why not): None for a folder (one split), a string that names
    its split (tfds:NAME:SPLIT opens that split for every split) or a dataset without a test split."""
    kind, _, named_split = data.parse(config.data.dataset)
    if kind == "folder" or named_split:
        return None, f"{config.data.dataset} has no test split apart from its training images"
    try:
        return data.open_run_source(config, "test")[0], ""
    except errors.UserError as e:
        return None, f"its test split could not be read ({e})"


def summary(distances) -> str:
    return f"{np.mean(distances):.3f} [{np.min(distances):.3f}, {np.max(distances):.3f}]"


def markdown(table: dict) -> str:
    """The distance to the nearest training image, fakes beside held-out images, per space."""
    held_out = table["held_out"]
    columns = [f"{table['num_fakes']} fakes"]
    columns += [f"{held_out['n']} held-out test images"] if held_out else []
    lines = [
        f"Distance to the nearest of {table['n_train']} training images, mean [min, max] "
        f"(checkpoint {table['checkpoint']}):",
        "",
        "| space | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for space in ("pixel", "feature"):
        cells = [summary([row[space]["distances"][0] for row in table["rows"]])]
        cells += [summary(held_out[space])] if held_out else []
        lines.append(f"| {space} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tile_layout(num_neighbours: int) -> dict[str, list[int] | int]:
    """The PNG's columns: the fake, then its pixel and feature neighbours, blanks between."""
    m = num_neighbours
    return {
        "fake": 0,
        "pixel": list(range(2, 2 + m)),
        "feature": list(range(3 + m, 3 + 2 * m)),
        "columns": 3 + 2 * m,
    }


def picture(fakes: np.ndarray, train: np.ndarray, rows: list[dict], m: int) -> np.ndarray:
    """uint8 grid (`run_files.make_grid`, padding 2): one row per fake as `tile_layout` places it."""
    layout = tile_layout(m)
    blank = np.full(fakes.shape[1:], 255, np.uint8)
    tiles = []
    for fake, row in zip(fakes, rows):
        line = [blank] * layout["columns"]
        line[layout["fake"]] = fake
        for space in ("pixel", "feature"):
            for column, index in zip(layout[space], row[space]["indices"]):
                line[column] = train[index]
        tiles += line
    pixels = np.stack(tiles).astype(np.float32) / 127.5 - 1.0  # make_grid's [-1, 1] quantises back
    return run_files.make_grid(pixels, layout["columns"])


def nearest(
    workdir: str,
    options: Options,
    num_fakes: int = 16,
    num_neighbours: int = 5,
    checkpoint: str | int = "latest",
) -> dict:
    """Writes W/eval/nearest.{json,png} (module doc); returns the table."""
    start = time.perf_counter()
    if num_fakes < 1 or num_neighbours < 1:
        raise errors.ConfigError(
            f"--num_fakes={num_fakes}, --num_neighbours={num_neighbours}: both must be at least 1."
        )
    config = sampling.load_config(workdir)
    fakes, labels, step = sampling.sample_checkpoint(
        workdir, config, checkpoint, num_fakes, options.seed, options.batch_size
    )
    d = config.data
    source, channels, _ = data.open_run_source(config, "train")
    if num_neighbours > len(source):
        raise errors.ConfigError(
            f"--num_neighbours={num_neighbours}: {d.dataset}'s train split has only "
            f"{len(source)} images; ask for at most that many."
        )
    train, _ = imagesets.load_images(source, np.arange(len(source)), d.resolution, channels)
    pixel = nearest_neighbours(fakes, train, num_neighbours, scale=255.0)

    name = features.resolve_name(
        options.feature_network, feature_dataset(d.dataset), channels, d.resolution
    )
    network = features.load(
        name, d.resolution, channels, options.feature_batch_size, options.inception_weights,
        options.progress, options.resize,
    )  # fmt: skip
    train_features = network.extract(train)["features"]
    feature = nearest_neighbours(network.extract(fakes)["features"], train_features, num_neighbours)
    held_out = None
    test_source, why_not = held_out_source(config)
    if test_source is None:
        logging.info("nearest: no held-out images to compare with: %s.", why_not)
    else:
        n = min(num_fakes, len(test_source))
        test, _ = imagesets.load_images(test_source, np.arange(n), d.resolution, channels)
        held_out = {
            "split": "test",
            "n": n,
            "pixel": nearest_neighbours(test, train, 1, scale=255.0)[1][:, 0].tolist(),
            "feature": nearest_neighbours(network.extract(test)["features"], train_features, 1)[1][
                :, 0
            ].tolist(),
        }
    rows = [
        {
            "fake": i,
            "label": int(labels[i]),
            **{
                space: {"indices": idx[i].tolist(), "distances": dist[i].tolist()}
                for space, (idx, dist) in (("pixel", pixel), ("feature", feature))
            },
        }
        for i in range(num_fakes)
    ]
    logging.info("nearest: %d fakes of step %d against %d training images.", num_fakes, step,
                 len(train))  # fmt: skip
    table = {
        "experiment": "nearest",
        "workdir": os.path.abspath(workdir),
        "checkpoint": step,
        "dataset": d.dataset,
        "train_set": f"{d.dataset} (train split, data.open_run_source)",
        "n_train": len(train),
        "seed": options.seed,
        "num_fakes": num_fakes,
        "num_neighbours": num_neighbours,
        "pixel_space": PIXEL_SPACE,
        "feature_network": {
            "name": network.name,
            "layer": network.feature_layer,
            "weights": network.weights,
            "resize": network.resize,
        },
        "png_columns": tile_layout(num_neighbours),
        "rows": rows,
        "held_out": held_out,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    grid = picture(fakes, train, rows, num_neighbours)
    return write_table(table, workdir, lambda _: grid)
