"""Builds the fixture that pins `jaxgan.models.cyclegan` to CycleGAN's PyTorch networks.

The networks are written here in PyTorch after junyanz/pytorch-CycleGAN-and-pix2pix
`models/networks.py` `ResnetGenerator`, `ResnetBlock` and
`NLayerDiscriminator` with `norm='instance'`, `use_dropout=False` (CycleGAN's defaults). Each is one
`nn.Sequential` named `model` with the reference's layer order, so the state_dict keys are the
reference's (`model.1.weight`, `model.10.conv_block.5.bias`, ...), the keys of its released
`latest_net_G_A.pth` files, which the converter in jaxgan reads.

At width 64 and 3 channels this script prints the parameter counts (11,378,179 for 9 blocks,
7,837,699 for 6, 2,764,737 for the 3-layer PatchGAN; junyanz/CycleGAN issue #91 prints 11.378 M
and 2.765 M).

The fixture is small: width 4, 2 residual blocks, a 2×3×12×16 input for G; width 4, 3 layers, a
2×3×32×40 input for D (a 2×3 patch map). Weights are N(0, 1/n) (n = the size of one slice
weight[i]) and biases N(0, 0.1²) (the
reference's N(0, 0.02) and zero biases would leave the bias mapping untested), rounded to float32
and stored so; the forward passes run in float64 on those exact values.

One training iteration (`one_step.npz`): CycleGANModel.optimize_parameters as the reference writes
it (forward, backward_G with D_A/D_B frozen, G's optimizer step, then backward_D_basic ×0.5 on the
same forward's detached fakes, D's step) in float64 on G_A, G_B (width 4, 1 block) and D_A, D_B
(width 4, 1 layer) from the weights above, on two uint8 16×16 images per domain, LSGAN, λ 10,
identity 0.5, a 0-image pool (ImagePool(0) returns its input). SGD(lr 0.1), not Adam: a conv bias
before instance norm has a zero gradient up to rounding, which Adam's first step (g/|g|) turns into
±lr in either implementation. Stored: the images, every network's state_dict before and after,
and the losses the reference logs (G_A, G_B, cycle_A, cycle_B, idt_A, idt_B, D_A, D_B).

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
    one_step(torch.Generator().manual_seed(1), OUT / "one_step.npz")


ONE_STEP_LR = 0.1


def one_step(generator: torch.Generator, path: pathlib.Path) -> None:
    """The fixture of one `optimize_parameters` iteration (module docstring)."""
    nets = {name: resnet_generator(3, 3, width=4, num_blocks=1).double() for name in ("G_A", "G_B")}
    nets.update({name: n_layer_discriminator(3, 4, 1).double() for name in ("D_A", "D_B")})
    for net in nets.values():
        _set_deterministic_weights(net, generator)
    before = {f"{n}/{k}": v.numpy().copy() for n, net in nets.items()
              for k, v in net.state_dict().items()}  # fmt: skip
    pixels = {d: (torch.rand((2, 16, 16, 3), generator=generator) * 256).floor().to(torch.uint8)
              for d in "AB"}  # fmt: skip
    real_a, real_b = (pixels[d].double().permute(0, 3, 1, 2) / 127.5 - 1 for d in "AB")
    g_a, g_b, d_a, d_b = (nets[n] for n in ("G_A", "G_B", "D_A", "D_B"))
    mse, l1, lam, idt = nn.MSELoss(), nn.L1Loss(), 10.0, 0.5
    g_opt = torch.optim.SGD([*g_a.parameters(), *g_b.parameters()], lr=ONE_STEP_LR)
    d_opt = torch.optim.SGD([*d_a.parameters(), *d_b.parameters()], lr=ONE_STEP_LR)
    # forward()
    fake_b, fake_a = g_a(real_a), g_b(real_b)
    rec_a, rec_b = g_b(fake_b), g_a(fake_a)
    # backward_G with the critics frozen (set_requires_grad([D_A, D_B], False))
    for net in (d_a, d_b):
        net.requires_grad_(False)
    pred_b, pred_a = d_a(fake_b), d_b(fake_a)
    losses = {
        "idt_A": l1(g_a(real_b), real_b) * lam * idt,
        "idt_B": l1(g_b(real_a), real_a) * lam * idt,
        "G_A": mse(pred_b, torch.ones_like(pred_b)),
        "G_B": mse(pred_a, torch.ones_like(pred_a)),
        "cycle_A": l1(rec_a, real_a) * lam,
        "cycle_B": l1(rec_b, real_b) * lam,
    }
    g_opt.zero_grad()
    sum(losses.values()).backward()
    g_opt.step()
    # backward_D_A, backward_D_B: the forward's fakes, detached, through a 0-image pool
    for net in (d_a, d_b):
        net.requires_grad_(True)
    d_opt.zero_grad()
    for name, net, real, fake in (("D_A", d_a, real_b, fake_b), ("D_B", d_b, real_a, fake_a)):
        pred_real, pred_fake = net(real), net(fake.detach())
        loss = 0.5 * (mse(pred_real, torch.ones_like(pred_real))
                      + mse(pred_fake, torch.zeros_like(pred_fake)))  # fmt: skip
        loss.backward()
        losses[name] = loss
    d_opt.step()
    after = {f"{n}/{k}": v.numpy() for n, net in nets.items() for k, v in net.state_dict().items()}
    arrays = {f"before/{k}": v for k, v in before.items()}
    arrays.update({f"after/{k}": v for k, v in after.items()})
    arrays.update({f"pixels/{d}": v.numpy() for d, v in pixels.items()})
    arrays.update({f"loss/{k}": v.detach().numpy() for k, v in losses.items()})
    np.savez_compressed(path, lr=ONE_STEP_LR, **arrays)
    print(f"{path.name}: {len(arrays)} arrays; losses "
          + ", ".join(f"{k} {v.item():.6f}" for k, v in losses.items()))  # fmt: skip


if __name__ == "__main__":
    main()
