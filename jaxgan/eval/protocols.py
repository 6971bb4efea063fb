"""The registered metrics that train or apply a classifier or a critic ("How good is my GAN?",
Transferring GANs, PGGAN App. E; the math is in `classifier_metrics.py`).

The classifier recipe is `--classifier_recipe` (auto: mnist5k for grayscale, cifar10's ResNet-32
otherwise; `jaxgan/models/classifier.py`) for `--classifier_steps` (0: the recipe's), seeded by
`--classifier_seed`. The "real classifier" is that recipe trained on the whole real train split:
for mnist5k at the recipe's steps and seed 0 the shipped mnist_cnn (the script's run of that
recipe), else trained once and kept in the cache. A mnist5k classifier (1,250 steps) trains on a
CPU; the cifar10 recipe (64,000 steps of 128) is for an accelerator.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from jaxgan.core import errors, npz_weights
from jaxgan.eval import classifier_metrics, classifier_training, features, registry
from jaxgan.eval.registry import Result
from jaxgan.models import classifier

CLASSIFIER_PARAMS = ("classifier_recipe", "classifier_steps", "classifier_seed")
AS_MANY_AS_TRAIN = registry.like_reals(
    "Shmelkov et al. 2018: as many fakes as the real training split (50,000 on CIFAR-10)"
)


def classifier_recipe(options, dataset: str, channels: int):
    """(name, `classifier_training.Recipe`, steps, seed) from --classifier_recipe/_steps/_seed."""

    name = options.classifier_recipe
    if name == "auto":
        name = classifier_training.recipe_for(dataset, channels)
    recipe = classifier_training.get_recipe(name)
    return name, recipe, options.classifier_steps or recipe.steps, options.classifier_seed


def require_labels(metric: str, fake) -> None:
    if fake.labels is None:
        raise errors.ConfigError(
            f"{metric} compares generated images with the labels they were generated for; "
            f"{fake.name} has none (a class-conditional generator's fakes, or an .npz with labels)."
        )


def _classifier_details(scorer, splits) -> dict:
    name, recipe, steps, seed = classifier_recipe(scorer.options, splits.dataset, scorer.channels)
    return {"recipe": name, "settings": recipe.asdict(), "steps": steps, "seed": seed}


def _split_details(splits) -> dict:
    return {
        "train_set": splits.train.name,
        "n_train": splits.train.size,
        "test_set": splits.test.name,
        "n_test": splits.test.size,
    }


def real_classifier(scorer) -> dict:
    """The recipe trained on the real train split: {"predict", "accuracy" (on the test split),
    "source"}, once per scorer."""

    splits = scorer.require_splits("gan_test")
    name, recipe, steps, seed = classifier_recipe(scorer.options, splits.dataset, scorer.channels)
    memo_key = ("classifier", name, steps, seed)
    if memo_key in scorer.memo:
        return scorer.memo[memo_key]
    model = classifier.get(recipe.model, splits.num_classes)
    shipped = (
        splits.dataset == "mnist5k"
        and (name, steps, splits.num_classes) == ("mnist5k", recipe.steps, 10)
        and (scorer.resolution, scorer.channels) == classifier.INPUT_SHAPES["mnist_cnn"]
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
            params = classifier_training.train_classifier(
                train.images, train.labels, recipe, seed, splits.num_classes, steps
            )
            return classifier.flatten(params)

        params = npz_weights.unflatten(scorer.cache.get_or_compute(key, compute))
        source = f"cache:{os.path.basename(scorer.cache.path(key))}"
    predict = classifier_training.make_predictor(model, params)
    test_logits = predict(splits.test.images)["logits"]
    scorer.memo[memo_key] = {
        "predict": predict,
        "accuracy": classifier_training.accuracy(test_logits, splits.test.labels),
        "source": source,
    }
    return scorer.memo[memo_key]


@registry.register(
    "gan_train",
    summary="A fresh classifier trained on the class-balanced fakes, accuracy on the real test "
    "split; real_value: the real classifier's.",
    fakes=AS_MANY_AS_TRAIN,
    labels=True,
    splits=True,
    baseline=False,  # its real baseline is real_value: trained on reals, tested on the test split
    params=CLASSIFIER_PARAMS,
)
def gan_train(scorer, real, fake) -> Result:

    splits = scorer.require_splits("gan_train")
    require_labels("gan_train", fake)
    _, recipe, steps, seed = classifier_recipe(scorer.options, splits.dataset, scorer.channels)
    result = classifier_metrics.gan_train(
        fake.images, fake.labels, splits.test.images, splits.test.labels,
        recipe, seed, splits.num_classes, steps,
    )  # fmt: skip
    baseline = real_classifier(scorer)
    details = {
        "classifier": _classifier_details(scorer, splits),
        "real_classifier": baseline["source"],
        **_split_details(splits),
    }
    return Result(
        {"gan_train": result["accuracy"]}, real_value=baseline["accuracy"], details=details
    )


@registry.register(
    "gan_test",
    summary="The real classifier's accuracy on the fakes w.r.t. their labels; real_value: on the "
    "real test split.",
    fakes=AS_MANY_AS_TRAIN,
    labels=True,
    splits=True,
    params=CLASSIFIER_PARAMS,
)
def gan_test(scorer, real, fake) -> Result:

    splits = scorer.require_splits("gan_test")
    require_labels("gan_test", fake)
    baseline = real_classifier(scorer)
    accuracy = classifier_metrics.gan_test(baseline["predict"], fake.images, fake.labels)
    details = {
        "classifier": _classifier_details(scorer, splits),
        "real_classifier": baseline["source"],
        **_split_details(splits),
    }
    return Result({"gan_test": accuracy}, real_value=baseline["accuracy"], details=details)


@registry.register(
    "class_fid",
    summary="Transferring GANs Table 6: FID of each class's reals vs its fakes; value: the mean "
    "(values: also `all` and `class_<c>`).",
    features=True,
    labels=True,
    fakes=registry.like_reals("Transferring GANs: as many fakes as reals"),
)
def class_fid(scorer, real, fake) -> Result:

    real_out = scorer.features(real)
    require_labels("class_fid", fake)
    if "labels" not in real_out:
        raise errors.ConfigError(
            f"class_fid needs the reference set's labels; {real.name} has none."
        )
    num_classes = (
        scorer.splits.num_classes
        if scorer.splits is not None
        else int(max(real_out["labels"].max(), fake.labels.max())) + 1
    )
    result = classifier_metrics.class_fid(
        real_out["features"], real_out["labels"], scorer.features(fake)["features"],
        fake.labels, num_classes,
    )  # fmt: skip
    per_class = {f"class_{c}": v for c, v in result["per_class"].items()}
    details = {k: result[k] for k in ("skipped", "singular")}
    return Result({"mean": result["mean"], "all": result["all"], **per_class},
                  details={**details, "num_classes": num_classes})  # fmt: skip


@registry.register(
    "iw",
    summary="Transferring GANs' independent Wasserstein critic: E D(real) - E D(fake) on held-out "
    "halves (details.iw_train: on the training halves).",
    splits=True,
    baseline=False,  # it would train and score its critic on the test split itself
    params=("iw_steps", "iw_width", "iw_batch_size"),
)
def independent_wasserstein(scorer, real, fake) -> Result:

    splits = scorer.require_splits("iw")
    o = scorer.options
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
        real_a, fake.images[:half_fake], real_b, fake.images[half_fake:], seed=o.seed, **settings
    )
    details = {
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
    return Result({"iw": result["iw"]}, details=details)


def _modes_count(n_real: int, options) -> int:
    return options.modes_images * options.modes_evals


def _modes_inputs(n_real: int, n_fake: int, channels: int | None, options) -> str | None:
    if channels not in (None, 3):
        return (
            f"modes classifies the 3 channels of stacked-MNIST images (stacked_mnist5k); these "
            f"images have {channels} channel(s)."
        )
    if n_fake < _modes_count(n_real, options):
        return (
            f"modes needs at least {_modes_count(n_real, options):,} fakes (--modes_images × "
            f"--modes_evals); this evaluation has {n_fake:,} (--num_samples). Pass "
            f"--num_samples=0, or smaller --modes_images / --modes_evals."
        )
    return None


@registry.register(
    "modes",
    summary="PGGAN App. E on stacked MNIST: modes covered (of 1,000) and KL(model || uniform), "
    "each channel classified by the shipped mnist_cnn.",
    fakes=registry.Protocol(_modes_count, "PGGAN App. E: 10 evaluations of 25,600"),
    min_fakes=lambda options: _modes_count(0, options),
    check=_modes_inputs,
    params=("modes_images", "modes_evals"),
)
def modes(scorer, real, fake) -> Result:

    o = scorer.options
    digits = features.load("mnist_cnn", scorer.resolution, 1)  # the shipped MNIST classifier
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
    details = {
        "real_kl": reals["kl"] if reals else None,
        "real_evals": real_evals,
        "num_images": o.modes_images,
        "num_evals": o.modes_evals,
        **{k: result[k] for k in ("modes_std", "kl_std", "per_eval_modes", "per_eval_kl")},
        "classifier": f"mnist_cnn per channel ({digits.weights})",
    }
    return Result({"modes": result["modes"], "kl": result["kl"]},
                  real_value=reals["modes"] if reals else None, details=details)  # fmt: skip
