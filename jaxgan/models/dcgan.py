"""DCGAN (Radford et al. 2016) as in the PyTorch example / dcgan.torch, for 32×32 and 64×64.

Generator: z [N, z_dim] -> Dense to 4×4×(ngf·2^(n-1)) (= ConvTranspose 4×4 on a 1×1 input) -> BN ReLU ->
(n-1) × [ConvTranspose 4×4 stride 2 pad 1, BN, ReLU] halving the width -> ConvTranspose to C -> tanh,
with n = log2(resolution) - 2. Critic: Conv 4×4 s2 p1 + LReLU(0.2) (no norm on the first layer) ->
(n-1) × [Conv 4×4 s2 p1, norm, LReLU] doubling the width -> Conv 4×4 valid to one score.
Init N(0, 0.02) for convolutions, BN scale N(1, 0.02); no biases (every conv feeds a norm), except the
critic's last layer... which in the reference has none either (`bias=False` throughout).

At 64×64 with ngf = ndf = 64, z 100, 3 channels: G 3,576,704 and D 2,765,568 parameters, the numbers of
pytorch/examples `dcgan/main.py` (tests/test_models.py checks them).

`critic_norm='batch'` is the paper's discriminator and is only valid with a loss that has no gradient
penalty (BN mixes samples, so a per-sample input gradient no longer exists); use 'layer' or 'none'
for WGAN-GP. An optional auxiliary-classifier head (`num_classes > 0`) reads the flattened last
feature map, as the AC-GAN baseline of "How good is my GAN?" does.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers

_CONV_INIT = layers.normal(0.02)
_BN_SCALE_INIT = layers.normal(0.02, mean=1.0)


def _num_blocks(resolution: int) -> int:
    n = int(math.log2(resolution)) - 2
    if 2 ** (n + 2) != resolution or n < 1:
        raise ValueError(f"DCGAN resolution must be a power of two >= 8, got {resolution}.")
    return n


class Generator(nn.Module):
    resolution: int = 64
    channels: int = 3
    width: int = 64  # ngf
    num_classes: int = 0  # > 0: class-conditional, as `conditioning` says
    conditioning: str = "batchnorm"  # 'batchnorm' (per-class BN) | 'concat' (one-hot joins z)

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        n = _num_blocks(self.resolution)
        features = self.width * 2 ** (n - 1)
        z, bn_classes = layers.condition_latents(z, labels, self.num_classes, self.conditioning)
        norm = lambda name: layers.BatchNorm(bn_classes, scale_init=_BN_SCALE_INIT, name=name)
        # ConvTranspose(z_dim -> features, 4, 1, 0) on a 1×1 input is exactly this dense layer.
        x = layers.Dense(4 * 4 * features, use_bias=False, kernel_init=_CONV_INIT, name="Input")(z)
        x = x.reshape(z.shape[0], 4, 4, features)
        x = nn.relu(norm("BN0")(x, labels))
        for i in range(1, n):
            features //= 2
            x = layers.ConvTranspose2D(
                features, 4, 2, 1, use_bias=False, kernel_init=_CONV_INIT, name=f"Up{i}"
            )(x)
            x = nn.relu(norm(f"BN{i}")(x, labels))
        x = layers.ConvTranspose2D(
            self.channels, 4, 2, 1, use_bias=False, kernel_init=_CONV_INIT, name="Output"
        )(x)
        return jnp.tanh(x)


class Critic(nn.Module):
    resolution: int = 64
    width: int = 64  # ndf
    norm: str = "batch"  # 'batch' | 'layer' | 'none'
    num_classes: int = 0  # > 0: auxiliary classifier head (AC-GAN)

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None):
        del labels  # unconditional critic; the AC head predicts the class instead
        n = _num_blocks(self.resolution)
        features = self.width
        x = layers.Conv2D(features, 4, 2, 1, use_bias=False, kernel_init=_CONV_INIT, name="Conv0")(
            x
        )
        x = nn.leaky_relu(x, 0.2)
        # Each block's output, for the feature experiments (`jaxgan.experiments.dcgan_features`); a no-op
        # unless the caller makes "intermediates" mutable.
        self.sow("intermediates", "features", x)
        for i in range(1, n):
            features *= 2
            x = layers.Conv2D(
                features, 4, 2, 1, use_bias=False, kernel_init=_CONV_INIT, name=f"Conv{i}"
            )(x)
            x = nn.leaky_relu(self._normalize(x, f"Norm{i}"), 0.2)
            self.sow("intermediates", "features", x)
        score = layers.Conv2D(
            1, 4, 1, "VALID", use_bias=False, kernel_init=_CONV_INIT, name="Output"
        )(x)
        class_logits = None
        if self.num_classes:
            class_logits = layers.Dense(
                self.num_classes, kernel_init=_CONV_INIT, name="ClassOutput"
            )(x.reshape(x.shape[0], -1))
        return score.reshape(-1), class_logits

    def _normalize(self, x, name):
        if self.norm == "batch":
            return layers.BatchNorm(scale_init=_BN_SCALE_INIT, name=name)(x)
        if self.norm == "layer":
            return layers.LayerNorm(name=name)(x)
        if self.norm == "none":
            return x
        raise ValueError(f"DCGAN critic norm={self.norm!r}: expected 'batch', 'layer' or 'none'.")
