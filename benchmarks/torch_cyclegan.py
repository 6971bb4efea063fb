"""The same CycleGAN iteration in PyTorch, to compare `python -m jaxgan.bench` against.

  pip install torch  # CPU build is enough
  python benchmarks/torch_cyclegan.py --threads=2                    # jaxgan/configs/cyclegan.py (64x64)
  python benchmarks/torch_cyclegan.py --threads=2 --channels_last    # the same, NHWC in memory
  python benchmarks/torch_cyclegan.py --threads=2 --size=128         # --config.data.resolution=128
  python -m jaxgan.bench --config=cyclegan --steps=30     # jaxgan's side

One iteration = junyanz/pytorch-CycleGAN-and-pix2pix `CycleGANModel.optimize_parameters`, written as
that code writes it (NCHW, nn.Sequential, autograd): forward G_A(A), G_B(B) and the cycle
reconstructions; with D_A and D_B frozen (requires_grad False), backward_G (LSGAN MSELoss against
ones through both critics, cycle L1 x lambda 10, identity L1 x 0.5 lambda) and one Adam step over
both generators; then each critic's loss 0.5 (MSE(D(real), 1) + MSE(D(pool.query(fake)), 0)) on
the forward's fakes through the 50-image ImagePool, backward and one Adam step over both critics.
The networks are networks.py's `ResnetGenerator` (reflection padding, instance norm without affine,
so biased convs) and the `NLayerDiscriminator` PatchGAN, at jaxgan's widths (ngf = ndf = --width)
and depths; their parameter counts print as `g_params` and
`d_params`, both networks of each side summed, as `python -m jaxgan.bench` prints them.
Prints `train_img_per_s: <2 * batch * iterations / seconds>` (one A and one B image per batch
position), the same quantity as `python -m jaxgan.bench --config=cyclegan`.
"""

import contextlib
import random

import torch
import torch_common
from torch import nn

# networks.py get_norm_layer('instance'); with it every conv gets a bias (use_bias).
NORM = dict(affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, padding=0, bias=True),
            nn.InstanceNorm2d(dim, **NORM),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, padding=0, bias=True),
            nn.InstanceNorm2d(dim, **NORM),
        )

    def forward(self, x):
        return x + self.conv_block(x)  # no ReLU after the sum


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, n_blocks):
        super().__init__()
        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7, padding=0, bias=True),
            nn.InstanceNorm2d(ngf, **NORM),
            nn.ReLU(True),
        ]
        for i in range(2):  # downsampling, zero padding
            mult = 2**i
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult * 2, **NORM),
                nn.ReLU(True),
            ]
        model += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):  # upsampling
            mult = 2 ** (2 - i)
            model += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
                nn.InstanceNorm2d(ngf * mult // 2, **NORM),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, n_layers):
        super().__init__()
        sequence = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers + 1):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the reference's last one keeps the size (-1)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, 4, stride, padding=1, bias=True),
                nn.InstanceNorm2d(ndf * nf_mult, **NORM),
                nn.LeakyReLU(0.2, True),
            ]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x):
        return self.model(x)


def init_weights(net):
    """networks.py init_weights('normal', 0.02): N(0, 0.02) conv weights, zero biases."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


class ImagePool:
    """util/image_pool.py: per image, store while filling; then swap with a stored one w.p. ½."""

    def __init__(self, pool_size):
        self.pool_size, self.images = pool_size, []

    def query(self, images):
        if self.pool_size == 0:
            return images
        returned = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                returned.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, self.pool_size - 1)
                returned.append(self.images[index].clone())
                self.images[index] = image
            else:
                returned.append(image)
        return torch.cat(returned, 0)


def make_iteration(
    g_a, g_b, d_a, d_b, lambda_cycle=10.0, lambda_idt=0.5, pool_size=50, autocast=None
):
    """`iteration(real_a, real_b) -> (loss_G, loss_D_A, loss_D_B)`: one optimize_parameters, with
    the reference's optimizers (one Adam(2e-4, (0.5, 0.999)) over both G, one over both D).
    `autocast()` wraps the forward passes and losses (AMP); the backward passes run outside it."""
    autocast = autocast or contextlib.nullcontext
    g_opt = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    pool_a, pool_b = ImagePool(pool_size), ImagePool(pool_size)

    def criterion(prediction, target_is_real):  # GANLoss('lsgan'): MSE against a constant map
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return mse(prediction, target)

    def backward_d(net, real, fake):  # backward_D_basic
        with autocast():
            loss = 0.5 * (criterion(net(real), True) + criterion(net(fake.detach()), False))
        loss.backward()
        return loss

    def set_requires_grad(requires_grad):
        for p in (*d_a.parameters(), *d_b.parameters()):
            p.requires_grad_(requires_grad)

    def iteration(real_a, real_b):
        with autocast():
            fake_b = g_a(real_a)  # forward()
            rec_a = g_b(fake_b)
            fake_a = g_b(real_b)
            rec_b = g_a(fake_a)
        set_requires_grad(False)
        g_opt.zero_grad()
        with autocast():
            loss_g = (  # backward_G
                criterion(d_a(fake_b), True)
                + criterion(d_b(fake_a), True)
                + l1(rec_a, real_a) * lambda_cycle
                + l1(rec_b, real_b) * lambda_cycle
                + l1(g_a(real_b), real_b) * lambda_cycle * lambda_idt
                + l1(g_b(real_a), real_a) * lambda_cycle * lambda_idt
            )
        loss_g.backward()
        g_opt.step()
        set_requires_grad(True)
        d_opt.zero_grad()
        loss_d_a = backward_d(d_a, real_b, pool_b.query(fake_b))
        loss_d_b = backward_d(d_b, real_a, pool_a.query(fake_a))
        d_opt.step()
        return loss_g.detach(), loss_d_a.detach(), loss_d_b.detach()

    return iteration


def main():
    parser = torch_common.parser(__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image height = width")
    parser.add_argument("--width", type=int, default=32, help="ngf = ndf")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--d_layers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels", type=int, default=3)
    parser.set_defaults(steps=20, warmup=3)
    args = parser.parse_args()
    device, layout = torch_common.setup(args)
    random.seed(0)
    g_a, g_b = (
        init_weights(ResnetGenerator(args.channels, args.channels, args.width, args.blocks))
        for _ in range(2)
    )
    d_a, d_b = (
        init_weights(NLayerDiscriminator(args.channels, args.width, args.d_layers))
        for _ in range(2)
    )
    for net in (g_a, g_b, d_a, d_b):
        net.to(device, memory_format=layout)
    iteration = make_iteration(g_a, g_b, d_a, d_b, autocast=lambda: torch_common.autocast(args))
    shape = (args.batch, args.channels, args.size, args.size)
    real_a, real_b = (
        (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=layout)
        for _ in range(2)
    )
    torch_common.run(
        args, lambda: iteration(real_a, real_b), 2 * args.batch, [g_a, g_b], [d_a, d_b], device
    )


if __name__ == "__main__":
    main()
