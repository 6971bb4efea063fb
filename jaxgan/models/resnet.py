"""The WGAN-GP ResNets of igul222/improved_wgan_training.

* 32×32 (`gan_cifar_resnet.py`, the CIFAR-10 IS 7.86 / 8.42 models): G = Dense(z -> 4·4·dim) ->
  3 up-blocks -> BN -> ReLU -> Conv3×3 -> tanh; critic = optimized first block (32->16) -> down block
  (16->8) -> 2 plain blocks -> ReLU -> global mean -> Dense(1) [+ Dense(num_classes) AC head].
  The critic has no normalisation.
* 64×64 (`gan_64x64.py` GoodGenerator / GoodDiscriminator, the network Transferring GANs fine-tunes):
  G widths 8d->8d->4d->2d->d, critic Conv3×3 -> 4 down-blocks d->2d->4d->8d->8d with LayerNorm
  (WGAN-GP mode) -> flatten -> Dense(1); the first conv of each block has no bias.

Blocks follow tflib `ResidualBlock`: norm -> ReLU -> conv1 -> norm -> ReLU -> conv2, plus a shortcut
that is the identity when nothing changes and a 1×1 conv (with the same resampling) otherwise.
'up' = nearest ×2 then conv (tflib UpsampleConv); 'down' = conv then 2×2 mean (ConvMeanPool). Each
is computed as the one linear map it is (`layers.Conv2D(resample=...)`: four 2×2 convolutions at
the lower resolution, or one stride-2 4×4; on CPU below 64 input channels 'down' stays two
steps), and a 1×1 shortcut convolves at the lower resolution, before upsampling or after the mean:
the same functions with 2.25-4× fewer multiply-adds. Generator normalisation is BatchNorm,
class-conditional when `num_classes > 0` (the conditional-BN generator of AC-GAN/Transferring GANs).
Inits are tflib's: He-uniform convs, Glorot-uniform shortcuts, first/last convs and dense layers.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers

_GLOROT = layers.tflib_uniform(he=False)


class ResidualBlock(nn.Module):
    features: int
    resample: str | None = None  # 'up' | 'down' | None
    norm: str = "batch"  # 'batch' | 'layer' | 'none'
    num_classes: int = 0  # conditional BatchNorm when > 0
    conv1_bias: bool = True  # gan_64x64 drops it (the next op is a norm)

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        in_features = x.shape[-1]
        if self.resample is None and in_features == self.features:
            shortcut = x
        else:
            # A 1×1 convolution commutes with either resampling: it runs at the lower resolution.
            shortcut_conv = layers.Conv2D(self.features, 1, kernel_init=_GLOROT, name="Shortcut")
            if self.resample == "down":
                shortcut = shortcut_conv(layers.downsample_mean(x))
            elif self.resample == "up":
                shortcut = layers.upsample_nearest(shortcut_conv(x))
            else:
                shortcut = shortcut_conv(x)
        # 'down' keeps the width in conv1 and changes it in conv2; 'up' changes it in conv1.
        mid = in_features if self.resample == "down" else self.features
        up = "up" if self.resample == "up" else None
        down = "down" if self.resample == "down" else None
        h = nn.relu(self._normalize(x, labels, "Norm1"))
        h = layers.Conv2D(mid, 3, use_bias=self.conv1_bias, resample=up, name="Conv1")(h)
        h = nn.relu(self._normalize(h, labels, "Norm2"))
        return shortcut + layers.Conv2D(self.features, 3, resample=down, name="Conv2")(h)

    def _normalize(self, x, labels, name):
        if self.norm == "batch":
            return layers.BatchNorm(self.num_classes, name=name)(x, labels)
        if self.norm == "layer":
            return layers.LayerNorm(name=name)(x)
        if self.norm == "none":
            return x
        raise ValueError(f"ResidualBlock norm={self.norm!r}: expected 'batch', 'layer' or 'none'.")


class Generator32(nn.Module):
    """gan_cifar_resnet.py Generator. z: [N, z_dim] -> images [N, 32, 32, channels] in [-1, 1]."""

    channels: int = 3
    width: int = 128
    num_classes: int = 0
    conditioning: str = "batchnorm"  # 'batchnorm' | 'concat' (see layers.condition_latents)

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        z, bn_classes = layers.condition_latents(z, labels, self.num_classes, self.conditioning)
        x = layers.Dense(4 * 4 * self.width, name="Input")(z).reshape(z.shape[0], 4, 4, self.width)
        for i in range(1, 4):
            x = ResidualBlock(self.width, "up", "batch", bn_classes, name=f"Block{i}")(x, labels)
        x = nn.relu(layers.BatchNorm(name="OutputNorm")(x))  # unconditional in the reference
        return jnp.tanh(layers.Conv2D(self.channels, 3, kernel_init=_GLOROT, name="Output")(x))


class Critic32(nn.Module):
    """gan_cifar_resnet.py Discriminator (no normalisation). Returns (score [N], class_logits)."""

    width: int = 128
    num_classes: int = 0  # > 0: the AC-GAN head 'ACGANOutput'

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None):
        del labels
        # OptimizedResBlockDisc1: no activation before the first conv (the input is an image).
        shortcut = layers.Conv2D(self.width, 1, kernel_init=_GLOROT, name="Block1Shortcut")(
            layers.downsample_mean(x)
        )
        h = nn.relu(layers.Conv2D(self.width, 3, name="Block1Conv1")(x))
        h = layers.Conv2D(self.width, 3, resample="down", name="Block1Conv2")(h)
        x = shortcut + h
        x = ResidualBlock(self.width, "down", "none", name="Block2")(x)
        x = ResidualBlock(self.width, None, "none", name="Block3")(x)
        x = ResidualBlock(self.width, None, "none", name="Block4")(x)
        features = jnp.mean(nn.relu(x), axis=(1, 2))
        score = layers.Dense(1, name="Output")(features).reshape(-1)
        class_logits = (
            layers.Dense(self.num_classes, name="ACGANOutput")(features)
            if self.num_classes
            else None
        )
        return score, class_logits


class Generator64(nn.Module):
    """gan_64x64.py GoodGenerator. z: [N, z_dim] -> images [N, 64, 64, channels] in [-1, 1]."""

    channels: int = 3
    width: int = 64
    num_classes: int = 0
    conditioning: str = "batchnorm"  # 'batchnorm' | 'concat' (see layers.condition_latents)

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        d = self.width
        z, bn_classes = layers.condition_latents(z, labels, self.num_classes, self.conditioning)
        x = layers.Dense(4 * 4 * 8 * d, name="Input")(z).reshape(z.shape[0], 4, 4, 8 * d)
        for i, features in enumerate((8 * d, 4 * d, 2 * d, d), start=1):
            block = ResidualBlock(features, "up", "batch", bn_classes, False, name=f"Res{i}")
            x = block(x, labels)
        x = nn.relu(layers.BatchNorm(bn_classes, name="OutputNorm")(x, labels))
        return jnp.tanh(layers.Conv2D(self.channels, 3, name="Output")(x))


class Critic64(nn.Module):
    """gan_64x64.py GoodDiscriminator with LayerNorm (WGAN-GP mode). Returns (score, class_logits)."""

    width: int = 64
    num_classes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None):
        del labels
        d = self.width
        x = layers.Conv2D(d, 3, kernel_init=_GLOROT, name="Input")(x)
        for i, features in enumerate((2 * d, 4 * d, 8 * d, 8 * d), start=1):
            x = ResidualBlock(features, "down", "layer", conv1_bias=False, name=f"Res{i}")(x)
        features = x.reshape(x.shape[0], -1)
        score = layers.Dense(1, name="Output")(features).reshape(-1)
        class_logits = (
            layers.Dense(self.num_classes, name="ACGANOutput")(features)
            if self.num_classes
            else None
        )
        return score, class_logits
