"""The registered metrics that compare two image distributions (the math is in `fid.py`, `kid.py`,
`inception_score.py`, `swd.py`, `ms_ssim.py`, `prd.py`).

Each: `(scorer, real, fake) -> registry.Result`. Results computed from the reals alone (FID
statistics, SWD descriptors, the reals' IS and MS-SSIM) are kept in `real.memo`: one reference set
serves every checkpoint.
"""

from __future__ import annotations

import numpy as np

from jaxgan.eval import fid as frechet
from jaxgan.eval import inception_score as score
from jaxgan.eval import kid as kernel
from jaxgan.eval import ms_ssim as similarity
from jaxgan.eval import prd, registry, swd
from jaxgan.eval.registry import Result

TTUR = "TTUR (Heusel et al. 2017): 50,000 fakes"


@registry.register(
    "fid",
    summary="Fréchet distance of the feature network's features (pool3 for Inception).",
    features=True,
    fakes=registry.fixed(50_000, TTUR),
    better="lower",
)
def fid(scorer, real, fake) -> Result:

    if "fid_stats" not in real.memo:
        real.memo["fid_stats"] = frechet.feature_statistics(scorer.features(real)["features"])
    mu, sigma = frechet.feature_statistics(scorer.features(fake)["features"])
    return Result({"fid": frechet.frechet_distance(*real.memo["fid_stats"], mu, sigma)})


@registry.register(
    "fid5k_x10",
    summary="10 aligned 5k-vs-5k FIDs, mean ± std (Shmelkov et al., 'How good is my GAN?').",
    features=True,
    fakes=registry.fixed(50_000, "Shmelkov et al. 2018: 10 × 5,000"),
    min_fakes=lambda options: 50_000,
    check=lambda n_real, n_fake, channels, options: (
        f"fid5k_x10 compares 10 aligned chunks of 5,000 and needs 50,000 images per set; this "
        f"evaluation has n_real={n_real}, n_fake={n_fake}. Pass --num_real=50000 with a split "
        f"that large, or use fid."
        if min(n_real, n_fake) < 50_000
        else None
    ),
    better="lower",
)
def fid5k_x10(scorer, real, fake) -> Result:

    mean, std = frechet.fid_chunks(
        scorer.features(real)["features"], scorer.features(fake)["features"]
    )
    return Result({"fid5k_x10": mean}, std, details={"num_chunks": 10, "chunk_size": 5000})


@registry.register(
    "kid",
    summary="Unbiased polynomial-kernel MMD² over subsets (value not ×10³; Bińkowski et al.).",
    features=True,
    params=("kid_subsets", "kid_subset_size"),
    better="lower",
)
def kid(scorer, real, fake) -> Result:

    o = scorer.options
    mean, std = kernel.kernel_inception_distance(
        scorer.features(real)["features"],
        scorer.features(fake)["features"],
        o.kid_subsets,
        o.kid_subset_size,
        o.seed,
    )
    subset = min(o.kid_subset_size, real.size, fake.size)
    return Result({"kid": mean}, std, details={"num_subsets": o.kid_subsets, "subset_size": subset})


@registry.register(
    "is",
    summary="Inception Score of the fakes' logits over splits; real_value: the reals' IS.",
    features=True,
    fakes=registry.fixed(50_000, "Salimans et al. 2016: 50,000 fakes in 10 splits"),
    params=("is_splits",),
    better="higher",
)
def inception_score(scorer, real, fake) -> Result:

    o = scorer.options
    if "is" not in real.memo:
        real.memo["is"] = score.inception_score(
            scorer.features(real)["logits"], o.is_splits, o.seed
        )
    mean, std = score.inception_score(scorer.features(fake)["logits"], o.is_splits, o.seed)
    details = {"real_std": real.memo["is"][1], "splits": o.is_splits}
    return Result(
        {"is": mean}, std, real.memo["is"][0], {**details, "logits": scorer.network.logits_layer}
    )


@registry.register(
    "pr",
    summary="Improved precision and recall (Kynkäänniemi et al.), k nearest neighbours; value: precision.",
    features=True,
    fakes=registry.like_reals(
        "Kynkäänniemi et al. 2019: as many fakes as reals (50,000 each)", 50_000
    ),
    params=("pr_k",),
)
def precision_recall(scorer, real, fake) -> Result:

    result = prd.precision_recall(
        real_features=scorer.features(real)["features"],
        fake_features=scorer.features(fake)["features"],
        k=scorer.options.pr_k,
    )
    return Result(result, details={"k": scorer.options.pr_k})


@registry.register(
    "swd",
    summary="PGGAN's sliced Wasserstein distance ×10³ per Laplacian level and their average.",
    fakes=registry.like_reals("PGGAN: 16,384 per set, at most as many as the reals", 16_384),
    params=("swd_preset",),
    better="lower",
)
def sliced_wasserstein(scorer, real, fake) -> Result:

    o = scorer.options
    preset = swd.SWD_PRESETS[o.swd_preset]
    n = min(real.size, fake.size)  # PGGAN compares equal counts; use all that both sets have
    memo_key = ("swd", n, o.swd_preset)
    if memo_key not in real.memo:  # PGGAN reuses desc_real for every snapshot
        real.memo[memo_key] = _swd_descriptors(real.images[:n], scorer.resolution, o.seed, preset)
    # Fakes: their own RNG, the same for every checkpoint, so a row does not depend on which
    # other checkpoints were scored in the same call.
    rng = np.random.RandomState(o.seed + 1)
    fake_descriptors = _swd_descriptors(fake.images[:n], scorer.resolution, rng, preset)
    values = swd.sliced_wasserstein_distances(
        real.memo[memo_key], fake_descriptors, swd.swd_resolutions(scorer.resolution), rng, preset
    )
    details = {
        "images_per_set": n,
        "note": f"PGGAN quotes SWD at {preset.num_images} images per set; this used {n}.",
        "nhoods_per_image": preset.nhoods_per_image,
        "dir_repeats": preset.dir_repeats,
        "dirs_per_repeat": preset.dirs_per_repeat,
    }
    return Result({"SWDx1e3_avg": values.pop("SWDx1e3_avg"), **values}, details=details)


def _swd_descriptors(images: np.ndarray, resolution: int, rng, preset) -> list[np.ndarray]:
    """PGGAN's normalised patch descriptors per level, fed 256 images at a time (its minibatches)."""

    accumulator = swd.SWDDescriptorAccumulator(resolution, rng, preset)
    for start in range(0, len(images), 256):
        accumulator.add(images[start : start + 256])
    return accumulator.finalize()


@registry.register(
    "ms_ssim",
    summary="Mean MS-SSIM of random fake pairs (PGGAN: 10,000 pairs); real_value: real pairs'.",
    params=("ms_ssim_pairs",),
)
def ms_ssim(scorer, real, fake) -> Result:

    pairs, seed = scorer.options.ms_ssim_pairs, scorer.options.seed
    if "ms_ssim" not in real.memo:

        def compute():
            return {"ms_ssim": np.array(similarity.ms_ssim_random_pairs(real.images, pairs, seed))}

        if real.cache_key is None:
            real.memo["ms_ssim"] = float(compute()["ms_ssim"])
        else:
            key = {**real.cache_key, "what": "ms_ssim", "pairs": pairs, "pair_seed": seed}
            real.memo["ms_ssim"] = float(scorer.cache.get_or_compute(key, compute)["ms_ssim"])
    value = similarity.ms_ssim_random_pairs(fake.images, pairs, seed)
    return Result({"ms_ssim": value}, real_value=real.memo["ms_ssim"], details={"pairs": pairs})


# Translation with ground truth (`eval/translation.py` orders both sets by pair): fake i is the
# translation of the source image whose true counterpart is real i.
EVERY_PAIR = registry.Protocol(lambda n_real, options: n_real, "every ground-truth pair")


def paired_images(real, fake) -> tuple[np.ndarray, np.ndarray]:
    """(counterparts, fakes) float64 in [0, 1]: the reals' first fake.size images and the fakes."""
    if fake.size > real.size:
        raise ValueError(
            f"paired metrics compare fake i with real i: {fake.name} has {fake.size} images, "
            f"{real.name} only {real.size}."
        )
    return real.images[: fake.size] / 255.0, fake.images / 255.0


@registry.register(
    "paired_l1",
    summary="Mean |fake - its true counterpart| per pixel in [0, 1] (translation with pairs).",
    fakes=EVERY_PAIR,
    paired=True,
    baseline=False,
    better="lower",
)
def paired_l1(scorer, real, fake) -> Result:
    del scorer
    counterparts, translated = paired_images(real, fake)
    per_image = np.abs(translated - counterparts).mean(axis=(1, 2, 3))
    return Result({"paired_l1": float(per_image.mean())}, float(per_image.std()))


@registry.register(
    "paired_ssim",
    summary="Mean SSIM (PGGAN's 11x11 Gaussian window) of each fake and its true counterpart.",
    fakes=EVERY_PAIR,
    paired=True,
    baseline=False,
    better="higher",
)
def paired_ssim(scorer, real, fake) -> Result:

    del scorer
    counterparts, translated = paired_images(real, fake)
    ssim, _ = similarity.ssim_and_contrast(translated, counterparts, max_val=1.0)
    return Result({"paired_ssim": float(ssim.mean())}, float(ssim.std()))
