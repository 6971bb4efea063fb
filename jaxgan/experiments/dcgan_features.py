"""DCGAN's representation experiment (Radford et al. 2016, §5.1, Tables 1-2): a trained critic as a
feature extractor for a linear classifier, against the baselines the paper compares it with.

  python -m jaxgan.experiments dcgan_features --workdir=W [--target=fashion_mnist]
      [--labels=100,1000,0] [--label_seeds=0,1,2] [--validation=1000] [--checkpoint=latest]
      [--kmeans_centroids=800] [--batch_size=200]

W is a DCGAN run (`jaxgan/configs/dcgan.py`, any dataset); the target is any labelled dataset string with
a train and a test split at W's resolution and channels (the GAN may have seen other data: the
paper's critic was trained on ImageNet and classified CIFAR-10 and SVHN). Feature sets, one row each:

  dcgan          every conv block's output of W's critic (after its norm and LReLU), max-pooled to a
                 4x4 grid, flattened and concatenated: the paper's construction (28,672 dims at its
                 widths; 3,584 for the default 32x32 critic of width 32).
  random_critic  the same from a critic initialised as a run initialises its own (seeded by the
                 label seed): what the architecture gives without training.
  kmeans         Coates, Lee & Ng (2011), the paper's baseline family: 6x6 patches at stride 1, each
                 brightness/contrast-normalised ((p - mean) / sqrt(var + 10), pixels 0-255),
                 ZCA-whitened (eps 0.1), k-means with K centroids on 100,000 patches of the target's
                 train images (no labels), the triangle code max(0, mean_k z - z_k) of the distances
                 z_k to the centroids, summed over the four quadrants: 4K dims.
  pixels         the image itself, in [0, 1].

The critic's BatchNorm normalises with batch statistics while it trains; here each layer's
statistics are frozen to those of `STATISTICS_IMAGES` random target train images (through
`layers.BatchNorm.statistics`), so an image's features do not depend on the batch it is in.

Classifier: an L2-regularised linear SVM, one-vs-rest with the squared hinge: scikit-learn
`LinearSVC`'s objective, solved by L-BFGS in JAX (`fit_svm_weights`), on features standardised with
the labelled set's mean and std. `--validation` class-balanced train images are
held out; the labelled set is N class-balanced images of the rest (0: all of it); C is chosen from
`C_GRID` by accuracy on the held-out images (ties: the smaller C), and the accuracy is on the whole
test split. Each N is drawn with every `--label_seeds` seed (and the random critic initialised with
it); rows give the mean and the range. All labels (0) are one fit, with the first seed's critic.
Writes W/eval/dcgan_features_<target>.{json,md,png}.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import data
from jaxgan.core import batched, errors, parallel, run_files
from jaxgan.core import checkpoint as checkpointing
from jaxgan.eval import imagesets, sampling
from jaxgan.experiments import tables
from jaxgan.methods import gan
from jaxgan.models import layers

FEATURE_SETS = ("dcgan", "random_critic", "kmeans", "pixels")
GRID = 4  # each block's map is max-pooled to GRID x GRID
STATISTICS_IMAGES = 1000  # target train images whose BatchNorm statistics are frozen
C_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
VALIDATION_SEED = 1000  # the held-out split is the same for every label seed
# Coates, Lee & Ng (2011), `kmeans_demo.m`: receptive field, normalisation and whitening constants.
PATCH = 6
CONTRAST_EPS = 10.0  # added to each patch's variance, pixels in 0-255
ZCA_EPS = 0.1
KMEANS_PATCHES = 100_000
KMEANS_ITERATIONS = 50


# ----------------------------------------------------------------------------------------------
# The critic's features.
# ----------------------------------------------------------------------------------------------


def pool_to_grid(x, grid: int = GRID):
    """[N, H, W, C] -> [N, grid, grid, C]: the max over non-overlapping (H/grid x W/grid) windows;
    a map already no larger than grid x grid is kept as it is."""
    n, h, w, c = x.shape
    if h <= grid and w <= grid:
        return x
    if h % grid or w % grid:
        raise ValueError(f"A {h}x{w} feature map does not pool evenly to {grid}x{grid}.")
    return x.reshape(n, grid, h // grid, grid, w // grid, c).max(axis=(2, 4))


def make_critic_features(critic) -> tuple[Callable, Callable]:
    """(statistics, features) of a critic whose blocks `sow` their outputs as "features":

    statistics(variables, images) -> {BatchNorm path: (mean, var)} of that batch;
    features(variables, statistics, images) -> [N, D]: each block's output, normalised with the
    frozen statistics, `pool_to_grid`-ed, flattened (H, W, C order) and concatenated in block order.
    Images are uint8 [N, R, R, C], scaled as the GAN's reals are (x/127.5 - 1). Both jitted.
    """

    def block_outputs(variables, images):
        x = images.astype(jnp.float32) / 127.5 - 1.0
        _, state = critic.apply(variables, x, mutable=["intermediates"])
        return state["intermediates"]["features"]

    @jax.jit
    def statistics(variables, images):
        recorded: dict = {}
        with nn.intercept_methods(layers.batchnorm_statistics(recorded=recorded)):
            block_outputs(variables, images)
        return recorded

    @jax.jit
    def features(variables, frozen, images):
        with nn.intercept_methods(layers.batchnorm_statistics(frozen=frozen)):
            maps = block_outputs(variables, images)
        return jnp.concatenate([pool_to_grid(m).reshape(m.shape[0], -1) for m in maps], axis=1)

    return statistics, features


def map_batches(fn: Callable, images: np.ndarray, batch_size: int, mesh) -> np.ndarray:
    """fn(uint8 batch) -> [B, D] over `images` in batches sharded over the mesh's data axis; the
    last batch is zero-padded (every image's result is its own) and trimmed."""
    sharding = parallel.sharded_on(mesh, 0)
    batch_size = batched.round_up_to_devices(batch_size, mesh)
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        pad = batch_size - len(batch)
        if pad:
            batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), batch.dtype)])
        out.append(
            np.asarray(jax.device_get(fn(jax.device_put(batch, sharding))))[: len(batch) - pad]
        )
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# The k-means baseline (Coates, Lee & Ng 2011).
# ----------------------------------------------------------------------------------------------


def image_patches(images, size: int = PATCH):
    """float [N, H, W, C] -> [N, H-size+1, W-size+1, size·size·C]: every size x size patch at
    stride 1, each flattened in (row, column, channel) order."""
    n, h, w, c = images.shape
    rows, cols = h - size + 1, w - size + 1
    shifted = [
        images[:, dy : dy + rows, dx : dx + cols, :] for dy in range(size) for dx in range(size)
    ]
    return jnp.stack(shifted, axis=3).reshape(n, rows, cols, size * size * c)


def normalize_patches(patches):
    """Each patch (last axis, pixels 0-255) less its mean, over sqrt(its variance + 10); the variance
    with n - 1, as Matlab's `var` in the reference."""
    mean = jnp.mean(patches, axis=-1, keepdims=True)
    var = jnp.var(patches, axis=-1, keepdims=True, ddof=1)
    return (patches - mean) / jnp.sqrt(var + CONTRAST_EPS)


def fit_whitening(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ZCA of normalised patches [M, d]: (mean [d], W [d, d]) with W = V diag(1/sqrt(λ + 0.1)) Vᵀ
    of the covariance (n - 1), as the reference; whitened = (p - mean) @ W."""
    patches = np.asarray(patches, np.float64)
    mean = patches.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(patches, rowvar=False))
    whitening = (vectors / np.sqrt(eigenvalues + ZCA_EPS)) @ vectors.T
    return mean.astype(np.float32), whitening.astype(np.float32)


def fit_centroids(whitened: np.ndarray, k: int, seed: int) -> np.ndarray:
    """[k, d] k-means centroids of whitened patches (scikit-learn's Lloyd, k-means++ start)."""
    from sklearn.cluster import KMeans

    kmeans = KMeans(k, n_init=1, max_iter=KMEANS_ITERATIONS, random_state=seed)
    return kmeans.fit(whitened).cluster_centers_.astype(np.float32)


def triangle_code(x, centroids):
    """Coates's "triangle" encoding of vectors x [..., d]: max(0, mean_k z - z_k), z_k = ‖x - c_k‖."""
    squared = (
        jnp.sum(x * x, axis=-1, keepdims=True)
        - 2.0 * x @ centroids.T
        + jnp.sum(centroids * centroids, axis=-1)
    )
    z = jnp.sqrt(jnp.maximum(squared, 0.0))
    return jnp.maximum(jnp.mean(z, axis=-1, keepdims=True) - z, 0.0)


def quadrant_sums(codes):
    """[N, P, Q, K] -> [N, 4K]: the sums over the four quadrants, split at round(P/2), round(Q/2)
    (Matlab's round: half away from zero), in the order top-left, top-right, bottom-left,
    bottom-right."""
    p, q = codes.shape[1], codes.shape[2]
    half_p, half_q = (p + 1) // 2, (q + 1) // 2
    quadrants = [
        codes[:, :half_p, :half_q],
        codes[:, :half_p, half_q:],
        codes[:, half_p:, :half_q],
        codes[:, half_p:, half_q:],
    ]
    return jnp.concatenate([jnp.sum(c, axis=(1, 2)) for c in quadrants], axis=-1)


@jax.jit
def kmeans_features(images, mean, whitening, centroids):
    """uint8 [N, H, W, C] -> [N, 4K]: patches, normalised, whitened, triangle-coded, quadrant sums."""
    patches = normalize_patches(image_patches(images.astype(jnp.float32)))
    return quadrant_sums(triangle_code((patches - mean) @ whitening, centroids))


def fit_kmeans_baseline(images: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, ...]:
    """(mean, whitening, centroids) from `KMEANS_PATCHES` random patches of uint8 `images`."""
    rng = np.random.RandomState(seed)
    n, h, w, c = images.shape
    m = KMEANS_PATCHES
    which, ys, xs = (
        rng.randint(n, size=m),
        rng.randint(h - PATCH + 1, size=m),
        rng.randint(w - PATCH + 1, size=m),
    )
    offsets = np.arange(PATCH)
    patches = images[
        which[:, None, None],
        ys[:, None, None] + offsets[None, :, None],
        xs[:, None, None] + offsets[None, None, :],
    ].reshape(m, PATCH * PATCH * c)
    normalized = np.asarray(normalize_patches(patches.astype(np.float32)))
    mean, whitening = fit_whitening(normalized)
    return mean, whitening, fit_centroids((normalized - mean) @ whitening, k, seed)


# ----------------------------------------------------------------------------------------------
# The linear SVM.
# ----------------------------------------------------------------------------------------------


def svm_objective(weights, features, targets, c):
    """liblinear's L2-regularised L2-loss (squared hinge) primal, one-vs-rest, summed over classes:
    ½‖W‖² + C Σ max(0, 1 - t·(x·w))². features [N, D + 1] end with a constant 1, so the bias is
    regularised as scikit-learn's LinearSVC regularises it (intercept_scaling 1); targets ±1 [N, K]."""
    margins = jnp.maximum(1.0 - targets * (features @ weights), 0.0)
    return 0.5 * jnp.sum(weights * weights) + c * jnp.sum(margins * margins)


@functools.partial(jax.jit, static_argnames=("max_iterations",))
def fit_svm_weights(features, targets, c, initial, tolerance=1e-3, max_iterations=1000):
    """The minimiser of `svm_objective` by L-BFGS (optax, zoom line search) from `initial`, until
    the gradient's norm is `tolerance` times its initial norm. Returns (weights, iterations).

    A jitted solver rather than liblinear: the objective is smooth and strictly convex, and every
    iteration is two matmuls, so 59,000 x 3,585 features fit far faster than with LinearSVC's
    single-threaded Newton solver."""
    objective = functools.partial(svm_objective, features=features, targets=targets, c=c)
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)
    first_norm = optax.tree.norm(jax.grad(objective)(initial))

    def step(carry):
        weights, state, i = carry
        value, grad = value_and_grad(weights, state=state)
        updates, state = solver.update(
            grad, state, weights, value=value, grad=grad, value_fn=objective
        )
        return optax.apply_updates(weights, updates), state, i + 1

    def running(carry):
        _, state, i = carry
        grad = optax.tree.get(state, "grad")
        return (i == 0) | ((i < max_iterations) & (optax.tree.norm(grad) > tolerance * first_norm))

    weights, _, iterations = jax.lax.while_loop(
        running, step, (initial, solver.init(initial), jnp.asarray(0))
    )
    return weights, iterations


def linear_svm(
    train_x: np.ndarray,
    train_y: np.ndarray,
    validation_x: np.ndarray,
    validation_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    c_grid: Sequence[float] = C_GRID,
    max_iterations: int = 1000,
) -> dict:
    """An L2-regularised linear SVM (`svm_objective`) per C on features standardised with the
    training set's statistics; the C best on the validation pair (the smaller on ties) is scored
    on the test pair. Each C starts from the previous one's solution (the grid ascends).
    {"accuracy", "C", "validation_accuracy", "converged"} (converged: the gradient criterion was
    met before `max_iterations`)."""
    mean = train_x.mean(axis=0)
    scale = train_x.std(axis=0) + 1e-6

    def design(x):  # standardised, with the bias's constant column
        x = (x - mean) / scale
        return jnp.asarray(np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1))

    classes = np.unique(train_y)
    targets = jnp.asarray(np.where(train_y[:, None] == classes[None], 1.0, -1.0), jnp.float32)
    features = design(train_x)
    predict = lambda w, x: classes[np.asarray(jnp.argmax(design(x) @ w, axis=1))]  # noqa: E731
    weights = jnp.zeros((features.shape[1], len(classes)), features.dtype)
    best = None
    for c in sorted(c_grid):
        weights, iterations = fit_svm_weights(
            features, targets, jnp.asarray(c, features.dtype), weights,
            max_iterations=max_iterations,
        )  # fmt: skip
        score = float(np.mean(predict(weights, validation_x) == validation_y))
        if best is None or score > best[0]:
            best = (score, c, weights, int(iterations) < max_iterations)
    score, c, weights, converged = best
    return {
        "accuracy": float(np.mean(predict(weights, test_x) == test_y)),
        "C": c,
        "validation_accuracy": score,
        "converged": converged,
    }


# ----------------------------------------------------------------------------------------------
# The experiment.
# ----------------------------------------------------------------------------------------------


def labelled_split(
    labels: np.ndarray, validation: int, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(validation indices, labelled indices) into a train split: `validation` class-balanced
    images held out (the same for every seed), then n class-balanced images of the rest (0: all)."""
    if validation >= len(labels):
        raise errors.ConfigError(
            f"--validation={validation} holds out the whole train split ({len(labels)} images); "
            f"use fewer."
        )
    held_out = data.balanced_subset(labels, validation, VALIDATION_SEED)
    rest = np.setdiff1d(np.arange(len(labels)), held_out)
    if n > len(rest):
        raise errors.ConfigError(
            f"--labels={n}: only {len(rest)} train images remain after the {validation} held out; "
            f"use at most {len(rest)} or 0 (all)."
        )
    if n == 0:
        return held_out, rest
    return held_out, rest[data.balanced_subset(labels[rest], n, seed)]


def _load_split(target: str, split: str, resolution: int, channels: int):
    source = data.open_source(target, split, None, channels)
    return imagesets.load_images(source, np.arange(len(source)), resolution, channels)


def _load_critic(workdir: str, config, checkpoint: str | int, channels: int, num_classes: int):
    """(critic module, the checkpoint's critic params, step)."""
    if config.method != "gan" or config.model.name != "dcgan":
        raise errors.ConfigError(
            f"{workdir} is a {config.method!r} run of model {config.model.get('name')!r}; the "
            f"feature experiment reads the blocks of a DCGAN critic (jaxgan/configs/dcgan.py)."
        )
    _, critic = gan.build_models(config, channels, num_classes)
    params, _, step = checkpointing.restore_params(
        workdir, "d_params", checkpoint, parallel.make_mesh()
    )
    return critic, params, step


def svm_fits(name: str, labels: Sequence[int], label_seeds: Sequence[int]) -> list[tuple]:
    """(extraction seed, N, label draw) of each SVM fit of feature set `name`. Only the random
    critic depends on the seed (one critic per seed, one draw each); the others are extracted once
    and fitted on every seed's draw of N labels. All labels (N = 0) are one set whatever the seed:
    one fit per extraction (59,000 images take minutes per C)."""
    seeds = label_seeds if name == "random_critic" else label_seeds[:1]
    fits = []
    for seed in seeds:
        for n in labels:
            if n == 0 and seed != label_seeds[0]:
                continue
            draws = label_seeds if n and name != "random_critic" else [seed]
            fits += [(seed, n, draw) for draw in draws]
    return fits


def dcgan_features(
    workdir: str,
    target: str,
    labels: Sequence[int] = (100, 1000, 0),
    label_seeds: Sequence[int] = (0, 1, 2),
    validation: int = 1000,
    checkpoint: str | int = "latest",
    kmeans_centroids: int = 800,
    batch_size: int = 200,
    feature_sets: Sequence[str] = FEATURE_SETS,
) -> dict:
    """The table (one row per feature set and N); writes W/eval/dcgan_features_<target>.*"""
    start = time.perf_counter()
    config = sampling.load_config(workdir)
    # The critic reads the run's resolution and channels: the target is fitted to them.
    _, channels, num_classes = data.open_run_source(config)
    resolution = config.data.resolution
    train_images, train_labels = _load_split(target, "train", resolution, channels)
    test_images, test_labels = _load_split(target, "test", resolution, channels)
    # The critic's AC head (unused here) is sized by the run's own classes.
    run_classes = num_classes if gan.is_conditional(config) else 0
    critic, trained, step = _load_critic(workdir, config, checkpoint, channels, run_classes)
    mesh = parallel.make_mesh()
    statistics, features = make_critic_features(critic)
    # A random subset: a split may be stored sorted by class (mnist5k is).
    reference = train_images[
        np.random.RandomState(0).permutation(len(train_images))[:STATISTICS_IMAGES]
    ]

    def critic_features(params):
        variables = {"params": params}
        frozen = statistics(variables, reference)
        return lambda images: map_batches(
            functools.partial(features, variables, frozen), images, batch_size, mesh
        )

    def random_params(seed):
        dummy = jnp.zeros((1, resolution, resolution, channels), jnp.float32)
        return critic.init(jax.random.key(seed), dummy)["params"]

    def extractor(name: str, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        if name == "dcgan":
            return critic_features(trained)
        if name == "random_critic":
            return critic_features(random_params(seed))
        if name == "kmeans":
            fitted = fit_kmeans_baseline(train_images, kmeans_centroids, seed)
            return lambda images: map_batches(
                lambda x: kmeans_features(x, *fitted), images, batch_size // 4 or 1, mesh
            )
        if name == "pixels":
            return lambda images: images.reshape(len(images), -1).astype(np.float32) / 255.0
        raise errors.ConfigError(f"Feature set {name!r}: expected one of {FEATURE_SETS}.")

    plans = {name: svm_fits(name, labels, label_seeds) for name in feature_sets}
    bar = run_files.progress_bar(sum(map(len, plans.values())), unit="fit", desc="dcgan_features")
    rows = []
    for name, fits in plans.items():
        by_count: dict[int, list[dict]] = {n: [] for n in labels}
        extracted: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for seed, n, draw in fits:
            if seed not in extracted:  # one extraction per feature set and seed, kept for its fits
                extract = extractor(name, seed)
                extracted = {seed: (extract(train_images), extract(test_images))}
            train_x, test_x = extracted[seed]
            held_out, labelled = labelled_split(train_labels, validation, n, draw)
            result = linear_svm(
                train_x[labelled], train_labels[labelled],
                train_x[held_out], train_labels[held_out], test_x, test_labels,
            )  # fmt: skip
            by_count[n].append({"seed": draw, "labels": len(labelled), **result})
            bar.set_postfix_str(f"{name} N={len(labelled)}")
            bar.update()
        for results in by_count.values():
            accuracies = [r["accuracy"] for r in results]
            row = {
                "features": name,
                "dims": int(train_x.shape[1]),
                "labels": results[0]["labels"],
                "accuracy_mean": float(np.mean(accuracies)),
                "accuracy_min": min(accuracies),
                "accuracy_max": max(accuracies),
                "per_seed": results,
            }
            bar.write(
                f"{name:>13} N={row['labels']:>6}: {row['accuracy_mean']:.4f} "
                f"({row['accuracy_min']:.4f}-{row['accuracy_max']:.4f}, {len(results)} draws)"
            )
            rows.append(row)
    bar.close()
    stem = "dcgan_features_" + target.replace(":", "_").replace("/", "_").replace("=", "")
    table = {
        "experiment": stem,
        "workdir": os.path.abspath(workdir),
        "checkpoint": step,
        "gan_dataset": config.data.dataset,
        "target": target,
        "n_train": len(train_labels),
        "n_validation": validation,
        "n_test": len(test_labels),
        "label_seeds": list(label_seeds),
        "c_grid": list(C_GRID),
        "statistics_images": min(STATISTICS_IMAGES, len(train_images)),
        "kmeans": {"centroids": kmeans_centroids, "patch": PATCH, "patches": KMEANS_PATCHES},
        "rows": rows,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    return tables.write_table(table, workdir, plot, markdown(table))


def markdown(table: dict) -> str:
    """Feature sets x numbers of labels: test accuracy, mean over the label seeds (range)."""
    counts = sorted({r["labels"] for r in table["rows"]})
    lines = [
        f"Linear SVM on {table['target']} ({table['n_test']:,} test images), features of "
        f"{table['workdir']} step {table['checkpoint']} (trained on {table['gan_dataset']}); "
        f"mean over label seeds {table['label_seeds']} (min-max).",
        "",
        "| features | dims | " + " | ".join(f"{n:,} labels" for n in counts) + " |",
        "|---|---:|" + "---:|" * len(counts),
    ]
    for name in dict.fromkeys(r["features"] for r in table["rows"]):
        mine = {r["labels"]: r for r in table["rows"] if r["features"] == name}
        cells = []
        for n in counts:
            r = mine.get(n)
            if r is None:
                cells.append("")
            elif r["accuracy_min"] == r["accuracy_max"]:
                cells.append(f"{100 * r['accuracy_mean']:.1f} %")
            else:
                cells.append(
                    f"{100 * r['accuracy_mean']:.1f} % ({100 * r['accuracy_min']:.1f}–"
                    f"{100 * r['accuracy_max']:.1f})"
                )
        dims = next(iter(mine.values()))["dims"]
        lines.append(f"| {name} | {dims:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(table: dict):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    for name in dict.fromkeys(r["features"] for r in table["rows"]):
        rows = sorted(
            (r for r in table["rows"] if r["features"] == name), key=lambda r: r["labels"]
        )
        n = [r["labels"] for r in rows]
        mean = np.array([r["accuracy_mean"] for r in rows])
        spread = [
            mean - [r["accuracy_min"] for r in rows],
            [r["accuracy_max"] for r in rows] - mean,
        ]
        ax.errorbar(
            n, mean, yerr=spread, marker="o", capsize=3, label=f"{name} ({rows[0]['dims']:,})"
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"labelled {table['target']} train images (class-balanced)")
    ax.set_ylabel(f"linear SVM accuracy on {table['n_test']:,} test images")
    ax.set_title(
        f"features of a DCGAN critic trained on {table['gan_dataset']} (step {table['checkpoint']})",
        fontsize="medium",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.13)
    return fig
