"""CycleGAN (Zhu et al. 2017): unpaired translation between two image domains.

  python -m jaxgan.data.prepare emoji --out=data/emoji                  # the offline pair (npm)
  python -m jaxgan.main --config=cyclegan --workdir=runs/cyclegan
  python -m jaxgan.main --config=cyclegan:horse2zebra --workdir=runs/h2z \\
      --config.data.data_dir=~/tensorflow_datasets      # a prepared tfds cycle_gan/horse2zebra
  python -m jaxgan.main --config=cyclegan:smoke --workdir=/tmp/smoke     # tests

The reference (junyanz/pytorch-CycleGAN-and-pix2pix): ResNet
generators with instance norm, 70×70 PatchGAN critics, LSGAN, cycle λ 10 and identity 0.5·λ, a
50-image history pool, Adam(2e-4, 0.5, 0.999) constant for n epochs then linearly to 0 over n more,
batch 1. jaxgan/methods/cyclegan.py is the step, jaxgan/models/cyclegan.py the networks.

Presets:
  default      the emoji pair written by `jaxgan.data.prepare emoji` (Google -> Twitter style,
               2,979 + 2,979 train images, 64x64), a narrower generator (width 32, 6 blocks) and
               a shorter schedule for a CPU.
  horse2zebra  the paper's run: 256x256 crops of 286x286, 9 blocks, width 64, batch 1, 100 + 100
               epochs of max(|A|, |B|) = 1,334 iterations.
  smoke        a few steps at width 4 on 16x16 images: for tests (pass --config.data.dataset).
"""

import ml_collections

from jaxgan.configs import common

HORSE2ZEBRA_EPOCH = 1334  # max(|trainA|, |trainB|) = max(1,067 horses, 1,334 zebras)


def get_config(preset: str = ""):
    if preset not in ("", "horse2zebra", "smoke"):
        raise ValueError(f"Unknown cyclegan preset {preset!r}: use '', 'horse2zebra' or 'smoke'.")
    c = common.translation()
    c.method = "cyclegan"

    c.model = ml_collections.ConfigDict()
    c.model.name = "cyclegan"
    c.model.g_width = 32  # ngf
    c.model.d_width = 32  # ndf
    c.model.num_blocks = 6  # 6 at 128x128, 9 at 256x256 (the paper)
    c.model.d_layers = 3  # 3: the 70x70 PatchGAN

    c.gan_mode = "lsgan"  # lsgan | vanilla | wgangp (the GAN loss; no gradient penalty)
    c.gan_weight = 1.0  # both generators' adversarial terms (0: Table 4's "cycle alone")
    # Cycle weights: lambda_a the forward cycle G_B(G_A(A)) ~ A (the paper's F(G(x)) ~ x),
    # lambda_b the backward one G_A(G_B(B)) ~ B; each also scales one identity term.
    c.lambda_a = c.lambda_b = 10.0
    c.lambda_identity = 0.5  # identity weight, a fraction of the cycle weights (0: none)
    c.pool_size = 50
    c.optim = ml_collections.ConfigDict(dict(lr=2e-4, b1=0.5, b2=0.999, eps=1e-8))
    c.decay_steps = 0  # the last iterations, over which lr falls linearly to 0

    if preset == "":
        c.num_steps = 6000
        c.decay_steps = 3000
        c.sample_every = c.checkpoint_every = 1000
    elif preset == "horse2zebra":
        c.data.dataset = "tfds:cycle_gan/horse2zebra"
        c.data.resolution = 256
        c.model.g_width = c.model.d_width = 64
        c.model.num_blocks = 9
        c.num_steps = 200 * HORSE2ZEBRA_EPOCH
        c.decay_steps = 100 * HORSE2ZEBRA_EPOCH
        c.sample_every = c.checkpoint_every = 5 * HORSE2ZEBRA_EPOCH
    elif preset == "smoke":
        c.data.resolution = 16
        c.model.g_width = c.model.d_width = 4
        c.model.num_blocks = 1
        c.model.d_layers = 1
        c.pool_size = 3
        common.translation_smoke(c)
    return c
