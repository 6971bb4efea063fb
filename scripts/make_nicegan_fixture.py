"""Builds the fixture that pins `jaxgan.models.nicegan` to NICE-GAN's PyTorch networks.

The networks are written here in PyTorch after alpc91/NICE-GAN-pytorch `networks.py`
`Discriminator` (l.284-384), `ResnetGenerator` (l.6-90), `ResnetAdaILNBlock`, `adaILN` and `ILN`
(l.137-281, the default `using_bn=False` path). Attribute
and `nn.Sequential` layouts are the reference's, so the state_dict keys are its keys (`model.1.
weight_orig`, `fc.weight_u`, `Dis1_0.4.bias`, `UpBlock1_3.norm2.rho`, `UpBlock2.12.weight`, ...),
those of its released checkpoints, which the converters in jaxgan read.

At width 64 and 3 channels this script prints the parameter counts: 46,874,433 for the
discriminator with n_dis 7 (167,489 in its encoder), 8,104,640 for the light generator with 6
blocks and 276,474,560 for the full one at img_size 256 (as counted from the reference's layers).

Fixtures (small: width 1 for D, 2 for G), weights N(0, 1/n) (n = the size of one slice weight[i]), biases
N(0, 0.1²), ρ N(0, 1), ILN γ 1 + N(0, 0.1²) and β N(0, 0.1²), lamda 0.5 (the reference's 0 would
leave the CAM branch untested), the spectral-norm u vectors unit N(0, 1) draws; all rounded to
float32 and stored so, the forward passes in float64 on those exact values.
  discriminator.npz: ndf 1, n_layers 7, two uint8 96×128 RGB images mapped to [-1, 1] by /127.5 - 1
    (96 is the least size the global branch takes: 1×2 global, 10×14 local logits), one forward
    in training mode (one power iteration per spectral norm, u updated).
  generator_light.npz: ngf 2, 2 blocks, light, a [2, 4, 4, 6] code in N(0, 1).
  generator_full.npz: ngf 2, 1 block, full at img_size 16, a [2, 4, 4, 4] code.
  one_step.npz: three iterations of `NICE.py::train` (l.206-277: the D step, then the G step)
    with ch 2, n_res 1, light, n_dis 6, two 48×48 images per domain and batch (48 is the least
    size n_dis 6 takes), Adam(1e-3, (0.5, 0.999), weight_decay 1e-4) on both sides and the
    reference's lr decay for iteration = 4 (the third update runs at lr/2). Weights as above;
    the losses of each iteration and every parameter and u after the last (see one_step()).
Keys:
  state_dict/<key>  float32, the state_dict before the forward (weight_u; weight_v left out)
  input             uint8 [N, 3, H, W] pixels (D) or float32 [N, C, h, w] code (G)
  output/<name>     float64 NCHW: D's local, global, cam, heatmap, z; G's image
  u_after/<key>     float64, D's weight_u after the forward
  width, num_layers | num_blocks, light

Recipe (PyTorch stays out of jaxgan's dependencies):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    cd /work/main && /tmp/torchenv/bin/python scripts/make_nicegan_fixture.py

Seconds on 2 CPU cores; about 0.1 MB. Re-run (and commit the outputs) only if the networks change.
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
from torch import nn
from torch.nn.utils import spectral_norm

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "nicegan"


# ----------------------------------------------------------------------------------------------
# Discriminator (networks.py l.284-384).
# ----------------------------------------------------------------------------------------------


def _sn_conv_block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, kernel_size=4, stride=stride, padding=0, bias=True)
    return [nn.ReflectionPad2d(1), spectral_norm(conv), nn.LeakyReLU(0.2, True)]


class Discriminator(nn.Module):
    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 7):
        super().__init__()
        model = _sn_conv_block(input_nc, ndf, 2) + _sn_conv_block(ndf, ndf * 2, 2)
        mult = 2
        self.fc = spectral_norm(nn.Linear(ndf * mult * 2, 1, bias=False))
        self.conv1x1 = nn.Conv2d(ndf * mult * 2, ndf * mult, kernel_size=1, stride=1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)
        self.lamda = nn.Parameter(torch.zeros(1))
        dis0_0 = []
        for i in range(2, n_layers - 4):
            mult = 2 ** (i - 1)
            dis0_0 += _sn_conv_block(ndf * mult, ndf * mult * 2, 2)
        mult = 2 ** (n_layers - 4 - 1)
        dis0_1 = _sn_conv_block(ndf * mult, ndf * mult * 2, 1)
        mult = 2 ** (n_layers - 4)
        self.conv0 = spectral_norm(nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False))
        dis1_0 = []
        for i in range(n_layers - 4, n_layers - 2):
            mult = 2 ** (i - 1)
            dis1_0 += _sn_conv_block(ndf * mult, ndf * mult * 2, 2)
        mult = 2 ** (n_layers - 2 - 1)
        dis1_1 = _sn_conv_block(ndf * mult, ndf * mult * 2, 1)
        mult = 2 ** (n_layers - 2)
        self.conv1 = spectral_norm(nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False))
        self.pad = nn.ReflectionPad2d(1)
        self.model = nn.Sequential(*model)
        self.Dis0_0 = nn.Sequential(*dis0_0)
        self.Dis0_1 = nn.Sequential(*dis0_1)
        self.Dis1_0 = nn.Sequential(*dis1_0)
        self.Dis1_1 = nn.Sequential(*dis1_1)

    def forward(self, x):
        x = self.model(x)
        x_0 = x
        gap = nn.functional.adaptive_avg_pool2d(x, 1)
        gmp = nn.functional.adaptive_max_pool2d(x, 1)
        x = torch.cat([x, x], 1)
        cam_logit = torch.cat([gap, gmp], 1)
        cam_logit = self.fc(cam_logit.view(cam_logit.shape[0], -1))
        weight = list(self.fc.parameters())[0]  # weight_orig: the un-normalised weight
        x = x * weight.unsqueeze(2).unsqueeze(3)
        x = self.conv1x1(x)
        x = self.lamda * x + x_0
        x = self.leaky_relu(x)
        heatmap = torch.sum(x, dim=1, keepdim=True)
        z = x
        x0 = self.Dis0_0(x)
        x1 = self.Dis1_0(x0)
        x0 = self.Dis0_1(x0)
        x1 = self.Dis1_1(x1)
        out0 = self.conv0(self.pad(x0))
        out1 = self.conv1(self.pad(x1))
        return out0, out1, cam_logit, heatmap, z


# ----------------------------------------------------------------------------------------------
# Generator (networks.py l.6-90, l.137-281 with using_bn=False).
# ----------------------------------------------------------------------------------------------


def _mix(x, rho, eps):
    in_mean, in_var = (
        torch.mean(x, dim=[2, 3], keepdim=True),
        torch.var(x, dim=[2, 3], keepdim=True),
    )
    out_in = (x - in_mean) / torch.sqrt(in_var + eps)
    ln_mean = torch.mean(x, dim=[1, 2, 3], keepdim=True)
    ln_var = torch.var(x, dim=[1, 2, 3], keepdim=True)
    out_ln = (x - ln_mean) / torch.sqrt(ln_var + eps)
    rho = nn.Softmax(2)(rho)
    c = x.shape[1]
    return rho[:, :, 0].view(1, c, 1, 1) * out_in + rho[:, :, 1].view(1, c, 1, 1) * out_ln


class adaILN(nn.Module):  # noqa: N801 (the reference's name)
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.Tensor(1, num_features, 2))
        self.rho[:, :, 0].data.fill_(3.2)
        self.rho[:, :, 1].data.fill_(1)

    def forward(self, x, gamma, beta):
        out = _mix(x, self.rho, self.eps)
        return out * gamma.unsqueeze(2).unsqueeze(3) + beta.unsqueeze(2).unsqueeze(3)


class ILN(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.Tensor(1, num_features, 2))
        self.rho[:, :, 0].data.fill_(1)
        self.rho[:, :, 1].data.fill_(3.2)
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x):
        return _mix(x, self.rho, self.eps) * self.gamma + self.beta


class ResnetAdaILNBlock(nn.Module):
    def __init__(self, dim: int, use_bias: bool):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias)
        self.norm1 = adaILN(dim)
        self.relu1 = nn.ReLU(True)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias)
        self.norm2 = adaILN(dim)

    def forward(self, x, gamma, beta):
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return out + x


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, n_blocks=6, img_size=256, light=False):
        super().__init__()
        self.n_blocks, self.light = n_blocks, light
        mult = 4
        self.UpBlock0 = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ngf * mult // 2, ngf * mult, 3, 1, 0, bias=True),
            ILN(ngf * mult),
            nn.ReLU(True),
        )
        fc_in = ngf * mult if light else img_size // mult * img_size // mult * ngf * mult
        self.FC = nn.Sequential(
            nn.Linear(fc_in, ngf * mult, bias=False),
            nn.ReLU(True),
            nn.Linear(ngf * mult, ngf * mult, bias=False),
            nn.ReLU(True),
        )
        self.gamma = nn.Linear(ngf * mult, ngf * mult, bias=False)
        self.beta = nn.Linear(ngf * mult, ngf * mult, bias=False)
        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaILNBlock(ngf * mult, use_bias=False))
        up = []
        for i in range(2):
            mult = 2 ** (2 - i)
            half = ngf * mult // 2
            up += [
                nn.ReflectionPad2d(1),
                nn.Conv2d(ngf * mult, half, 3, 1, 0, bias=False),
                ILN(half),
                nn.ReLU(True),
                nn.Conv2d(half, half * 4, kernel_size=1, stride=1, bias=True),
                nn.PixelShuffle(2),
                ILN(half),
                nn.ReLU(True),
            ]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, 1, 0, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, z):
        x = self.UpBlock0(z)
        if self.light:
            x_ = nn.functional.adaptive_avg_pool2d(x, 1)
            x_ = self.FC(x_.view(x_.shape[0], -1))
        else:
            x_ = self.FC(x.view(x.shape[0], -1))
        gamma, beta = self.gamma(x_), self.beta(x_)
        for i in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
        return self.UpBlock2(x)


# ----------------------------------------------------------------------------------------------


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _set_deterministic_weights(module: nn.Module, generator: torch.Generator) -> None:
    """The fixture's weights (module docstring), float32-exact, in the module's float64."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            shape = param.shape
            if name.endswith(("weight", "weight_orig")):
                values = torch.randn(shape, generator=generator) / param[0].numel() ** 0.5
            elif name.endswith("rho"):
                values = torch.randn(shape, generator=generator)
            elif name.endswith("gamma"):
                values = 1 + 0.1 * torch.randn(shape, generator=generator)
            elif name == "lamda":
                values = torch.full(shape, 0.5)
            else:  # biases, ILN beta
                values = 0.1 * torch.randn(shape, generator=generator)
            param.copy_(values.float().double())
        for name, buffer in module.named_buffers():
            if name.endswith("weight_u"):
                u = torch.randn(buffer.shape, generator=generator)
                buffer.copy_((u / u.norm()).float().double())


def _state_dict_arrays(module: nn.Module) -> dict[str, np.ndarray]:
    """The state_dict but `weight_v`, which training mode recomputes from u before using it."""
    return {
        f"state_dict/{k}": v.float().numpy()
        for k, v in module.state_dict().items()
        if not k.endswith("weight_v")
    }


def main() -> None:
    d64 = Discriminator(3, 64, 7)
    encoder = sum(_count(m) for m in (d64.model, d64.fc, d64.conv1x1)) + d64.lamda.numel()
    print(f"Discriminator ndf 64, n_layers 7: {_count(d64):,} parameters ({encoder:,} encoder)")
    for light in (True, False):
        g64 = ResnetGenerator(128, 3, 64, 6, 256, light=light)
        print(f"ResnetGenerator ngf 64, 6 blocks, light={light}: {_count(g64):,} parameters")
    del d64, g64

    OUT.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    d = Discriminator(3, ndf=1, n_layers=7).double().train()
    _set_deterministic_weights(d, generator)
    pixels = (torch.rand((2, 3, 96, 128), generator=generator) * 256).floor().to(torch.uint8)
    arrays = _state_dict_arrays(d)
    with torch.no_grad():
        outputs = d(pixels.double() / 127.5 - 1)
    names = ("local", "global", "cam", "heatmap", "z")
    arrays.update({f"output/{n}": o.numpy() for n, o in zip(names, outputs)})
    arrays.update({f"u_after/{k}": v.numpy() for k, v in d.state_dict().items() if "weight_u" in k})
    arrays.update(input=pixels.numpy(), width=1, num_layers=7)
    np.savez_compressed(OUT / "discriminator.npz", **arrays)
    print(f"discriminator.npz: {len(arrays)} arrays, shapes {[tuple(o.shape) for o in outputs]}")

    for light, num_blocks, hw in ((True, 2, (4, 6)), (False, 1, (4, 4))):
        g = ResnetGenerator(4, 3, ngf=2, n_blocks=num_blocks, img_size=16, light=light).double()
        _set_deterministic_weights(g, generator)
        code = torch.randn((2, 4, *hw), generator=generator).float()
        arrays = _state_dict_arrays(g)
        with torch.no_grad():
            image = g(code.double())
        arrays.update(
            {"input": code.numpy(), "output/image": image.numpy()},
            width=2,
            num_blocks=num_blocks,
            light=light,
        )
        name = "generator_light.npz" if light else "generator_full.npz"
        np.savez_compressed(OUT / name, **arrays)
        print(f"{name}: {len(arrays)} arrays, output {tuple(image.shape)}")
    one_step(torch.Generator().manual_seed(1), OUT / "one_step.npz")


ONE_STEP_LR, ONE_STEP_ITERATION, ONE_STEP_RUN = 1e-3, 4, 3


def one_step(generator: torch.Generator, path: pathlib.Path) -> None:
    """The fixture of `NICE.py::train`'s iterations (l.206-277; module docstring)."""
    nets = {n: Discriminator(3, ndf=2, n_layers=6).double().train() for n in ("disA", "disB")}
    nets.update(
        {n: ResnetGenerator(4, 3, 2, 1, 48, light=True).double() for n in ("gen2A", "gen2B")}
    )
    for net in nets.values():
        _set_deterministic_weights(net, generator)
    # float32-exact values (_set_deterministic_weights), stored as float32
    before = {f"{n}/{k}": v.float().numpy() for n, net in nets.items()
              for k, v in net.state_dict().items() if not k.endswith("weight_v")}  # fmt: skip
    pixels = {d: (torch.rand((ONE_STEP_RUN, 2, 48, 48, 3), generator=generator) * 256).floor()
              .to(torch.uint8) for d in "AB"}  # fmt: skip
    dis_a, dis_b, gen2a, gen2b = (nets[n] for n in ("disA", "disB", "gen2A", "gen2B"))
    adam = dict(lr=ONE_STEP_LR, betas=(0.5, 0.999), weight_decay=1e-4)
    g_optim = torch.optim.Adam([*gen2b.parameters(), *gen2a.parameters()], **adam)
    d_optim = torch.optim.Adam([*dis_a.parameters(), *dis_b.parameters()], **adam)
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    ones = lambda x: torch.ones_like(x)  # noqa: E731
    zeros = lambda x: torch.zeros_like(x)  # noqa: E731
    losses: dict[str, list] = {}
    for step in range(1, ONE_STEP_RUN + 1):
        if step > ONE_STEP_ITERATION // 2:  # NICE.py l.188-190
            for optim in (g_optim, d_optim):
                optim.param_groups[0]["lr"] -= ONE_STEP_LR / (ONE_STEP_ITERATION // 2)
        real_a, real_b = (pixels[d][step - 1].double().permute(0, 3, 1, 2) / 127.5 - 1
                          for d in "AB")  # fmt: skip
        # Update D
        d_optim.zero_grad()
        real_la, real_ga, real_a_cam, _, real_a_z = dis_a(real_a)
        real_lb, real_gb, real_b_cam, _, real_b_z = dis_b(real_b)
        fake_a2b, fake_b2a = gen2b(real_a_z).detach(), gen2a(real_b_z).detach()
        fake_la, fake_ga, fake_a_cam, _, _ = dis_a(fake_b2a)
        fake_lb, fake_gb, fake_b_cam, _, _ = dis_b(fake_a2b)
        d_loss_a = (mse(real_ga, ones(real_ga)) + mse(fake_ga, zeros(fake_ga))
                    + mse(real_a_cam, ones(real_a_cam)) + mse(fake_a_cam, zeros(fake_a_cam))
                    + mse(real_la, ones(real_la)) + mse(fake_la, zeros(fake_la)))  # fmt: skip
        d_loss_b = (mse(real_gb, ones(real_gb)) + mse(fake_gb, zeros(fake_gb))
                    + mse(real_b_cam, ones(real_b_cam)) + mse(fake_b_cam, zeros(fake_b_cam))
                    + mse(real_lb, ones(real_lb)) + mse(fake_lb, zeros(fake_lb)))  # fmt: skip
        (d_loss_a + d_loss_b).backward()
        d_optim.step()
        # Update G
        g_optim.zero_grad()
        _, _, _, _, real_a_z = dis_a(real_a)
        _, _, _, _, real_b_z = dis_b(real_b)
        fake_a2b, fake_b2a = gen2b(real_a_z), gen2a(real_b_z)
        fake_la, fake_ga, fake_a_cam, _, fake_a_z = dis_a(fake_b2a)
        fake_lb, fake_gb, fake_b_cam, _, fake_b_z = dis_b(fake_a2b)
        fake_b2a2b, fake_a2b2a = gen2b(fake_a_z), gen2a(fake_b_z)
        fake_a2a, fake_b2b = gen2a(real_a_z), gen2b(real_b_z)
        terms = {
            "g_adv_a": mse(fake_ga, ones(fake_ga))
            + mse(fake_a_cam, ones(fake_a_cam))
            + mse(fake_la, ones(fake_la)),
            "g_adv_b": mse(fake_gb, ones(fake_gb))
            + mse(fake_b_cam, ones(fake_b_cam))
            + mse(fake_lb, ones(fake_lb)),
            "cycle_a": 10 * l1(fake_a2b2a, real_a),
            "cycle_b": 10 * l1(fake_b2a2b, real_b),
            "recon_a": 10 * l1(fake_a2a, real_a),
            "recon_b": 10 * l1(fake_b2b, real_b),
        }
        sum(terms.values()).backward()
        g_optim.step()
        terms.update(d_a=d_loss_a, d_b=d_loss_b)
        for name, value in terms.items():
            losses.setdefault(name, []).append(value.item())
    after = {f"{n}/{k}": v.numpy() for n, net in nets.items()
             for k, v in net.state_dict().items() if not k.endswith("weight_v")}  # fmt: skip
    arrays = {f"before/{k}": v for k, v in before.items()}
    arrays.update({f"after/{k}": v for k, v in after.items()})
    arrays.update({f"pixels/{d}": v.numpy() for d, v in pixels.items()})
    arrays.update({f"loss/{k}": np.asarray(v) for k, v in losses.items()})
    np.savez_compressed(
        path, lr=ONE_STEP_LR, iteration=ONE_STEP_ITERATION, weight_decay=1e-4, **arrays
    )
    print(f"{path.name}: {len(arrays)} arrays; last losses "
          + ", ".join(f"{k} {v[-1]:.6f}" for k, v in losses.items()))  # fmt: skip


if __name__ == "__main__":
    main()
