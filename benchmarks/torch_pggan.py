"""The same Progressive GAN iteration at one fixed stage in PyTorch, to compare jaxgan's against.

  pip install torch  # CPU build is enough
  python benchmarks/torch_pggan.py --threads=2                      # jaxgan/configs/pggan.py, 16x16 fade
  python benchmarks/torch_pggan.py --threads=2 --channels_last      # the same, NHWC in memory
  python benchmarks/torch_pggan.py --preset=cifar10 --threads=2     # pggan:cifar10
  python benchmarks/torch_pggan.py --resolution=32 --alpha=1.0      # the last stage, stabilising
  [--device=cuda [--amp]]
  python -m jaxgan.bench --config=pggan --stage_resolution=16 --vs=torch  # both

`--preset` picks jaxgan/configs/pggan.py's networks, minibatch table, γ and update scheme; the flags
--final_resolution, --batch_size, --channels, --fmap_base, --fmap_max, --z_dim,
--mbstd_group_size, --gp_target, --n_critic, --[no-]simultaneous and --[no-]ema_warmup override
them one by one (as `jaxgan.bench --vs=torch` passes its config's values).

The stage is `--resolution` (the networks run at it) and `--alpha`, the weight of its new layers
while it fades in: the default, `--resolution=16 --alpha=0.5`, is lod 1.5 of a 32x32 run, halfway
through the fade-in of 16x16, i.e. jaxgan's `progressive.Stage(4, fade_in=True)` with alpha 0.5.
As in jaxgan, every resolution after the first (4x4) runs its previous resolution's path beside
the new one (alpha = 1 once the fade is over), and the networks hold every resolution's layers
up to the final one (`--final_resolution`), only those up to the stage running.

One iteration = `jaxgan/methods/progressive.py` `make_train_step`'s, with the networks of
`jaxgan/models/progan.py` (PGGAN's TF `networks.py` and `loss.py`), written as a PyTorch user
would (NCHW nn.Module convs whose N(0, 1) weights are multiplied by the He constant at run time,
F.interpolate, F.avg_pool2d, autograd.grad with create_graph=True):
  * reals: uint8 at the final resolution -> [-1, 1], box-filtered to the stage resolution and
    faded with their 2x2-box-and-nearest-up copy (TF `process_reals`);
  * n_critic critic updates (1 in the presets), each on fresh reals, fakes from G under no_grad
    and the loss E D(fake) - E D(real) + 10·E(‖∇D(x̂)‖ - γ)²/γ² + 0.001·E D(real)², the input
    gradient taken w.r.t. the final-resolution images as the references take it (jaxgan's
    `full_resolution_penalty`: ∇ w.r.t. the nearest-upscaled x̂ is ∇ w.r.t. x̂ / 2^floor(lod));
  * the EMA of G (Gs <- lerp(G, Gs, β), G before its update; the default preset's warm-up β);
  * one generator update, -E D(G(z)), with D frozen (requires_grad False);
  * Adam(lr 1e-3, betas (0, 0.99), eps 1e-8) for each network.
`--preset=cifar10` (Theano `separate_funcs=False`) updates G and D from one forward pass instead:
both losses on the same fakes and D(fakes), each network's gradient taken with autograd.grad.
Prints the lines of `torch_common.run`: `g_params` and `d_params` count every resolution's
layers, as `benchmark.count_params` of jaxgan's full-network trees does, and
`train_img_per_s: <n_critic * minibatch * iterations / seconds>`, as jaxgan counts real images.

The networks are jaxgan's: with jaxgan's initial parameters copied in (HWIO -> OIHW kernels, the
4x4 dense layers' rows and columns from HWC to CHW order), G's images at the 16x16 fade, D's
scores and the norms of D's input gradients agreed with jaxgan's to float32 rounding (largest
differences 2e-6 of |G| <= 2.7, 3e-7 of |D| <= 0.4, relative 3e-7).
"""

import argparse
import math

import torch
import torch_common
from torch import nn
from torch.nn import functional as F

# jaxgan/configs/pggan.py: the default (mnist5k) and cifar10 presets' networks, batches and losses.
PRESETS = {
    "default": dict(
        channels=1,
        final_resolution=32,
        fmap_base=256,
        fmap_max=64,
        z_dim=64,
        minibatch={4: 64, 8: 64, 16: 32, 32: 32},
        mbstd_group_size=4,
        gp_target=1.0,
        simultaneous=False,
        ema_warmup=True,
    ),
    "cifar10": dict(
        channels=3,
        final_resolution=32,
        fmap_base=4096,
        fmap_max=128,
        z_dim=128,
        minibatch={},  # 16 at every resolution
        mbstd_group_size=16,
        gp_target=750.0,
        simultaneous=True,
        ema_warmup=False,
    ),
}
BATCH_SIZE = 16  # config.batch_size: the minibatch where a preset's table has no entry
HE_GAIN = math.sqrt(2.0)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def pixel_norm(x, eps=1e-8):
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x, group_size):
    """networks.py minibatch_stddev_layer: groups of samples n, n + M, ... (strided)."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, c, h, w).float()
    y = (y - y.mean(dim=0)).pow(2).mean(dim=0)
    y = torch.sqrt(y + 1e-8).mean(dim=(1, 2, 3), keepdim=True).to(x.dtype)  # [M, 1, 1, 1]
    return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


class EqualizedConv2d(nn.Module):
    """Stride-1 'same' conv with equalized learning rate: N(0, 1) weights × gain/√fan_in per call."""

    def __init__(self, cin, cout, kernel, gain=HE_GAIN, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = gain / math.sqrt(cin * kernel * kernel)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


class EqualizedLinear(nn.Module):
    def __init__(self, cin, cout, gain=HE_GAIN, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = gain / math.sqrt(cin)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


def num_features(stage, fmap_base, fmap_max):
    return min(int(fmap_base / 2.0**stage), fmap_max)


class Generator(nn.Module):
    """G_paper: pixel-normed z -> 4x4 (dense, gain √2/4) -> per resolution nearest x2 and two 3x3
    convs, each LReLU then pixel norm; a 1x1 ToRGB (gain 1, linear) per resolution."""

    def __init__(self, channels, final_resolution, fmap_base, fmap_max, z_dim):
        super().__init__()
        nf = lambda stage: num_features(stage, fmap_base, fmap_max)
        self.nf1 = nf(1)
        self.dense = EqualizedLinear(z_dim, 16 * nf(1), gain=HE_GAIN / 4, bias=False)
        self.dense_bias = nn.Parameter(torch.zeros(nf(1)))
        self.blocks = nn.ModuleList([nn.ModuleList([EqualizedConv2d(nf(1), nf(1), 3)])])
        self.to_rgb = nn.ModuleList([EqualizedConv2d(nf(1), channels, 1, gain=1.0)])
        for k in range(3, int(math.log2(final_resolution)) + 1):
            cin, cout = nf(k - 2), nf(k - 1)
            convs = [EqualizedConv2d(cin, cout, 3), EqualizedConv2d(cout, cout, 3)]
            self.blocks.append(nn.ModuleList(convs))
            self.to_rgb.append(EqualizedConv2d(cout, channels, 1, gain=1.0))

    def forward(self, z, res_log2, alpha=None):
        """z [N, z_dim] -> images [N, C, 2^r, 2^r]; with alpha, lerp(up2(old ToRGB), new, alpha)."""
        x = self.dense(pixel_norm(z)).view(z.shape[0], self.nf1, 4, 4)
        x = pixel_norm(lrelu(x + self.dense_bias.view(1, -1, 1, 1)))
        features = []
        for i, convs in enumerate(self.blocks[: res_log2 - 1]):
            if i:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            for conv in convs:
                x = pixel_norm(lrelu(conv(x)))
            features.append(x)
        images = self.to_rgb[res_log2 - 2](features[-1])
        if alpha is None:
            return images
        old = F.interpolate(self.to_rgb[res_log2 - 3](features[-2]), scale_factor=2, mode="nearest")
        return torch.lerp(old, images, alpha)


class Critic(nn.Module):
    """D_paper: FromRGB (1x1, LReLU) -> per resolution two 3x3 convs (LReLU), 2x2 box down ->
    4x4: minibatch stddev, 3x3 conv, dense to nf(0), dense to 1 (gain 1)."""

    def __init__(self, channels, final_resolution, fmap_base, fmap_max, mbstd_group_size):
        super().__init__()
        nf = lambda stage: num_features(stage, fmap_base, fmap_max)
        self.mbstd_group_size = mbstd_group_size
        extra = 1 if mbstd_group_size > 1 else 0
        self.from_rgb = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for k in range(2, int(math.log2(final_resolution)) + 1):
            self.from_rgb.append(EqualizedConv2d(channels, nf(k - 1), 1))
            if k >= 3:
                convs = [EqualizedConv2d(nf(k - 1), nf(k - 1), 3)]
                convs.append(EqualizedConv2d(nf(k - 1), nf(k - 2), 3))
                self.blocks.append(nn.ModuleList(convs))
        self.conv = EqualizedConv2d(nf(1) + extra, nf(1), 3)
        self.dense0 = EqualizedLinear(16 * nf(1), nf(0))
        self.dense1 = EqualizedLinear(nf(0), 1, gain=1.0)

    def block(self, x, k):
        for conv in self.blocks[k - 3]:
            x = lrelu(conv(x))
        return F.avg_pool2d(x, 2)

    def forward(self, images, res_log2, alpha=None):
        """images [N, C, 2^r, 2^r] -> scores [N]; with alpha, lerp(old FromRGB path, new, alpha)."""
        x = lrelu(self.from_rgb[res_log2 - 2](images))
        if res_log2 >= 3:
            x = self.block(x, res_log2)
        if alpha is not None:
            old = lrelu(self.from_rgb[res_log2 - 3](F.avg_pool2d(images, 2)))
            x = torch.lerp(old, x, alpha)
        for k in range(res_log2 - 1, 2, -1):
            x = self.block(x, k)
        if self.mbstd_group_size > 1:
            x = minibatch_stddev(x, self.mbstd_group_size)
        x = lrelu(self.conv(x))
        x = lrelu(self.dense0(x.flatten(1)))
        return self.dense1(x)[:, 0]


def main():
    parser = torch_common.parser(__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--resolution", type=int, default=16, help="the stage's resolution")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the new layers")
    # The preset's values unless given (jaxgan.bench --vs=torch passes its config's).
    parser.add_argument("--final_resolution", type=int, help="config.data.resolution")
    parser.add_argument("--batch_size", type=int, help="the stage's minibatch")
    parser.add_argument("--channels", type=int)
    parser.add_argument("--fmap_base", type=int)
    parser.add_argument("--fmap_max", type=int)
    parser.add_argument("--z_dim", type=int)
    parser.add_argument("--mbstd_group_size", type=int, help="0 or 1: off")
    parser.add_argument("--gp_target", type=float, help="config.penalties.wgan_gp.target (γ)")
    parser.add_argument("--n_critic", type=int, default=1)
    parser.add_argument("--simultaneous", action=argparse.BooleanOptionalAction)
    parser.add_argument("--ema_warmup", action=argparse.BooleanOptionalAction)
    args = parser.parse_args()
    p = dict(PRESETS[args.preset])
    p.update({k: v for k, v in vars(args).items() if k in p and v is not None})
    device, layout = torch_common.setup(args)
    final = p["final_resolution"]
    res_log2, final_log2 = int(math.log2(args.resolution)), int(math.log2(final))
    if 2**res_log2 != args.resolution or not 2 <= res_log2 <= final_log2:
        raise SystemExit(f"--resolution={args.resolution}: a power of two in [4, {final}].")
    alpha = args.alpha if res_log2 > 2 else None  # 4x4, the first stage, has no older path
    factor = 2 ** (final_log2 - res_log2)  # 2^floor(lod): the penalty's final-resolution scale
    batch = args.batch_size or p["minibatch"].get(args.resolution, BATCH_SIZE)
    if p["simultaneous"] and args.n_critic != 1:
        raise SystemExit("--simultaneous updates G and D from one minibatch: --n_critic=1.")
    widths = dict(fmap_base=p["fmap_base"], fmap_max=p["fmap_max"])
    generator = Generator(p["channels"], final, z_dim=p["z_dim"], **widths)
    critic = Critic(p["channels"], final, mbstd_group_size=p["mbstd_group_size"], **widths)
    generator.to(device, memory_format=layout)
    critic.to(device, memory_format=layout)
    ema = [q.detach().clone() for q in generator.parameters()]
    adam = dict(lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    g_opt = torch.optim.Adam(generator.parameters(), **adam)
    d_opt = torch.optim.Adam(critic.parameters(), **adam)
    gamma = p["gp_target"]
    # n_critic real minibatches per iteration, uint8 at the final resolution as training feeds them.
    shape = (batch, p["channels"], final, final)
    reals_uint8 = [
        torch.randint(0, 256, shape, dtype=torch.uint8, device=device) for _ in range(args.n_critic)
    ]
    step = [0]

    def process_reals(images):
        x = images.float() / 127.5 - 1.0
        if factor > 1:  # the dataset's precomputed LOD: a box filter
            x = F.avg_pool2d(x, factor)
        if alpha is not None:  # FadeLOD: lerp(up2(down2(x)), x, alpha)
            x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2), x, alpha)
        return x.contiguous(memory_format=layout)

    def latents():
        return torch.randn(batch, p["z_dim"], device=device)

    def critic_loss(reals, fakes):
        """(WGAN loss + 10·GP + 0.001·drift, D(fakes)); the penalty w.r.t. the final resolution."""
        with torch_common.autocast(args):
            real_scores = critic(reals, res_log2, alpha).float()
            fake_scores = critic(fakes, res_log2, alpha).float()
        u = torch.rand(batch, 1, 1, 1, device=device)
        mixed = (reals + u * (fakes.detach() - reals)).requires_grad_(True)
        with torch_common.autocast(args):
            mixed_scores = critic(mixed, res_log2, alpha).float()
        (grad,) = torch.autograd.grad(mixed_scores.sum(), mixed, create_graph=True)
        grad = grad.float() / factor  # ∇ w.r.t. the nearest-upscaled x̂: ∇ w.r.t. x̂ / factor
        norm = torch.sqrt(grad.pow(2).sum(dim=(1, 2, 3)) + 1e-12)
        penalty = ((norm - gamma) ** 2).mean() / gamma**2
        loss = fake_scores.mean() - real_scores.mean() + 10.0 * penalty
        return loss + 0.001 * real_scores.pow(2).mean(), fake_scores

    def update_ema():
        """Gs <- lerp(G, Gs, β) with G before its update; β = min(0.999, (1+t)/(10+t)) warm-up."""
        t = step[0]
        beta = min(0.999, (1.0 + t) / (10.0 + t)) if p["ema_warmup"] else 0.999
        with torch.no_grad():
            for average, param in zip(ema, generator.parameters()):
                average.lerp_(param, 1.0 - beta)
        step[0] += 1

    def iteration():
        for images in reals_uint8:  # n_critic critic updates, each on fresh reals and fakes
            reals = process_reals(images)
            with torch.no_grad(), torch_common.autocast(args):
                fakes = generator(latents(), res_log2, alpha).float()
            d_loss, _ = critic_loss(reals, fakes)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
        update_ema()
        critic.requires_grad_(False)
        with torch_common.autocast(args):
            g_loss = -critic(generator(latents(), res_log2, alpha), res_log2, alpha).float().mean()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        critic.requires_grad_(True)

    def simultaneous_iteration():
        """Theano separate_funcs=False: G's loss -E D(fakes) from the critic loss's forward."""
        reals = process_reals(reals_uint8[0])
        with torch_common.autocast(args):
            fakes = generator(latents(), res_log2, alpha).float()
        d_loss, fake_scores = critic_loss(reals, fakes)
        g_params, d_params = list(generator.parameters()), list(critic.parameters())
        # Each loss differentiated w.r.t. its own network only (unused resolutions: None).
        g_grads = torch.autograd.grad(
            -fake_scores.mean(), g_params, retain_graph=True, allow_unused=True
        )
        d_grads = torch.autograd.grad(d_loss, d_params, allow_unused=True)
        update_ema()
        for params, grads in ((g_params, g_grads), (d_params, d_grads)):
            for q, g in zip(params, grads):
                q.grad = g
        g_opt.step()
        d_opt.step()

    run = simultaneous_iteration if p["simultaneous"] else iteration
    print(f"stage: {args.resolution}x{args.resolution} of {final}x{final}, alpha {alpha}")
    print(f"minibatch: {batch}, n_critic: {args.n_critic}, simultaneous: {p['simultaneous']}")
    torch_common.run(args, run, args.n_critic * batch, [generator], [critic], device)


if __name__ == "__main__":
    main()
