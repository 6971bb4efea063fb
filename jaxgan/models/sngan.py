"""SNGAN's 32×32 ResNets (Miyato et al. 2018; Miyato & Koyama 2018), as pfnet-research/sngan_projection.

Generator (`gen_models/resnet_32.py: ResNetGenerator`, ch 256): Dense(z -> 4·4·ch) -> 3 up-blocks
[BN -> ReLU -> nearest ×2 -> Conv3×3 -> BN -> ReLU -> Conv3×3, 1×1 shortcut on the upsampled input]
-> BN -> ReLU -> Conv3×3 -> tanh. Its BatchNorms are class-conditional (per-class scale and offset)
when `num_classes > 0`.

Critic (`dis_models/snresnet_32.py: SNResNetProjectionDiscriminator`, ch 128): optimized block
(conv, ReLU, conv, 2×2 mean; shortcut mean then 1×1 conv) -> down block -> 2 plain blocks -> ReLU ->
global SUM pooling (φ(x), not a mean) -> ψ = Dense(1, no bias), plus the projection term
⟨embed(y), φ(x)⟩ when `num_classes > 0`. Every weight of the critic, the class embedding included,
is spectrally normalised (`layers.spectral_normalize`).

Inits follow chainer's GlorotUniform: scale √2 for the convolutions inside blocks, 1 for shortcuts,
the input/output layers and the embedding.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers


def glorot_uniform(scale: float = 1.0) -> layers.Initializer:
    """chainer.initializers.GlorotUniform(scale): U(-s, s), s = scale·sqrt(6 / (fan_in + fan_out))."""

    def init(key, shape, dtype=jnp.float32):
        receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        bound = scale * math.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


_BLOCK_INIT = glorot_uniform(math.sqrt(2.0))
_GLOROT = glorot_uniform(1.0)


class GeneratorBlock(nn.Module):
    features: int
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, labels=None):
        h = nn.relu(layers.BatchNorm(self.num_classes, name="Norm1")(x, labels))
        h = layers.Conv2D(self.features, 3, kernel_init=_BLOCK_INIT, resample="up", name="Conv1")(h)
        h = nn.relu(layers.BatchNorm(self.num_classes, name="Norm2")(h, labels))
        h = layers.Conv2D(self.features, 3, kernel_init=_BLOCK_INIT, name="Conv2")(h)
        # The reference upsamples before its 1×1 conv: the same map, here at a quarter the cost.
        shortcut = layers.Conv2D(self.features, 1, kernel_init=_GLOROT, name="Shortcut")(x)
        return h + layers.upsample_nearest(shortcut)


class Generator32(nn.Module):
    """z [N, z_dim] (+ labels [N]) -> images [N, 32, 32, channels] in [-1, 1]."""

    channels: int = 3
    width: int = 256
    num_classes: int = 0
    conditioning: str = "batchnorm"  # 'batchnorm' | 'concat' (see layers.condition_latents)

    @nn.compact
    def __call__(self, z, labels=None):
        z, bn_classes = layers.condition_latents(z, labels, self.num_classes, self.conditioning)
        x = layers.Dense(4 * 4 * self.width, kernel_init=_GLOROT, name="Input")(z)
        x = x.reshape(z.shape[0], 4, 4, self.width)
        for i in range(1, 4):
            x = GeneratorBlock(self.width, bn_classes, name=f"Block{i}")(x, labels)
        x = nn.relu(layers.BatchNorm(name="OutputNorm")(x))
        return jnp.tanh(layers.Conv2D(self.channels, 3, kernel_init=_GLOROT, name="Output")(x))


def _sn_conv(features, kernel_size, init, name, resample=None):
    return layers.Conv2D(
        features, kernel_size, kernel_init=init, spectral_norm=True, resample=resample, name=name
    )


class CriticBlock(nn.Module):
    """`dis_models/resblocks.py: Block` (hidden width = input width), or `OptimizedBlock`."""

    features: int
    downsample: bool
    optimized: bool = False  # the first block: no ReLU before conv1, shortcut pools first

    @nn.compact
    def __call__(self, x):
        h = x if self.optimized else nn.relu(x)
        h = _sn_conv(self.features if self.optimized else x.shape[-1], 3, _BLOCK_INIT, "Conv1")(h)
        down = "down" if self.downsample else None
        h = _sn_conv(self.features, 3, _BLOCK_INIT, "Conv2", resample=down)(nn.relu(h))
        if self.optimized or self.downsample or x.shape[-1] != self.features:
            # The reference's non-optimized block pools after its 1×1 conv: the same map (both
            # linear), here at a quarter the cost.
            pooled = layers.downsample_mean(x) if self.optimized or self.downsample else x
            shortcut = _sn_conv(self.features, 1, _GLOROT, "Shortcut")(pooled)
        else:
            shortcut = x
        return h + shortcut


class Critic32(nn.Module):
    """The SN-ResNet projection critic. Returns (score [N], None): no auxiliary classifier."""

    width: int = 128
    num_classes: int = 0  # > 0: projection discriminator

    @nn.compact
    def __call__(self, x, labels=None):
        x = CriticBlock(self.width, downsample=True, optimized=True, name="Block1")(x)
        x = CriticBlock(self.width, downsample=True, name="Block2")(x)
        x = CriticBlock(self.width, downsample=False, name="Block3")(x)
        x = CriticBlock(self.width, downsample=False, name="Block4")(x)
        features = jnp.sum(nn.relu(x), axis=(1, 2))  # φ(x): global sum pooling, as the reference
        score = layers.Dense(
            1, use_bias=False, kernel_init=_GLOROT, spectral_norm=True, name="Output"
        )(features)[:, 0]
        if self.num_classes:
            if labels is None:
                raise ValueError("A projection critic needs the class labels of its inputs.")
            embedding = layers.Embed(
                self.num_classes,
                self.width,
                embedding_init=_GLOROT,
                spectral_norm=True,
                name="ClassEmbedding",
            )(labels)
            score = score + jnp.sum(embedding * features, axis=-1)
        return score, None
