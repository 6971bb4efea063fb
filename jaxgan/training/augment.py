"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

Every image the critic sees, real or fake, in the critic step and in the generator step, goes
through the same random, differentiable transformation T, so that the generator is trained
through T as well (the paper's §3). The ops and their constants are those of the reference
`DiffAugment_pytorch.py` / `DiffAugment_tf.py` (mit-han-lab/data-efficient-gans), per sample:

  brightness   x + b,                  b ~ U(-0.5, 0.5)
  saturation   m + (x - m)·s,          m the per-pixel channel mean, s ~ U(0, 2)  ('rand_color')
  contrast     m + (x - m)·c,          m the per-image mean (H, W, C), c ~ U(0.5, 1.5)
  translation  x shifted by integers |dy| <= round(H/8), |dx| <= round(W/8), zeros shifted in
  cutout       one square of round(H/2) × round(W/2) pixels zeroed; its centre anywhere in the image
               (the square is clipped at the border)

A policy is a comma list of names of `POLICIES` ('color' = brightness, saturation, contrast, in the
reference's order). Images are [N, H, W, C] in [-1, 1] (the reference's TF file is NHWC too; its
PyTorch file transposes). Randomness comes only from the key: `diff_augment(x, key, policy)` is a
pure function, so a train step that splits its keys from (seed, step) stays reproducible.

Each op is an `Augmentation`: `draw(key, shape)` makes its random numbers and `apply(images, draws)`
uses them, so that tests can check `apply` against the reference formula with the same draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxgan.core import errors


class Augmentation(NamedTuple):
    draw: Callable[[jax.Array, tuple[int, ...]], Any]  # (key, images.shape) -> random numbers
    apply: Callable[[jax.Array, Any], jax.Array]  # (images, those numbers) -> images

    def __call__(self, images: jax.Array, key: jax.Array) -> jax.Array:
        return self.apply(images, self.draw(key, images.shape))


def _per_sample_uniform(key, shape, low, high):
    return jax.random.uniform(key, (shape[0], 1, 1, 1), minval=low, maxval=high)


def _round_ratio(size: int, ratio: float) -> int:
    # The reference's int(size * ratio + 0.5); for power-of-two sizes, its newer size // 8 and // 2.
    return int(size * ratio + 0.5)


rand_brightness = Augmentation(
    draw=lambda key, shape: _per_sample_uniform(key, shape, -0.5, 0.5),
    apply=lambda x, b: x + b.astype(x.dtype),
)


def _scale_deviation(x, factor, axis):
    mean = jnp.mean(x, axis=axis, keepdims=True)
    return (x - mean) * factor.astype(x.dtype) + mean


rand_saturation = Augmentation(  # the reference's rand_color
    draw=lambda key, shape: _per_sample_uniform(key, shape, 0.0, 2.0),
    apply=lambda x, s: _scale_deviation(x, s, axis=3),
)

rand_contrast = Augmentation(
    draw=lambda key, shape: _per_sample_uniform(key, shape, 0.5, 1.5),
    apply=lambda x, c: _scale_deviation(x, c, axis=(1, 2, 3)),
)


def _draw_translation(key, shape, ratio: float = 0.125):
    """Integer shifts [N, 2] = (rows, columns), each uniform in [-round(size·r), round(size·r)]."""
    limits = jnp.array([_round_ratio(shape[1], ratio), _round_ratio(shape[2], ratio)])
    return jax.random.randint(key, (shape[0], 2), -limits, limits + 1)


def _apply_translation(x, shifts):
    """out[n, i, j] = x[n, i + dy, j + dx], zero where that is outside the image.

    As the reference: pad one zero pixel on each side, gather at clip(i + shift + 1, 0, size + 1).
    """
    _, height, width, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = jnp.clip(jnp.arange(height)[None, :] + shifts[:, :1] + 1, 0, height + 1)  # [N, H]
    cols = jnp.clip(jnp.arange(width)[None, :] + shifts[:, 1:] + 1, 0, width + 1)  # [N, W]
    padded = jnp.take_along_axis(padded, rows[:, :, None, None], axis=1)  # [N, H, W + 2, C]
    return jnp.take_along_axis(padded, cols[:, None, :, None], axis=2)


rand_translation = Augmentation(draw=_draw_translation, apply=_apply_translation)


def _draw_cutout(key, shape, ratio: float = 0.5):
    """The square's centres [N, 2] = (row, column): the reference's offsets, uniform in
    [0, size + (1 - cut % 2)) for a cut of round(size·ratio) pixels."""
    cut = (_round_ratio(shape[1], ratio), _round_ratio(shape[2], ratio))
    high = jnp.array([shape[1] + (1 - cut[0] % 2), shape[2] + (1 - cut[1] % 2)])
    return jax.random.randint(key, (shape[0], 2), 0, high)


def _apply_cutout(x, centres, ratio: float = 0.5):
    """Zeroes rows [c_y - cut_y // 2, c_y - cut_y // 2 + cut_y) × the same for columns, clipped to
    the image: the set of pixels the reference's clamped scatter writes zeros to."""
    _, height, width, _ = x.shape
    cut_h, cut_w = _round_ratio(height, ratio), _round_ratio(width, ratio)
    top = (centres[:, 0] - cut_h // 2)[:, None]  # [N, 1]
    left = (centres[:, 1] - cut_w // 2)[:, None]
    i, j = jnp.arange(height)[None, :], jnp.arange(width)[None, :]
    in_rows = (i >= top) & (i < top + cut_h)  # [N, H]
    in_cols = (j >= left) & (j < left + cut_w)  # [N, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [N, H, W]
    return x * keep[..., None].astype(x.dtype)


rand_cutout = Augmentation(draw=_draw_cutout, apply=_apply_cutout)


# The reference's AUGMENT_FNS: a policy name -> its ops, applied in this order.
POLICIES: dict[str, tuple[Augmentation, ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation,cutout' -> ('color', 'translation', 'cutout'); '' -> () (off)."""
    names = tuple(name.strip() for name in policy.split(",")) if policy.strip() else ()
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise errors.ConfigError(
            f"config.diffaugment={policy!r} names {unknown}: expected '' (off) or a comma list of "
            f"{', '.join(POLICIES)} (DiffAugment's policy, e.g. 'color,translation,cutout')."
        )
    return names


def diff_augment(images: jax.Array, key: jax.Array | None, policy: str) -> jax.Array:
    """DiffAugment(x, policy): images [N, H, W, C] in [-1, 1] -> the same shape, each op drawn from
    its own key split from `key` (one per op of the policy, in order). Policy '': the images as they
    are (the key is not used and may be None)."""
    ops = [op for name in parse_policy(policy) for op in POLICIES[name]]
    if not ops:
        return images
    for op, op_key in zip(ops, jax.random.split(key, len(ops))):
        images = op(images, op_key)
    return images
