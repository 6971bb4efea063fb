"""NICE-GAN's networks (Chen et al. 2020), as alpc91/NICE-GAN-pytorch `networks.py`.

There is no separate encoder: the first block of each domain's discriminator *is* the encoder, and
each generator is a decoder of that code. Translation A -> B is
`gen2B(disA.encode(x))`; the reference reads the code from the full forward, `disA(x)[4]`.

Discriminator (`Discriminator`, l.284-384), images [N, H, W, C] in [-1, 1]: every conv is
ReflectionPad 1 + a spectrally normalised Conv 4×4, LReLU(0.2) after all but the logit convs, no
normalisation layer.
  Encoder: SN-Conv s2 (width), SN-Conv s2 (2·width), then the CAM block: one SN-Linear(4·width -> 1,
  no bias) over [GAP, GMP] gives `cam_logits`; its *un-normalised* weight re-weights [x, x]'s
  channels; Conv 1×1 (no SN) back to 2·width; `code = LReLU(lamda · that + x)`, lamda init 0.
  Classifier: local branch Dis0_0 (num_layers - 6 SN-Conv s2) -> Dis0_1 (s1) -> conv0 (s1, no
  bias): the "local" logits, 30×30 at 256² (70×70 receptive field); global branch from Dis0_0's
  output: Dis1_0 (2 × s2) -> Dis1_1 (s1) -> conv1: 6×6 "global" logits (286×286).
Generator (`ResnetGenerator`, l.6-90), code [N, H/4, W/4, 2·width] -> images [N, H, W,
channels]: ReflPad 1, Conv 3×3 to 4·width, ILN, ReLU; a γ/β MLP (light: GAP first; full: the
NCHW-flattened map) computed once and shared by every AdaILN of num_blocks residual blocks; two
stages of [ReflPad 1, Conv 3×3 halving, ILN, ReLU, Conv 1×1 ×4, PixelShuffle(2), ILN, ReLU]; then
ReflPad 3, Conv 7×7 (no bias), tanh.

ILN/AdaILN mix instance- and layer-normalised maps with softmax(ρ) weights and torch.var's
unbiased variance (`networks.py` l.137-281); NICE has no ρ clipping. Init: PyTorch's defaults
(NICE never calls a custom init): weights and biases U(±1/√fan_in).

Spectral norm: u vectors live in the `spectral_norm` collection (`layers.spectral_normalize`).
`apply(..., mutable=["spectral_norm"])` is PyTorch's training mode, one power iteration stored per
call, as each `disA(...)` call advances u in the reference; without it (eval) u stays as it is.
At width 64, 3 channels: 46,874,433 parameters per discriminator with num_layers 7 (its encoder
167,489); 8,104,640 for the light generator with 6 blocks, 276,474,560 for the full one at 256².
`*_params_from_torch` read the reference's state_dicts (tests/test_nicegan_models.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models import layers
from jaxgan.models.cyclegan import kernel_from_torch

# PyTorch's Conv2d/Linear `reset_parameters`: kaiming_uniform(a=√5) = U(±1/√fan_in) weights.
_KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def _bias_init(fan_in: int) -> layers.Initializer:
    """PyTorch's default bias init, U(±1/√fan_in) with the fan-in of the layer's weight."""
    bound = 1 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _conv(
    x: jax.Array,
    features: int,
    kernel_size: int,
    stride: int = 1,
    *,
    use_bias: bool = True,
    spectral_norm: bool = False,
    name: str,
) -> jax.Array:
    """A PyTorch-initialised conv with padding 0 (any padding is an explicit reflection pad)."""
    fan_in = x.shape[-1] * kernel_size**2
    conv = layers.Conv2D(
        features,
        kernel_size,
        stride,
        0,
        use_bias=use_bias,
        kernel_init=_KERNEL_INIT,
        spectral_norm=spectral_norm,
        bias_init=_bias_init(fan_in),
        name=name,
    )
    return conv(x)


def _sn_block(x: jax.Array, features: int, stride: int, *, name: str) -> jax.Array:
    """ReflectionPad 1, spectral-norm Conv 4×4 (bias), LReLU(0.2): every hidden layer of D."""
    x = _conv(layers.reflection_pad(x, 1), features, 4, stride, spectral_norm=True, name=name)
    return nn.leaky_relu(x, 0.2)


def _dense(features: int, *, name: str) -> layers.Dense:
    """nn.Linear(bias=False) with PyTorch's init: every linear layer of the generator."""
    return layers.Dense(features, use_bias=False, kernel_init=_KERNEL_INIT, name=name)


# ----------------------------------------------------------------------------------------------
# Discriminator / encoder.
# ----------------------------------------------------------------------------------------------


class DiscriminatorOutput(NamedTuple):
    """What the reference's `Discriminator.forward` returns, in its order (NICE.py unpacks it as
    `L_logit, G_logit, cam_logit, heatmap, z`)."""

    local_logits: jax.Array  # [N, H/8 - 2, W/8 - 2, 1] for num_layers 7 (30×30 at 256²)
    global_logits: jax.Array  # [N, H/32 - 2, W/32 - 2, 1] (6×6 at 256²)
    cam_logits: jax.Array  # [N, 1]
    heatmap: jax.Array  # [N, H/4, W/4, 1]: the code summed over channels
    code: jax.Array  # [N, H/4, W/4, 2·width]: z, what the generators decode


class CAM(nn.Module):
    """The class activation map block (l.338-353). x: [N, h, w, C] -> (code, cam_logits [N, 1]).

    One SN-Linear(2C -> 1, no bias) over [GAP, GMP] is the CAM logit. The channel weights of
    [x, x] are that layer's parameter as `list(fc.parameters())[0]` reads it: under
    `spectral_norm` that is `weight_orig`, the *un-normalised* weight, so the kernel is used
    twice, divided by σ for the logit and as stored for the re-weighting.
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        c = x.shape[-1]
        kernel = self.param("kernel", _KERNEL_INIT, (2 * c, 1), jnp.float32)  # fc.weight_orig.T
        pooled = jnp.concatenate([jnp.mean(x, axis=(1, 2)), jnp.max(x, axis=(1, 2))], axis=-1)
        cam_logits = pooled @ layers.spectral_normalize(self, kernel).astype(x.dtype)
        weighted = layers.scale_and_shift(jnp.concatenate([x, x], axis=-1), kernel[:, 0])
        h = _conv(weighted, c, 1, name="Conv1x1")  # no spectral norm in the reference
        lamda = self.param("lamda", nn.initializers.zeros, (1,), jnp.float32)
        # lamda = 0 at init switches the attention branch off: code = LReLU(x).
        code = nn.leaky_relu(layers.scale_and_shift(h, lamda, x), 0.2)
        return code, cam_logits


class Encoder(nn.Module):
    """`model` + CAM: images [N, H, W, C] -> (code [N, H/4, W/4, 2·width], cam_logits [N, 1])."""

    width: int = 64  # ndf (= the generator's ngf: the code has 2·width channels)

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = _sn_block(images, self.width, 2, name="Conv0")
        x = _sn_block(x, 2 * self.width, 2, name="Conv1")
        return CAM(name="CAM")(x)


class Classifier(nn.Module):
    """The rest of D: code -> (local logits, global logits); branch names are the reference's."""

    width: int = 64
    num_layers: int = 7  # n_dis

    @nn.compact
    def __call__(self, code: jax.Array) -> tuple[jax.Array, jax.Array]:
        n, w = self.num_layers, self.width
        x = code
        for k, i in enumerate(range(2, n - 4)):
            x = _sn_block(x, w * 2**i, 2, name=f"Dis0_0_{k}")
        local = _sn_block(x, w * 2 ** (n - 4), 1, name="Dis0_1")
        glob = x
        for k, i in enumerate(range(n - 4, n - 2)):
            glob = _sn_block(glob, w * 2**i, 2, name=f"Dis1_0_{k}")
        glob = _sn_block(glob, w * 2 ** (n - 2), 1, name="Dis1_1")
        local = _logit_conv(local, name="Conv0")
        glob = _logit_conv(glob, name="Conv1")
        return local, glob


def _logit_conv(x: jax.Array, *, name: str) -> jax.Array:
    x = layers.reflection_pad(x, 1)
    return _conv(x, 1, 4, 1, use_bias=False, spectral_norm=True, name=name)


class Discriminator(nn.Module):
    """NICE's Discriminator. images: [N, H, W, C] in [-1, 1] -> `DiscriminatorOutput`.

    H and W: multiples of 4, at least 96 at num_layers 7 (the global branch reflect-pads its
    last maps by 1, which needs them to be at least 2 wide; 256 gives 30×30 and 6×6 logits).
    `encode` runs the encoder alone (translation at test time); in training mode it advances only
    the encoder's u vectors, so the train step should read `code` from `__call__`, as NICE.py does.
    """

    width: int = 64  # ndf
    num_layers: int = 7  # n_dis; the global branch needs >= 6

    def setup(self):
        if self.num_layers < 6:
            raise ValueError(
                f"NICE-GAN discriminator num_layers={self.num_layers}: the reference's layout "
                "(two encoder convs, Dis0_0 with num_layers - 6 convs, two Dis1_0 convs) needs "
                "num_layers >= 6 (--n_dis, default 7)."
            )
        self.encoder = Encoder(self.width)
        self.classifier = Classifier(self.width, self.num_layers)

    def encode(self, images: jax.Array) -> jax.Array:
        """images [N, H, W, C] -> code [N, H/4, W/4, 2·width]."""
        _check_input(images)
        return self.encoder(images)[0]

    def __call__(self, images: jax.Array) -> DiscriminatorOutput:
        _check_input(images)
        code, cam_logits = self.encoder(images)
        local, glob = self.classifier(code)
        heatmap = jnp.sum(code, axis=-1, keepdims=True)
        return DiscriminatorOutput(local, glob, cam_logits, heatmap, code)


def _check_input(images: jax.Array) -> None:
    _, h, w, _ = images.shape
    if h % 4 or w % 4:
        raise ValueError(
            f"NICE-GAN discriminator input is {h}×{w}: height and width must be multiples of 4 "
            "(the generator decodes the H/4 × W/4 code back by two ×2 PixelShuffles); resize or "
            "crop the images."
        )


# ----------------------------------------------------------------------------------------------
# Generator (decoder).
# ----------------------------------------------------------------------------------------------


@layers.in_float32
def instance_layer_mix(x: jax.Array, rho: jax.Array, epsilon: float = 1e-5) -> jax.Array:
    """softmax(ρ)₀ · IN(x) + softmax(ρ)₁ · LN(x): the shared core of NICE's ILN and adaILN.

    x: [N, H, W, C]; rho: [C, 2]. IN over (H, W), LN over (H, W, C), each with `torch.var`'s
    unbiased (N - 1) variance and eps 1e-5 inside the square root (networks.py l.177-181).
    Computed in at least float32 (bfloat16 activations: `layers.in_float32`).
    """
    in_mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    in_var = jnp.var(x, axis=(1, 2), keepdims=True, ddof=1)
    ln_mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    ln_var = jnp.var(x, axis=(1, 2, 3), keepdims=True, ddof=1)
    out_in = (x - in_mean) / jnp.sqrt(in_var + epsilon)
    out_ln = (x - ln_mean) / jnp.sqrt(ln_var + epsilon)
    weights = jax.nn.softmax(rho.astype(x.dtype), axis=-1)
    return weights[:, 0] * out_in + weights[:, 1] * out_ln


def _rho_init(in_weight: float, ln_weight: float) -> layers.Initializer:
    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.broadcast_to(jnp.asarray([in_weight, ln_weight], dtype), shape)

    return init


class ILN(nn.Module):
    """ILN: ρ init [1, 3.2] (softmax ≈ 0.1 IN, 0.9 LN), learnable γ = 1 and β = 0 per channel."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        rho = self.param("rho", _rho_init(1.0, 3.2), (c, 2), jnp.float32)
        gamma = self.param("gamma", nn.initializers.ones, (c,), jnp.float32)
        beta = self.param("beta", nn.initializers.zeros, (c,), jnp.float32)
        return layers.scale_and_shift(instance_layer_mix(x, rho), gamma, beta)


class AdaILN(nn.Module):
    """adaILN: ρ init [3.2, 1] (softmax ≈ 0.9 IN, 0.1 LN), then × γ + β, per sample [N, C]."""

    @nn.compact
    def __call__(self, x: jax.Array, gamma: jax.Array, beta: jax.Array) -> jax.Array:
        rho = self.param("rho", _rho_init(3.2, 1.0), (x.shape[-1], 2), jnp.float32)
        return layers.scale_and_shift(
            instance_layer_mix(x, rho), gamma[:, None, None, :], beta[:, None, None, :]
        )


class ResnetAdaILNBlock(nn.Module):
    """x + [ReflPad 1, Conv 3×3, adaILN, ReLU, ReflPad 1, Conv 3×3, adaILN](x), convs unbiased."""

    @nn.compact
    def __call__(self, x: jax.Array, gamma: jax.Array, beta: jax.Array) -> jax.Array:
        c = x.shape[-1]
        h = _conv(layers.reflection_pad(x, 1), c, 3, use_bias=False, name="Conv1")
        h = nn.relu(AdaILN(name="Norm1")(h, gamma, beta))
        h = _conv(layers.reflection_pad(h, 1), c, 3, use_bias=False, name="Conv2")
        return x + AdaILN(name="Norm2")(h, gamma, beta)


def pixel_shuffle(x: jax.Array, factor: int = 2) -> jax.Array:
    """PyTorch's `PixelShuffle` on NHWC: out[h·r + i, w·r + j, c] = in[h, w, c·r² + i·r + j].

    This is not TF's `depth_to_space` (which reads channel (i·r + j)·C + c); the order matters
    for porting the reference's 1×1 conv weights.
    """
    n, h, w, c = x.shape
    if c % factor**2:
        raise ValueError(f"pixel_shuffle: {c} channels are not divisible by {factor}².")
    x = x.reshape(n, h, w, c // factor**2, factor, factor)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * factor, w * factor, c // factor**2)


class Generator(nn.Module):
    """NICE's ResnetGenerator (a decoder). code: [N, h, w, 2·width] -> images [N, 4h, 4w, channels].

    `light` (the paper's models, NICE issue #18) feeds the γ/β MLP the global average of the first
    block's map; the full version feeds it the whole map flattened in NCHW order, so its first
    linear layer fixes the code's size (img_size / 4) at init.
    """

    channels: int = 3  # output_nc
    width: int = 64  # ngf
    num_blocks: int = 6  # n_res
    light: bool = True

    @nn.compact
    def __call__(self, code: jax.Array) -> jax.Array:
        features = 4 * self.width
        x = _conv(layers.reflection_pad(code, 1), features, 3, name="UpBlock0")
        x = nn.relu(ILN(name="UpBlock0_ILN")(x))
        if self.light:
            h = jnp.mean(x, axis=(1, 2))
        else:  # x.view(N, -1) on NCHW: the reference's weight order, for ported checkpoints
            h = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
        h = nn.relu(_dense(features, name="FC0")(h))
        h = nn.relu(_dense(features, name="FC1")(h))
        gamma, beta = _dense(features, name="Gamma")(h), _dense(features, name="Beta")(h)
        for i in range(1, self.num_blocks + 1):
            x = ResnetAdaILNBlock(name=f"Block{i}")(x, gamma, beta)
        for i in (1, 2):
            half = x.shape[-1] // 2
            x = _conv(layers.reflection_pad(x, 1), half, 3, use_bias=False, name=f"Up{i}_Conv")
            x = nn.relu(ILN(name=f"Up{i}_ILN1")(x))
            x = pixel_shuffle(_conv(x, 4 * half, 1, name=f"Up{i}_Conv1x1"))
            x = nn.relu(ILN(name=f"Up{i}_ILN2")(x))
        x = _conv(layers.reflection_pad(x, 3), self.channels, 7, use_bias=False, name="Output")
        return jnp.tanh(x)


# ----------------------------------------------------------------------------------------------
# The reference's PyTorch state_dicts (numpy arrays by key) -> Flax variables.
# ----------------------------------------------------------------------------------------------


def _sn_conv_from_torch(sd: Mapping[str, np.ndarray], prefix: str, bias: bool = True):
    """(params, spectral_norm state) of a `spectral_norm(Conv2d)`: weight_orig and weight_u."""
    params = {"kernel": kernel_from_torch(np.asarray(sd[f"{prefix}.weight_orig"]))}
    if bias:
        params["bias"] = np.asarray(sd[f"{prefix}.bias"])
    return params, {"kernel_u": np.asarray(sd[f"{prefix}.weight_u"])}


def discriminator_variables_from_torch(state_dict: Mapping[str, np.ndarray]) -> dict:
    """{'params', 'spectral_norm'} of `Discriminator` from the reference's state_dict.

    num_layers is read from the keys (Dis0_0 holds num_layers - 6 convs). The stored u vectors
    (`weight_u`) become the `spectral_norm` collection; `weight_v` is not needed, as this port runs
    the power iteration from u on every call (PyTorch's training mode).
    """
    sd = state_dict
    params: dict = {"encoder": {}, "classifier": {}}
    spectral: dict = {"encoder": {}, "classifier": {}}

    def put(tree: str, name: str, prefix: str, bias: bool = True):
        params[tree][name], spectral[tree][name] = _sn_conv_from_torch(sd, prefix, bias)

    put("encoder", "Conv0", "model.1")
    put("encoder", "Conv1", "model.4")
    params["encoder"]["CAM"] = {
        "kernel": np.asarray(sd["fc.weight_orig"]).T,
        "lamda": np.asarray(sd["lamda"]),
        "Conv1x1": {
            "kernel": kernel_from_torch(np.asarray(sd["conv1x1.weight"])),
            "bias": np.asarray(sd["conv1x1.bias"]),
        },
    }
    spectral["encoder"]["CAM"] = {"kernel_u": np.asarray(sd["fc.weight_u"])}
    num_dis0 = sum(k.startswith("Dis0_0.") and k.endswith(".weight_orig") for k in sd)
    for k in range(num_dis0):
        put("classifier", f"Dis0_0_{k}", f"Dis0_0.{3 * k + 1}")
    put("classifier", "Dis0_1", "Dis0_1.1")
    put("classifier", "Dis1_0_0", "Dis1_0.1")
    put("classifier", "Dis1_0_1", "Dis1_0.4")
    put("classifier", "Dis1_1", "Dis1_1.1")
    put("classifier", "Conv0", "conv0", bias=False)
    put("classifier", "Conv1", "conv1", bias=False)
    return {"params": params, "spectral_norm": spectral}


def _iln_from_torch(sd: Mapping[str, np.ndarray], prefix: str, affine: bool = True) -> dict:
    rho = np.asarray(sd[f"{prefix}.rho"])  # [1, C, 2]
    out = {"rho": rho.reshape(rho.shape[1], 2)}
    if affine:
        out["gamma"] = np.asarray(sd[f"{prefix}.gamma"]).reshape(-1)
        out["beta"] = np.asarray(sd[f"{prefix}.beta"]).reshape(-1)
    return out


def generator_params_from_torch(state_dict: Mapping[str, np.ndarray]) -> dict:
    """`Generator` params from the reference's `ResnetGenerator` state_dict (blocks from its keys).

    `UpBlock2` indices: per stage s (0, 1) the 3×3 conv at 8s + 1, ILN at 8s + 2, the 1×1 conv at
    8s + 4, ILN at 8s + 6; the output conv at 17. Linear weights [out, in] become [in, out].
    """
    sd = state_dict

    def conv(prefix: str, bias: bool = True) -> dict:
        out = {"kernel": kernel_from_torch(np.asarray(sd[f"{prefix}.weight"]))}
        if bias:
            out["bias"] = np.asarray(sd[f"{prefix}.bias"])
        return out

    def dense(prefix: str) -> dict:
        return {"kernel": np.asarray(sd[f"{prefix}.weight"]).T}

    params = {
        "UpBlock0": conv("UpBlock0.1"),
        "UpBlock0_ILN": _iln_from_torch(sd, "UpBlock0.2"),
        "FC0": dense("FC.0"),
        "FC1": dense("FC.2"),
        "Gamma": dense("gamma"),
        "Beta": dense("beta"),
        "Output": conv("UpBlock2.17", bias=False),
    }
    num_blocks = sum(k.startswith("UpBlock1_") and k.endswith(".conv1.weight") for k in sd)
    for i in range(1, num_blocks + 1):
        block = f"UpBlock1_{i}"
        params[f"Block{i}"] = {
            "Conv1": conv(f"{block}.conv1", bias=False),
            "Norm1": _iln_from_torch(sd, f"{block}.norm1", affine=False),
            "Conv2": conv(f"{block}.conv2", bias=False),
            "Norm2": _iln_from_torch(sd, f"{block}.norm2", affine=False),
        }
    for i in (1, 2):
        base = 8 * (i - 1)
        params[f"Up{i}_Conv"] = conv(f"UpBlock2.{base + 1}", bias=False)
        params[f"Up{i}_ILN1"] = _iln_from_torch(sd, f"UpBlock2.{base + 2}")
        params[f"Up{i}_Conv1x1"] = conv(f"UpBlock2.{base + 4}")
        params[f"Up{i}_ILN2"] = _iln_from_torch(sd, f"UpBlock2.{base + 6}")
    return params
