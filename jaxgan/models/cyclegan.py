"""CycleGAN's networks (Zhu et al. 2017), as junyanz/pytorch-CycleGAN-and-pix2pix `networks.py`.

Generator (`ResnetGenerator`, `ResnetBlock`), images [N, H, W, C] in
[-1, 1] -> [N, H, W, channels] in [-1, 1], H and W multiples of 4:
  ReflectionPad 3, Conv 7×7 (width) -> 2 × [Conv 3×3 stride 2, zero pad 1] doubling the width ->
  num_blocks × ResnetBlock(x + [ReflectionPad 1, Conv 3×3, IN, ReLU, ReflectionPad 1, Conv 3×3, IN])
  -> 2 × ConvTranspose(k3, s2, p1, output_padding 1) halving the width -> ReflectionPad 3,
  Conv 7×7 (channels) -> tanh. IN, ReLU after every conv but the blocks' second and the last.
  9 blocks at 256², 6 at 128² (the paper's Torch code); `width` (ngf) 64 in the paper.
Discriminator (`NLayerDiscriminator`): the PatchGAN, Conv 4×4 zero pad 1 + LReLU(0.2) with no
norm first, then num_layers - 1 stride-2 and one stride-1 Conv+IN+LReLU, widths ×2 up to 8·width,
then Conv 4×4 to one logit per patch: [N, H/2^L - 2, W/2^L - 2, 1], 30×30 at 256² for L = 3
(70×70 receptive field), no sigmoid.

Norm: instance norm without affine (`get_norm_layer('instance')`), so every conv has a bias (the
reference's `use_bias`); no dropout (CycleGAN's `no_dropout=True`). Init: N(0, 0.02) weights, zero
biases (`init_weights`).
At width 64 with 3 channels: 11,378,179 parameters for 9 blocks, 7,837,699 for 6, 2,764,737 for the
PatchGAN (tests/test_cyclegan_models.py). `*_params_from_torch` read the reference's state_dicts
(its released `latest_net_G_A.pth` as well), so the same test pins these networks to PyTorch's.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.models import layers

_INIT = layers.normal(0.02)  # networks.py init_weights(init_type='normal', init_gain=0.02)


def _conv(features: int, kernel_size: int, stride: int = 1, padding: int = 0, *, name: str):
    """A biased conv with the reference's init; padding 0 where a reflection pad precedes it."""
    return layers.Conv2D(features, kernel_size, stride, padding, kernel_init=_INIT, name=name)


class ResnetBlock(nn.Module):
    """x + [ReflPad 1, Conv 3×3, IN, ReLU, ReflPad 1, Conv 3×3, IN](x); the width is x's."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        h = _conv(features, 3, name="Conv1")(layers.reflection_pad(x, 1))
        h = nn.relu(layers.instance_norm(h))
        h = _conv(features, 3, name="Conv2")(layers.reflection_pad(h, 1))
        return x + layers.instance_norm(h)  # no ReLU after the sum, as in the reference


class Generator(nn.Module):
    """ResnetGenerator. images: [N, H, W, C] in [-1, 1], H and W multiples of 4."""

    channels: int = 3  # output_nc; the input's channels are read from the input
    width: int = 64  # ngf
    num_blocks: int = 9  # 'resnet_9blocks' (256²); 6 for 128²

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        _check_generator_input(images)
        x = _conv(self.width, 7, name="Input")(layers.reflection_pad(images, 3))
        x = nn.relu(layers.instance_norm(x))
        for i in (1, 2):  # the reference pads the strided convs with zeros, not reflections
            x = _conv(self.width * 2**i, 3, 2, 1, name=f"Down{i}")(x)
            x = nn.relu(layers.instance_norm(x))
        for i in range(1, self.num_blocks + 1):
            x = ResnetBlock(name=f"Block{i}")(x)
        for i in (1, 2):
            # ConvTranspose2d(k3, s2, p1, output_padding=1): the adjoint of Conv(k3, s2, p1) on a
            # 2H input, which is what `ConvTranspose2D` computes with padding 1 (output 2H).
            x = layers.ConvTranspose2D(
                self.width * 2 ** (2 - i), 3, 2, 1, kernel_init=_INIT, name=f"Up{i}"
            )(x)
            x = nn.relu(layers.instance_norm(x))
        x = _conv(self.channels, 7, name="Output")(layers.reflection_pad(x, 3))
        return jnp.tanh(x)


def _check_generator_input(images: jax.Array) -> None:
    _, h, w, _ = images.shape
    if h % 4 or w % 4:
        raise ValueError(
            f"CycleGAN generator input is {h}×{w}: height and width must be multiples of 4 (two "
            "stride-2 convolutions, then two ×2 upsamplings); resize or crop the images."
        )


class Discriminator(nn.Module):
    """NLayerDiscriminator (PatchGAN). images: [N, H, W, C] -> logits [N, H', W', 1]."""

    width: int = 64  # ndf
    num_layers: int = 3  # netD='basic': the 70×70 PatchGAN

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = nn.leaky_relu(_conv(self.width, 4, 2, 1, name="Conv0")(images), 0.2)
        for n in range(1, self.num_layers + 1):
            stride = 2 if n < self.num_layers else 1  # the last of these keeps the size (-1)
            x = _conv(self.width * min(2**n, 8), 4, stride, 1, name=f"Conv{n}")(x)
            x = nn.leaky_relu(layers.instance_norm(x), 0.2)
        return _conv(1, 4, 1, 1, name="Output")(x)


# ----------------------------------------------------------------------------------------------
# The reference's PyTorch state_dicts (numpy arrays by key) -> Flax params.
# ----------------------------------------------------------------------------------------------


def kernel_from_torch(weight: np.ndarray) -> np.ndarray:
    """A Conv2d [out, in, kh, kw] or ConvTranspose2d [in, out, kh, kw] weight as this project's
    [kh, kw, ·, ·] kernel: HWIO for a conv; for a transposed conv the layout of the forward conv it
    is the adjoint of, [kh, kw, out, in], with no flip (`layers.conv2d_transpose`)."""
    return np.transpose(weight, (2, 3, 1, 0))


def _torch_layer(state_dict: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {
        "kernel": kernel_from_torch(np.asarray(state_dict[f"{prefix}.weight"])),
        "bias": np.asarray(state_dict[f"{prefix}.bias"]),
    }


def generator_params_from_torch(state_dict: Mapping[str, np.ndarray]) -> dict:
    """`Generator` params from a `ResnetGenerator` state_dict; num_blocks is read from its keys.

    Indices of the reference's `nn.Sequential` `model`: 1 the input conv, 4 and 7 the strided
    convs, 10 ... 9 + num_blocks the blocks (`conv_block.1` and `.5`), then the transposed convs
    at 10 + num_blocks and 13 + num_blocks and the output conv at 17 + num_blocks. Dtypes are
    kept; the instance norms have no parameters (stale running stats in old files are ignored).
    """
    num_blocks = sum(key.endswith(".conv_block.1.weight") for key in state_dict)
    params = {
        "Input": _torch_layer(state_dict, "model.1"),
        "Down1": _torch_layer(state_dict, "model.4"),
        "Down2": _torch_layer(state_dict, "model.7"),
        "Up1": _torch_layer(state_dict, f"model.{10 + num_blocks}"),
        "Up2": _torch_layer(state_dict, f"model.{13 + num_blocks}"),
        "Output": _torch_layer(state_dict, f"model.{17 + num_blocks}"),
    }
    for i in range(1, num_blocks + 1):
        block = f"model.{9 + i}.conv_block"
        params[f"Block{i}"] = {
            "Conv1": _torch_layer(state_dict, f"{block}.1"),
            "Conv2": _torch_layer(state_dict, f"{block}.5"),
        }
    return params


def discriminator_params_from_torch(state_dict: Mapping[str, np.ndarray]) -> dict:
    """`Discriminator` params from an `NLayerDiscriminator` state_dict (num_layers from its keys).

    In `model`, conv n sits at 0 (n = 0) and 3n - 1 (a conv, IN, LReLU each), the output at
    3·num_layers + 2.
    """
    num_layers = sum(key.endswith(".weight") for key in state_dict) - 2
    params = {"Conv0": _torch_layer(state_dict, "model.0")}
    for n in range(1, num_layers + 1):
        params[f"Conv{n}"] = _torch_layer(state_dict, f"model.{3 * n - 1}")
    params["Output"] = _torch_layer(state_dict, f"model.{3 * num_layers + 2}")
    return params
