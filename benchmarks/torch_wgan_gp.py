"""The same WGAN-GP iteration in PyTorch, to compare `python -m jaxgan.bench` against.

  pip install torch  # CPU build is enough
  python benchmarks/torch_wgan_gp.py --arch=dcgan --width=32 --threads=2    # jaxgan/configs/wgan_gp.py
  python benchmarks/torch_wgan_gp.py --arch=resnet --width=128 --channels=3 --g_batch_size=128
  [--channels_last] [--fused] [--device=cuda [--amp]]                        # its :cifar10 preset
  python -m jaxgan.bench --config=wgan_gp --vs=torch              # both, alternating

One iteration = n_critic critic updates (each with the gradient penalty's double backward) and one
generator update, 32x32, written as a PyTorch user would (NCHW, nn.Conv2d, autograd.grad with
create_graph=True), with the networks of jaxgan's presets: `resnet` is gan_cifar_resnet.py
(generator with BatchNorm, critic without normalisation); `dcgan` is jaxgan/configs/wgan_gp.py's default
(DCGAN generator, strided 4x4 critic without normalisation, no biases). Prints
`train_img_per_s: <n_critic * batch * iterations / seconds>`, the same quantity as
`python -m jaxgan.bench`, and the lines of `torch_common.run`.
"""

import torch
import torch_common
from torch import nn
from torch.nn import functional as F


def box_filtered(weight):
    """[out, in, k, k] -> [out, in, k + 1, k + 1]: the sum of the kernel's four 1-pixel shifts."""
    w = F.pad(weight, (1, 1, 1, 1))
    return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]


def conv_mean_pool(conv, x):
    """avg_pool2d(conv(x), 2) for a 3x3 conv with padding 1, as one stride-2 4x4 convolution
    (PGGAN's fused conv2d_downscale2d): the same function, 2.25x fewer multiply-adds."""
    return F.conv2d(x, box_filtered(conv.weight) / 4, conv.bias, stride=2, padding=1)


def upsample_conv(conv, x):
    """conv(interpolate(x, 2, 'nearest')) for a 3x3 conv with padding 1, as one stride-2
    transposed convolution of the flipped kernel's box filter (PGGAN's upscale2d_conv2d)."""
    weight = box_filtered(conv.weight.flip(2, 3)).transpose(0, 1)
    return F.conv_transpose2d(x, weight, conv.bias, stride=2, padding=1)


class UpBlock(nn.Module):
    def __init__(self, width, fused=False):
        super().__init__()
        self.fused = fused
        self.bn1, self.bn2 = nn.BatchNorm2d(width), nn.BatchNorm2d(width)
        self.conv1, self.conv2 = (
            nn.Conv2d(width, width, 3, padding=1),
            nn.Conv2d(width, width, 3, padding=1),
        )
        self.shortcut = nn.Conv2d(width, width, 1)

    def forward(self, x):
        if self.fused:
            shortcut = F.interpolate(self.shortcut(x), scale_factor=2, mode="nearest")
            h = upsample_conv(self.conv1, F.relu(self.bn1(x)))
        else:
            shortcut = self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))
            h = self.conv1(F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest"))
        return shortcut + self.conv2(F.relu(self.bn2(h)))


class Generator(nn.Module):
    def __init__(self, width, channels, fused=False, z_dim=128):
        super().__init__()
        self.width = width
        self.input = nn.Linear(z_dim, 4 * 4 * width)
        self.blocks = nn.Sequential(*[UpBlock(width, fused) for _ in range(3)])
        self.bn = nn.BatchNorm2d(width)
        self.output = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, z):
        x = self.input(z).view(-1, self.width, 4, 4)
        return torch.tanh(self.output(F.relu(self.bn(self.blocks(x)))))


class Critic(nn.Module):
    def __init__(self, width, channels, fused=False):
        super().__init__()
        self.fused = fused
        conv = lambda cin, k: nn.Conv2d(cin, width, k, padding=k // 2)
        self.b1c1, self.b1c2, self.b1s = conv(channels, 3), conv(width, 3), conv(channels, 1)
        self.b2c1, self.b2c2, self.b2s = conv(width, 3), conv(width, 3), conv(width, 1)
        self.plain = nn.ModuleList([conv(width, 3) for _ in range(4)])
        self.output = nn.Linear(width, 1)

    def forward(self, x):
        if self.fused:
            x = self.b1s(F.avg_pool2d(x, 2)) + conv_mean_pool(self.b1c2, F.relu(self.b1c1(x)))
            h = conv_mean_pool(self.b2c2, F.relu(self.b2c1(F.relu(x))))
            x = self.b2s(F.avg_pool2d(x, 2)) + h
        else:
            x = self.b1s(F.avg_pool2d(x, 2)) + F.avg_pool2d(self.b1c2(F.relu(self.b1c1(x))), 2)
            h = F.avg_pool2d(self.b2c2(F.relu(self.b2c1(F.relu(x)))), 2)
            x = F.avg_pool2d(self.b2s(x), 2) + h
        for i in (0, 2):
            x = x + self.plain[i + 1](F.relu(self.plain[i](F.relu(x))))
        return self.output(F.relu(x).mean(dim=(2, 3))).view(-1)


class DCGANGenerator(nn.Module):
    def __init__(self, width, channels, z_dim=128):
        super().__init__()
        self.top = 4 * width
        self.input = nn.Linear(z_dim, 4 * 4 * self.top, bias=False)
        self.bn = nn.BatchNorm2d(self.top)
        layers = []
        for cin, cout in ((4 * width, 2 * width), (2 * width, width)):
            layers += [
                nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        return self.body(F.relu(self.bn(self.input(z).view(-1, self.top, 4, 4))))


class DCGANCritic(nn.Module):
    def __init__(self, width, channels):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(c, 2 * c if i else width, 4, 2, 1, bias=False)
                for i, c in enumerate((channels, width, 2 * width))
            ]
        )
        self.output = nn.Conv2d(4 * width, 1, 4, 1, 0, bias=False)

    def forward(self, x):
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.output(x).view(-1)


ARCHITECTURES = {"resnet": (Generator, Critic), "dcgan": (DCGANGenerator, DCGANCritic)}


def main():
    parser = torch_common.parser(__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="dcgan")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=64, help="critic batch")
    parser.add_argument("--g_batch_size", type=int, default=0, help="0: --batch_size")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--n_critic", type=int, default=5)
    parser.add_argument(
        "--fused",
        action="store_true",
        help="resnet: each resampling conv as one convolution, the 1x1 shortcuts at the lower "
        "resolution (the algebra jaxgan's ResNets use), instead of the reference's order",
    )
    args = parser.parse_args()
    device, layout = torch_common.setup(args)
    generator_cls, critic_cls = ARCHITECTURES[args.arch]
    fused = {"fused": True} if args.fused else {}
    if args.fused and args.arch != "resnet":
        raise SystemExit("--fused: only --arch=resnet has resampling convolutions.")
    generator = generator_cls(args.width, args.channels, **fused).to(device, memory_format=layout)
    critic = critic_cls(args.width, args.channels, **fused).to(device, memory_format=layout)
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.0, 0.9))
    batch, g_batch = args.batch_size, args.g_batch_size or args.batch_size
    reals = [
        (torch.rand(batch, args.channels, 32, 32, device=device) * 2 - 1).contiguous(
            memory_format=layout
        )
        for _ in range(args.n_critic)
    ]

    def iteration():
        for real in reals:
            with torch_common.autocast(args):
                fake = generator(torch.randn(batch, 128, device=device)).detach().float()
            u = torch.rand(batch, 1, 1, 1, device=device)
            x_hat = (real + u * (fake - real)).requires_grad_(True)
            with torch_common.autocast(args):
                penalty_scores = critic(x_hat).float()
                fake_scores, real_scores = critic(fake).float(), critic(real).float()
            # The penalty's gradient and norm stay float32 (AMP runs the networks in bfloat16).
            (grad,) = torch.autograd.grad(penalty_scores.sum(), x_hat, create_graph=True)
            norm = torch.sqrt(grad.float().pow(2).sum(dim=(1, 2, 3)) + 1e-12)
            loss = fake_scores.mean() - real_scores.mean() + 10 * ((norm - 1) ** 2).mean()
            d_opt.zero_grad()
            loss.backward()
            d_opt.step()
        with torch_common.autocast(args):
            g_loss = -critic(generator(torch.randn(g_batch, 128, device=device))).float().mean()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()

    torch_common.run(args, iteration, args.n_critic * batch, [generator], [critic], device)


if __name__ == "__main__":
    main()
