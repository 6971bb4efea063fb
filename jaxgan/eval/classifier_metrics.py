"""Metrics that train or apply a classifier or a critic: GAN-train, GAN-test, class-wise FID, the
independent Wasserstein critic, and the stacked-MNIST mode count. The evaluator
(`jaxgan/evaluate.py`) calls these with its image sets; each is usable on plain arrays.

  gan_train   "How good is my GAN?" (Shmelkov et al. 2018): a fresh
              classifier, trained with the real baseline's recipe on class-balanced generated images
              and the labels they were generated for, is scored on the real test split.
  gan_test    the classifier trained on the real train split, scored on generated images against
              their labels: *all* of them (the reference's `evaluate_classifier` reads 2,560, a
              batch-size quirk).
  class_fid   Transferring GANs (Wang et al. 2018) Table 6: FID between the real images of class
              c and the images generated for c, per class, their mean, and the class-agnostic FID.
  iw          Transferring GANs eq. 6 (after Danihelka et al. 2017): an independent critic, trained
              with WGAN-GP to separate real split A from generated images, reports
              E D(real B) - E D(fake B) on a disjoint real split B and fresh fakes.
  modes       PGGAN App. E / Metz et al. 2016 (PGGAN `calc_mnistrgb_histogram`): each channel of a
              3-channel image is classified by the MNIST classifier, d_R + 10 d_G + 100 d_B is its
              mode (of 1,000); reported are the modes covered and KL(model || uniform) over the
              non-empty modes, averaged over `num_evals` sets of `num_images` images.

All randomness is seeded; the functions return plain dicts of floats (plus what a caller may keep).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import data
from jaxgan.eval import classifier_training, fid
from jaxgan.models import classifier, dcgan
from jaxgan.training import losses, penalties

# ----------------------------------------------------------------------------------------------
# Labelled sets.
# ----------------------------------------------------------------------------------------------


def balanced_labels(n: int, num_classes: int) -> np.ndarray:
    """int32 [n]: `arange(n) % num_classes`, the generated sets' labels (gan.py::generate)."""
    return np.arange(n, dtype=np.int32) % num_classes


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of n items, as equal a share of every class as `labels` allows.

    `data.balanced_subset`, the one selection: the data package also picks the `DATASET:n=K`
    training subset with it (`balanced_subset(train labels in source order, K * num_classes, 0)`).
    """
    return data.balanced_subset(labels, n, seed)


# ----------------------------------------------------------------------------------------------
# GAN-train / GAN-test.
# ----------------------------------------------------------------------------------------------


def gan_train(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    recipe: classifier_training.Recipe,
    seed: int = 0,
    num_classes: int = 10,
    steps: int = 0,
) -> dict:
    """Accuracy on (test_images, test_labels) of a fresh classifier trained on the train pair.

    GAN-train when the train pair is generated (uint8 [N, R, R, C], labels [N]) and the test pair
    the real test split; the real baseline when the train pair is the real train split.
    Returns {"accuracy", "params"} (params: the trained classifier's weights).
    """
    params = classifier_training.train_classifier(
        train_images, train_labels, recipe, seed, num_classes, steps
    )
    model = classifier.get(recipe.model, num_classes)
    logits = classifier_training.make_predictor(model, params)(test_images)["logits"]
    return {"accuracy": classifier_training.accuracy(logits, test_labels), "params": params}


def gan_test(
    predict: Callable[[np.ndarray], dict], images: np.ndarray, labels: np.ndarray
) -> float:
    """Accuracy of a real-trained classifier `predict` on all generated images vs their labels."""
    return classifier_training.accuracy(predict(images)["logits"], labels)


# ----------------------------------------------------------------------------------------------
# Class-wise FID.
# ----------------------------------------------------------------------------------------------


def class_fid(
    real_features: np.ndarray,
    real_labels: np.ndarray,
    fake_features: np.ndarray,
    fake_labels: np.ndarray,
    num_classes: int,
) -> dict:
    """Per-class FIDs (real class c vs fakes generated for c), their mean, and the overall FID.

    Returns {"mean": float, "all": float, "per_class": {c: float}, "skipped": [c, ...],
    "singular": [c, ...]}: classes with fewer than 2 images on either side have no covariance and
    are skipped (not in the mean); "singular" lists the classes with no more images than feature
    dimensions (their covariance is singular: a value, but a noisy one; fid.py warns once here).
    """
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    dims = real_features.shape[1]
    per_class, skipped, singular = {}, [], []
    for c in range(num_classes):
        real_c, fake_c = real_features[real_labels == c], fake_features[fake_labels == c]
        if min(len(real_c), len(fake_c)) < 2:
            skipped.append(c)
            continue
        if min(len(real_c), len(fake_c)) <= dims:
            singular.append(c)
        with warnings.catch_warnings():  # one line below instead of one warning per class
            warnings.simplefilter("ignore", UserWarning)
            per_class[c] = fid.fid_from_features(real_c, fake_c)
    if not per_class:
        raise ValueError("class_fid: no class has 2 or more images in both sets.")
    if singular:
        warnings.warn(
            f"class_fid: {len(singular)} of {num_classes} classes have <= {dims} images (the "
            f"feature dimension) on a side: singular covariances, noisy FIDs.",
            stacklevel=2,
        )
    return {
        "mean": float(np.mean(list(per_class.values()))),
        "all": fid.fid_from_features(real_features, fake_features),
        "per_class": per_class,
        "skipped": skipped,
        "singular": singular,
    }


# ----------------------------------------------------------------------------------------------
# Stacked-MNIST modes.
# ----------------------------------------------------------------------------------------------


def stacked_digit_classes(
    images: np.ndarray, predict: Callable[[np.ndarray], dict], chunk: int = 10_000
) -> np.ndarray:
    """int64 [N]: d_R + 10 d_G + 100 d_B for uint8 images [N, H, W, 3], each channel classified.

    predict: an MNIST classifier on grayscale uint8 [M, H, W, 1] (`make_predictor` or a
    `FeatureNetwork.extract`). Channels are fed in chunks so memory stays at one chunk's copy.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"modes: expected 3-channel images [N, H, W, 3], got {images.shape}.")
    classes = []
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk]
        # [n, H, W, 3] -> [n * 3, H, W, 1] in (image, channel) order, as PGGAN's NCHW reshape.
        digits = np.ascontiguousarray(part.transpose(0, 3, 1, 2)).reshape(-1, *part.shape[1:3], 1)
        predicted = np.argmax(predict(digits)["logits"], axis=-1).reshape(-1, 3)
        classes.append(predicted @ np.array([1, 10, 100]))
    return np.concatenate(classes)


def mode_histogram(classes: np.ndarray, num_modes: int = 1000) -> tuple[int, float]:
    """(modes covered, KL(model || uniform)) of mode ids [N] in [0, num_modes).

    KL sums p log(p / (1/num_modes)) over the non-empty modes only (PGGAN's
    `calc_mnistrgb_histogram`), with p = count / N.
    """
    counts = np.bincount(np.asarray(classes), minlength=num_modes).astype(np.float64)
    p = counts[counts > 0] / len(classes)
    return int(len(p)), float(np.sum(p * np.log(p * num_modes)))


def stacked_modes(
    images: np.ndarray,
    predict: Callable[[np.ndarray], dict],
    num_images: int = 25_600,
    num_evals: int = 10,
) -> dict:
    """PGGAN App. E on the first num_images * num_evals of images [N, H, W, 3]: mean over evals.

    Returns {"modes", "kl", "modes_std", "kl_std", "per_eval_modes", "per_eval_kl"}.
    """
    needed = num_images * num_evals
    if len(images) < needed:
        raise ValueError(
            f"modes: {num_evals} evals of {num_images:,} images need {needed:,}; "
            f"got {len(images):,}."
        )
    classes = stacked_digit_classes(images[:needed], predict)
    results = [
        mode_histogram(classes[i * num_images : (i + 1) * num_images]) for i in range(num_evals)
    ]
    modes, kls = np.array([r[0] for r in results], float), np.array([r[1] for r in results])
    return {
        "modes": float(modes.mean()),
        "kl": float(kls.mean()),
        "modes_std": float(modes.std()),
        "kl_std": float(kls.std()),
        "per_eval_modes": modes.astype(int).tolist(),
        "per_eval_kl": kls.tolist(),
    }


# ----------------------------------------------------------------------------------------------
# The independent Wasserstein critic.
# ----------------------------------------------------------------------------------------------


def independent_wasserstein(
    real_train: np.ndarray,
    fake_train: np.ndarray,
    real_eval: np.ndarray,
    fake_eval: np.ndarray,
    seed: int = 0,
    steps: int = 2000,
    width: int = 32,
    batch_size: int = 64,
    learning_rate: float = 2e-4,
    gp_weight: float = 10.0,
    eval_batch_size: int = 500,
) -> dict:
    """IW (Transferring GANs eq. 6): a fresh critic trained on (real_train vs fake_train), evaluated
    as E D(real_eval) - E D(fake_eval). All image sets uint8 [N, R, R, C], R a power of two >= 8.

    The critic is the DCGAN critic without normalisation (`dcgan.Critic(norm='none')`, width
    `width`), trained with the WGAN-GP loss (`losses.wasserstein`, `penalties.wgan_gp` x gp_weight)
    and Adam(learning_rate, 0, 0.9) (the project's WGAN-GP optimiser) for `steps` steps on random
    batches of `batch_size` reals and fakes (`RandomState(seed)`; weights from `key(seed)`).
    Returns {"iw": on the evaluation sets, "iw_train": the same on the training sets (their gap
    shows the critic overfitting), "params"}.
    """
    resolution, channels = real_train.shape[1], real_train.shape[-1]
    for name, images in (
        ("fake_train", fake_train),
        ("real_eval", real_eval),
        ("fake_eval", fake_eval),
    ):
        if images.shape[1:] != real_train.shape[1:]:
            raise ValueError(
                f"iw: {name} images are {images.shape[1:]}, real_train {real_train.shape[1:]}."
            )
    critic = dcgan.Critic(resolution=resolution, width=width, norm="none")
    loss = losses.wasserstein()
    tx = optax.adam(learning_rate, b1=0.0, b2=0.9)
    init_key = jax.random.key(seed, impl="rbg")  # compiles faster than threefry (gan.create_state)
    params = jax.jit(critic.init)(init_key, jnp.zeros((1, resolution, resolution, channels)))[
        "params"
    ]
    opt_state = tx.init(params)

    def to_float(images):
        return data.to_float(images, jax.random.key(0))  # x/127.5 - 1, as the GAN's reals

    def critic_loss(params, reals, fakes, key):
        critic_fn = lambda x: critic.apply({"params": params}, x)[0]
        real_scores = critic_fn(reals)
        adversarial = loss.critic(real_scores, critic_fn(fakes))
        penalty = penalties.wgan_gp(critic_fn, reals, fakes, real_scores, key)
        return adversarial + gp_weight * penalty, (adversarial, penalty)

    @jax.jit
    def step(params, opt_state, reals, fakes, key):
        grads, terms = jax.grad(critic_loss, has_aux=True)(
            params, to_float(reals), to_float(fakes), key
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, terms

    rng = np.random.RandomState(seed)
    key = jax.random.key(seed)
    # A Python loop over a jitted step: XLA:CPU runs convolutions inside lax.scan much slower.
    for i in range(steps):
        reals = real_train[rng.randint(len(real_train), size=batch_size)]
        fakes = fake_train[rng.randint(len(fake_train), size=batch_size)]
        params, opt_state, _ = step(params, opt_state, reals, fakes, jax.random.fold_in(key, i))

    score = jax.jit(lambda p, x: critic.apply({"params": p}, to_float(x))[0])

    def mean_score(images):
        total = 0.0
        for start in range(0, len(images), eval_batch_size):
            total += float(jnp.sum(score(params, images[start : start + eval_batch_size])))
        return total / len(images)

    return {
        "iw": mean_score(real_eval) - mean_score(fake_eval),
        "iw_train": mean_score(real_train) - mean_score(fake_train),
        "params": params,
    }
