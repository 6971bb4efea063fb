"""Builds the fixture that pins `jaxgan.models.cyclegan` to CycleGAN's PyTorch networks.

The networks are written here in PyTorch from specs/translation.md §1.1-1.3, which describes
junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` `ResnetGenerator`, `ResnetBlock` and
`NLayerDiscriminator` with `norm='instance'`, `use_dropout=False` (CycleGAN's defaults). Each is one
`nn.Sequential` named `model` with the reference's layer order, so the state_dict keys are the
reference's (`model.1.weight`, `model.10.conv_block.5.bias`, ...), the keys of its released
`latest_net_G_A.pth` files, which the converter in jaxgan reads.

At width 64 and 3 channels this script prints the parameter counts (11,378,179 for 9 blocks,
7,837,699 for 6, 2,764,737 for the 3-layer PatchGAN: the spec's numbers).

The fixture is small: width 4, 2 residual blocks, a 2×3×12×16 input for G; width 4, 3 layers, a
2×3×32×40 input for D (a 2×3 patch map). Weights are N(0, 1/n) (n = the size of one slice
weight[i]) and biases N(0, 0.1²) (the
reference's N(0, 0.02) and zero biases would leave the bias mapping untested), rounded to float32
and stored so; the forward passes run in float64 on those exact values.

Writes tests/fixtures/cyclegan/{generator,discriminator}.npz:
  state_dict/<key>  float32, each parameter as the reference's state_dict holds it
  input             float32 [N, C, H, W] in [-1, 1]
  output            float64 [N, C', H', W']: the network applied to `input`, in float64
  width, num_blocks | num_layers

Recipe (PyTorch stays out of jaxgan's dependencies):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    cd /work/main && /tmp/torchenv/bin/python scripts/make_cyclegan_fixture.py

Seconds on 2 CPU cores; about 0.1 MB. Re-run (and commit the outputs) only if the networks change.
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
from torch import nn

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cyclegan"


def instance_norm(features: int) -> nn.Module:
    return nn.InstanceNorm2d(features, affine=False, track_running_stats=False)  # eps 1e-5


class ResnetBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(features, features, 3, bias=True),
            instance_norm(features),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(features, features, 3, bias=True),
            instance_norm(features),
        )

    def forward(self, x):
        return x + self.conv_block(x)


def resnet_generator(in_channels: int, out_channels: int, width: int, num_blocks: int):
    layers = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, width, 7, bias=True),
        instance_norm(width),
        nn.ReLU(True),
    ]
    for i in range(2):
        features = width * 2**i
        layers += [
            nn.Conv2d(features, features * 2, 3, stride=2, padding=1, bias=True),
            instance_norm(features * 2),
            nn.ReLU(True),
        ]
    layers += [ResnetBlock(width * 4) for _ in range(num_blocks)]
    for i in range(2):
        features = width * 2 ** (2 - i)
        layers += [
            nn.ConvTranspose2d(
                features, features // 2, 3, stride=2, padding=1, output_padding=1, bias=True
            ),
            instance_norm(features // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
    return Network(nn.Sequential(*layers))


def n_layer_discriminator(in_channels: int, width: int, num_layers: int):
    layers = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    features = width
    for n in range(1, num_layers + 1):
        stride = 2 if n < num_layers else 1
        next_features = width * min(2**n, 8)
        layers += [
            nn.Conv2d(features, next_features, 4, stride=stride, padding=1, bias=True),
            instance_norm(next_features),
            nn.LeakyReLU(0.2, True),
        ]
        features = next_features
    layers += [nn.Conv2d(features, 1, 4, stride=1, padding=1)]
    return Network(nn.Sequential(*layers))


class Network(nn.Module):
    """The layers as the attribute `model`, the reference's state_dict prefix."""

    def __init__(self, model: nn.Sequential):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _set_deterministic_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Weights N(0, 1/n), n = the elements of one output (input) channel's slice; biases N(0, 0.1²)."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("weight"):
                values = torch.randn(param.shape, generator=generator) / param[0].numel() ** 0.5
            else:
                values = 0.1 * torch.randn(param.shape, generator=generator)
            param.copy_(values.float().double())


def _write(path: pathlib.Path, module: nn.Module, inputs: torch.Tensor, **sizes: int) -> None:
    with torch.no_grad():
        output = module(inputs.double())
    arrays = {f"state_dict/{k}": v.float().numpy() for k, v in module.state_dict().items()}
    arrays.update(input=inputs.float().numpy(), output=output.numpy(), **sizes)
    np.savez_compressed(path, **arrays)
    print(f"{path.name}: {len(arrays)} arrays, output {tuple(output.shape)}")


def main() -> None:
    for num_blocks in (9, 6):
        count = _count(resnet_generator(3, 3, 64, num_blocks))
        print(f"resnet_{num_blocks}blocks at width 64: {count:,} parameters")
    print(
        f"PatchGAN n_layers=3 at width 64: {_count(n_layer_discriminator(3, 64, 3)):,} parameters"
    )

    OUT.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    g = resnet_generator(3, 3, width=4, num_blocks=2).double()
    _set_deterministic_weights(g, generator)
    g_input = torch.rand((2, 3, 12, 16), generator=generator) * 2 - 1
    _write(OUT / "generator.npz", g, g_input, width=4, num_blocks=2)

    d = n_layer_discriminator(3, width=4, num_layers=3).double()
    _set_deterministic_weights(d, generator)
    d_input = torch.rand((2, 3, 32, 40), generator=generator) * 2 - 1
    _write(OUT / "discriminator.npz", d, d_input, width=4, num_layers=3)


if __name__ == "__main__":
    main()
