"""Progressive GAN generator and critic (Karras et al. 2018) for any final resolution 2^R.

Follows tkarras/progressive_growing_of_gans `networks.py` `G_paper` / `D_paper` (TF master) and the
Theano `network.py` that produced the paper's numbers:

  G: [pixel-norm z] (+ one-hot labels) -> 4x4 block (Dense to 16·nf(1), gain √2/4, reshape; Conv 3x3)
     -> per resolution 8..2^R: nearest x2, Conv 3x3, Conv 3x3 -> ToRGB (1x1, gain 1, linear output).
     Every conv: bias -> LReLU(0.2) -> pixel norm.
  D: FromRGB (1x1, LReLU) -> per resolution 2^R..8: Conv 3x3 to nf(r-1), Conv 3x3 to nf(r-2), 2x2 box
     down -> 4x4 block: minibatch stddev, Conv 3x3 nf(1), Dense nf(0), Dense 1 + K (gain 1).
  Channels: block r (log2 resolution) has nf(r-1) = min(fmap_base / 2^((r-1)·fmap_decay), fmap_max).

The references' fused upscale+conv (transposed conv of the 4-tap-summed kernel) and conv+downscale
are exactly nearest-up then 3x3 conv and 3x3 conv then box-down (TF `networks.py`). G's Conv0 is
computed as the upscale+conv map (`layers.Conv2D(resample='up')`: four 2x2 convolutions at the
lower resolution); D keeps the separate form, whose LReLU sits between the conv and the box. One
order differs: TF's fused D (fused_scale=True) adds Conv1's bias and LReLU after the box, the
separate form (and Theano) before it; `downscale_before_activation` picks TF's.

Growth. Both networks are called for a *stage*: the log2 resolution `res_log2` they run at and,
while a new resolution fades in, a traced blend weight `alpha` in [0, 1] on the new layers (paper
Fig. 2; `alpha = 1 - (lod - floor(lod))`, the references' `lerp_clip(new, old, lod_in - lod)`):

  G(z; r, alpha) = alpha · ToRGB_r(block_r(x)) + (1 - alpha) · up2(ToRGB_{r-1}(x))
  D(img; r, alpha) = rest(alpha · block_r(FromRGB_r(img)) + (1 - alpha) · FromRGB_{r-1}(down2(img)))

`alpha=None` builds no old path (the first resolution of a run, or a run that does not grow);
once a fade is complete the step keeps the old path with alpha = 1, which is exactly the new path
alone, so that a resolution compiles once for its fade-in and its stabilisation. Only the layers of resolutions <= 2^r run; the
parameter tree always holds the whole final-resolution network (`init` creates every ToRGB/FromRGB),
so one pytree, one optimizer state and one checkpoint serve every stage, as the Theano code built
one network at full resolution and compiled it per (floor, ceil) of lod.

Switches for the paper's Table 1 ablation (its §6.1; Theano `config.py`): `use_wscale` (equalized
learning rate), `use_pixelnorm`, `mbstd_group_size` (0: off), `mbdisc_kernels` (row (e*): minibatch
discrimination after Dense0, `MinibatchDiscrimination`), and for rows (a)-(c) of the Gulrajani
et al. baseline `use_batchnorm` (G), `use_layernorm` (D), `use_leakyrelu=False` (ReLU in G),
`tanh_output`, `normalize_latents=False`.

Rows (a)-(c)'s critic LayerNorm is Theano's `LayerNormLayer` (`TheanoLayerNorm`), not the
per-channel-affine kind of WGAN-GP's 64x64 critic: `LN(WS(conv))` takes the conv's bias and
nonlinearity, so every conv of D and Dense0 (Theano's 4x4 'valid' conv D1a) runs conv (no bias)
-> [wscale] -> normalise over (H, W, C) -> × one scalar gain -> + per-channel bias -> LReLU.

LSGAN variant (paper App. B; Theano `D_paper` `GD(...)`, `GDropLayer(mode='prop')` with its default
axes (0, 1)): with `noise_strength` s given, the input of every D convolution and of Dense0 (not
FromRGB, not the output) is multiplied by 1 + s·√C·N(0, 1), one draw per sample and channel
(broadcast over H, W), C the channels of that input, from the 'noise' RNG stream (`GDrop`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers


def num_features(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
    """nf(stage) = min(int(fmap_base / 2^(stage·fmap_decay)), fmap_max) (networks.py `nf`)."""
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def resolution_log2(resolution: int) -> int:
    r = int(round(math.log2(resolution)))
    if 2**r != resolution or r < 2:
        raise ValueError(
            f"Progressive GAN resolution must be a power of two >= 4, got {resolution}."
        )
    return r


def _check_stage(res_log2: int, final_log2: int, alpha) -> None:
    if not 2 <= res_log2 <= final_log2:
        raise ValueError(f"res_log2={res_log2} outside [2, {final_log2}] for this network.")
    if alpha is not None and res_log2 == 2:
        raise ValueError("4x4 is the first resolution: there is no older path to fade from.")


def _lerp(old: jax.Array, new: jax.Array, alpha) -> jax.Array:
    """alpha·new + (1 - alpha)·old, written so that alpha = 1 gives `new` and 0 gives `old` exactly."""
    return alpha * new + (1.0 - alpha) * old


@dataclasses.dataclass(frozen=True)
class Switches:
    """Architecture switches shared by the blocks of one network."""

    use_wscale: bool = True
    use_pixelnorm: bool = True
    use_leakyrelu: bool = True
    use_batchnorm: bool = False  # G only (Table 1 rows a-c)
    use_layernorm: bool = False  # D only (Table 1 rows a-c)

    def act(self, x: jax.Array) -> jax.Array:
        return nn.leaky_relu(x, 0.2) if self.use_leakyrelu else nn.relu(x)


class TheanoLayerNorm(nn.Module):
    """Theano `LayerNormLayer` (original-theano-version network.py, epsilon 1e-4).

    x: [N, ..., C] -> same shape. Per sample over every non-batch axis: v = x - mean(x);
    v / sqrt(mean(v²) + ε) · gain + bias[c], with ONE trainable scalar `gain` (init 1) and the
    per-channel `bias` (init 0) that the Theano layer steals from the layer below, whose own bias
    is removed. The statistics are taken in float32 at least, and the result cast back to x.dtype.
    """

    epsilon: float = 1e-4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gain = self.param("gain", nn.initializers.ones, (), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],), jnp.float32)
        # Theano's v / sqrt(mean(v²) + ε) after v = x - mean(x) is `standardize` over all axes.
        y = layers.standardize(x, tuple(range(1, x.ndim)), self.epsilon)
        return layers.scale_and_shift(y, gain, bias)


class MinibatchDiscrimination(nn.Module):
    """Theano `MinibatchLayer` (Salimans et al. 2016; PGGAN's row (e*)): x [N, A] -> [N, A + K].

    Its kernel is weight-normalised per (kernel, dimension) over the inputs:
    theta [A, K, D] ~ N(0, 0.05²), kernel = theta · exp(log_weight_scale) / ||theta||, with
    log_weight_scale [K, D] = 0 and bias [K] = -1 at init; `layers.minibatch_discrimination` does
    the rest. The reference also re-initialises log_weight_scale and bias from 500 reals before
    training (a data-dependent init); this starts from the values above.
    """

    num_kernels: int
    dim_per_kernel: int = 5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (x.shape[-1], self.num_kernels, self.dim_per_kernel)
        theta = self.param("theta", nn.initializers.normal(0.05), shape, jnp.float32)
        log_scale = self.param("log_weight_scale", nn.initializers.zeros, shape[1:], jnp.float32)
        bias = self.param("bias", nn.initializers.constant(-1.0), shape[1:2], jnp.float32)
        norm = jnp.sqrt(jnp.sum(jnp.square(theta), axis=0))
        return layers.minibatch_discrimination(x, theta * (jnp.exp(log_scale) / norm), bias)


class GDrop(nn.Module):
    """Theano `GDropLayer(mode='prop', axes=(0, 1))`: x · (1 + s·√C·N(0, 1)).

    x: [N, H, W, C] (or [N, C]); one draw per sample and channel, broadcast over H and W; C is
    x's channel count (Theano's `input_shape[1]`). The draw comes from the 'noise' RNG stream.
    """

    @nn.compact
    def __call__(self, x: jax.Array, strength) -> jax.Array:
        n, c = x.shape[0], x.shape[-1]
        shape = (n,) + (1,) * (x.ndim - 2) + (c,)
        noise = jax.random.normal(self.make_rng("noise"), shape, x.dtype)
        return x * (1.0 + noise * strength * math.sqrt(c))


def _conv(
    x,
    features: int,
    kernel: int,
    switches: Switches,
    name: str,
    gain=layers.HE_GAIN,
    bias=True,
    resample=None,
):
    """Stride-1 SAME conv with the equalized-lr transform; fan_in = k·k·C_in from the input.
    `resample`: 'up' upscales x before it, 'down' box-filters after it (`layers.Conv2D`)."""
    eq = layers.equalized_lr(kernel * kernel * x.shape[-1], gain, switches.use_wscale)
    return layers.Conv2D(features, kernel, use_bias=bias, resample=resample, name=name, **eq)(x)


def _dense(x, features: int, switches: Switches, name: str, gain=layers.HE_GAIN, bias=True):
    eq = layers.equalized_lr(x.shape[-1], gain, switches.use_wscale)
    return layers.Dense(features, use_bias=bias, name=name, **eq)(x)


class GeneratorBlock(nn.Module):
    """The layers of one resolution 2^res_log2 -> features [N, 2^r, 2^r, nf(r - 1)]."""

    res_log2: int
    features: int
    switches: Switches

    def _post(self, x, name):
        """[BatchNorm] -> activation -> [pixel norm]: Theano `PN(BN(WS(conv)))`, TF `PN(act(bias))`."""
        s = self.switches
        if s.use_batchnorm:
            x = layers.BatchNorm(name=f"{name}_BN")(x)
        x = s.act(x)
        return layers.pixel_norm(x) if s.use_pixelnorm else x

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s, f = self.switches, self.features
        bias = (
            not s.use_batchnorm
        )  # a bias before BN is cancelled by it (lasagne batch_norm drops it)
        if self.res_log2 == 2:
            # G_paper: "override gain to match the original Theano implementation" (a 4x4 'full'
            # conv on the 1x1 latent has fan_in 16·z_dim, i.e. std √2/(4√z_dim)). Bias per channel.
            x = _dense(x, 16 * f, s, "Dense", gain=layers.HE_GAIN / 4, bias=False)
            x = x.reshape(x.shape[0], 4, 4, f)
            if bias:
                offset = self.param("bias", nn.initializers.zeros, (f,), jnp.float32)
                x = layers.scale_and_shift(x, offset=offset)
            x = self._post(x, "Dense")
            return self._post(_conv(x, f, 3, s, "Conv", bias=bias), "Conv")
        x = self._post(_conv(x, f, 3, s, "Conv0", bias=bias, resample="up"), "Conv0")
        return self._post(_conv(x, f, 3, s, "Conv1", bias=bias), "Conv1")


class Generator(nn.Module):
    """z [N, z_dim] (+ int labels [N]) -> images [N, 2^r, 2^r, channels], linear (≈ [-1, 1])."""

    resolution: int = 32
    channels: int = 1
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    num_classes: int = 0  # > 0: one-hot labels concatenated to the normalised latents
    normalize_latents: bool = True
    use_wscale: bool = True
    use_pixelnorm: bool = True
    use_leakyrelu: bool = True
    use_batchnorm: bool = False
    tanh_output: bool = False

    def nf(self, stage: int) -> int:
        return num_features(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        labels: jax.Array | None = None,
        res_log2: int | None = None,
        alpha: jax.Array | float | None = None,
    ) -> jax.Array:
        final = resolution_log2(self.resolution)
        r = final if res_log2 is None else res_log2
        _check_stage(r, final, alpha)
        switches = Switches(
            self.use_wscale, self.use_pixelnorm, self.use_leakyrelu, self.use_batchnorm, False
        )
        to_rgb = {
            k: layers.Conv2D(
                self.channels,
                1,
                name=f"ToRGB_{2**k}x{2**k}",
                **layers.equalized_lr(self.nf(k - 1), 1.0, self.use_wscale),
            )
            for k in range(2, final + 1)
        }
        x = layers.pixel_norm(z) if self.normalize_latents else z
        if self.num_classes:  # Theano G_paper: labels join after the latent normalisation
            x = jnp.concatenate([x, jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)], -1)
        # `init` builds every resolution (and every ToRGB) so that the tree is the full network.
        top = final if self.is_initializing() else r
        features = {}
        for k in range(2, top + 1):
            x = GeneratorBlock(k, self.nf(k - 1), switches, name=f"{2**k}x{2**k}")(x)
            features[k] = x
            if self.is_initializing():
                to_rgb[k](x)
        images = to_rgb[r](features[r])
        if alpha is not None:
            images = _lerp(layers.upsample_nearest(to_rgb[r - 1](features[r - 1])), images, alpha)
        return jnp.tanh(images) if self.tanh_output else images


class CriticBlock(nn.Module):
    """One resolution of D: [N, 2^r, 2^r, nf(r-1)] -> [N, 2^(r-1), 2^(r-1), nf(r-2)]; at r = 2 the
    4x4 head -> [N, 1 + num_classes]."""

    res_log2: int
    fmaps: tuple[int, int]  # (nf(r-1), nf(r-2))
    switches: Switches
    mbstd_group_size: int = 4
    mbstd_mesh: Any = None  # a Mesh: per-device minibatch stddev (shard_map); None: global
    outputs: int = 1
    mbdisc_kernels: int = 0  # > 0: minibatch discrimination between Dense0 and Dense1 (row e*)
    downscale_before_activation: bool = False  # TF D_paper fused_scale=True: Conv1_down's order

    def _layer(self, x, features, name, noise_strength, dense=False, activate=True):
        """D_paper `LN(WS(conv(GD(x))))` with its LReLU: [noise] -> conv 3x3, or flatten and dense
        -> [TheanoLayerNorm, which holds the bias instead of the conv] -> LReLU."""
        s = self.switches
        # GD before flattening: Theano's Dense0 is D1a, a 4x4 'valid' conv on [N, C, 4, 4], so its
        # noise too is one draw per sample and channel, with √C of the conv's C input channels.
        if noise_strength is not None:  # the LSGAN variant's noise
            x = GDrop(name=f"{name}_noise")(x, noise_strength)
        bias = not s.use_layernorm  # LayerNormLayer steals the bias of the layer below
        if dense:
            x = _dense(x.reshape(x.shape[0], -1), features, s, name, bias=bias)
        else:
            x = _conv(x, features, 3, s, name, bias=bias)
        if s.use_layernorm:
            x = TheanoLayerNorm(name=f"{name}_LN")(x)
        return nn.leaky_relu(x, 0.2) if activate else x

    @nn.compact
    def __call__(self, x: jax.Array, noise_strength=None) -> jax.Array:
        f0, f1 = self.fmaps
        if self.res_log2 >= 3:
            x = self._layer(x, f0, "Conv0", noise_strength)
            if self.downscale_before_activation:  # TF's fused conv2d_downscale2d: act(down(conv))
                x = self._layer(x, f1, "Conv1", noise_strength, activate=False)
                return nn.leaky_relu(layers.downsample_mean(x), 0.2)
            x = self._layer(x, f1, "Conv1", noise_strength)
            return layers.downsample_mean(x)
        if self.mbstd_group_size > 1:
            if self.mbstd_mesh is not None:
                x = layers.minibatch_stddev_per_device(x, self.mbstd_mesh, self.mbstd_group_size)
            else:
                x = layers.minibatch_stddev(x, self.mbstd_group_size)
        x = self._layer(x, f0, "Conv", noise_strength)
        x = self._layer(x, f1, "Dense0", noise_strength, dense=True)
        if self.mbdisc_kernels:  # Theano D_paper: the MinibatchLayer 'Dmd' before 'Dscores'
            x = MinibatchDiscrimination(self.mbdisc_kernels, name="MinibatchDisc")(x)
        return _dense(x, self.outputs, self.switches, "Dense1", gain=1.0)


class Critic(nn.Module):
    """images [N, 2^r, 2^r, C] -> (scores [N], class logits [N, K] or None)."""

    resolution: int = 32
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    num_classes: int = (
        0  # > 0: AC-GAN logits from the last layer (D_paper's 1 + label_size outputs)
    )
    use_wscale: bool = True
    use_layernorm: bool = False
    mbstd_group_size: int = 4  # 0 or 1: off; >= batch: one statistic over the whole minibatch
    mbstd_mesh: Any = None
    mbdisc_kernels: int = 0  # > 0: Salimans et al. minibatch discrimination (Table 1 row e*)
    downscale_before_activation: bool = False  # True: TF D_paper fused_scale (bias, LReLU after)

    def nf(self, stage: int) -> int:
        return num_features(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        labels: jax.Array | None = None,
        res_log2: int | None = None,
        alpha: jax.Array | float | None = None,
        noise_strength: jax.Array | float | None = None,
    ):
        del labels  # unconditional critic; the AC head predicts the class instead
        final = resolution_log2(self.resolution)
        r = final if res_log2 is None else res_log2
        _check_stage(r, final, alpha)
        if images.shape[1] != 2**r:
            raise ValueError(
                f"Critic at res_log2={r} expects {2**r}x{2**r} images, got {images.shape}."
            )
        switches = Switches(self.use_wscale, use_layernorm=self.use_layernorm)
        from_rgb = {
            k: layers.Conv2D(
                self.nf(k - 1),
                1,
                name=f"FromRGB_{2**k}x{2**k}",
                **layers.equalized_lr(images.shape[-1], layers.HE_GAIN, self.use_wscale),
            )
            for k in range(2, final + 1)
        }
        blocks = {
            k: CriticBlock(
                k,
                (self.nf(k - 1), self.nf(k - 2)),
                switches,
                self.mbstd_group_size,
                self.mbstd_mesh,
                1 + self.num_classes,
                mbdisc_kernels=self.mbdisc_kernels,
                downscale_before_activation=self.downscale_before_activation,
                name=f"{2**k}x{2**k}",
            )
            for k in range(2, final + 1)
        }
        if self.is_initializing():  # every FromRGB too, so that the tree is the full network
            if r != final or alpha is not None:
                raise ValueError("Initialise the critic at its final resolution (res_log2=None).")
            for k in range(2, final):
                from_rgb[k](layers.downsample_mean(images, 2 ** (final - k)))
        x = blocks[r](nn.leaky_relu(from_rgb[r](images), 0.2), noise_strength)
        if alpha is not None:
            old = nn.leaky_relu(from_rgb[r - 1](layers.downsample_mean(images)), 0.2)
            x = _lerp(old, x, alpha)
        for k in range(r - 1, 1, -1):
            x = blocks[k](x, noise_strength)
        scores = x[:, 0]
        return scores, (x[:, 1:] if self.num_classes else None)
