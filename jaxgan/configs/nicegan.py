"""NICE-GAN (Chen et al. 2020): unpaired translation whose discriminators are the encoders.

  python -m jaxgan.data.prepare emoji --out=data/emoji                  # the offline pair (npm)
  python -m jaxgan.main --config=nicegan --workdir=runs/nicegan
  python -m jaxgan.main --config=nicegan:horse2zebra --workdir=runs/h2z \\
      --config.data.data_dir=~/tensorflow_datasets      # a prepared tfds cycle_gan/horse2zebra
  python -m jaxgan.main --config=nicegan:smoke --workdir=/tmp/smoke      # tests

The reference (alpc91/NICE-GAN-pytorch, `main.py`'s defaults):
one discriminator per domain whose first block (two stride-2 convs and a CAM block) is the encoder,
local (70×70) and global (286×286) patch heads, all spectrally normalised; decoder-only generators
with AdaILN residual blocks; LSGAN on three logits, cycle and reconstruction weights 10; D step
then G step, the encoder trained by the adversarial loss only; Adam(1e-4, 0.5, 0.999) with coupled
L2 weight decay 1e-4; constant lr, then linearly to 0 over the second half; batch 1; no image pool.
jaxgan/methods/nicegan.py is the step, jaxgan/models/nicegan.py the networks.

Presets (in full: docs/configs.md):
  default      the Google -> Twitter emoji at 64x64, width 32, 6 residual blocks, light,
               num_layers 6, as long in wall time as jaxgan/configs/cyclegan.py's default.
  horse2zebra  the code's defaults with --light True (NICE issue #18): 256x256, 300,000 iterations.
  cat2dog      the same on DRIT's cat <-> dog set (--config.data.dataset=folder:PATH).
  smoke        a few steps at width 2 on 48x48 images: for tests (pass --config.data.dataset).
"""

import ml_collections

from jaxgan.configs import common


def get_config(preset: str = ""):
    if preset not in ("", "horse2zebra", "cat2dog", "smoke"):
        raise ValueError(
            f"Unknown nicegan preset {preset!r}: use '', 'horse2zebra', 'cat2dog' or 'smoke'."
        )
    c = common.translation()
    c.method = "nicegan"

    c.model = ml_collections.ConfigDict()
    c.model.name = "nicegan"
    c.model.width = 32  # ch: ngf = ndf (the code has 2·width channels)
    c.model.num_blocks = 6  # n_res
    c.model.num_layers = 6  # n_dis: 7 at 96x96 and above (the reference's default)
    c.model.light = True  # the γ/β MLP on pooled features (the paper's); False: the flattened map

    c.adv_weight = 1.0
    c.cycle_weight = 10.0
    c.recon_weight = 10.0
    c.optim = ml_collections.ConfigDict(
        dict(lr=1e-4, b1=0.5, b2=0.999, eps=1e-8, weight_decay=1e-4)
    )
    c.decay_steps = 0  # the last iterations, over which lr falls linearly to 0 (half: the code's)

    if preset == "":
        c.num_steps = 3000  # an iteration costs 2.0x CycleGAN's here (jaxgan.bench, side by side)
        c.decay_steps = c.num_steps // 2
        c.sample_every = c.checkpoint_every = 500
    elif preset in ("horse2zebra", "cat2dog"):
        c.data.dataset = (
            "tfds:cycle_gan/horse2zebra" if preset == "horse2zebra" else "folder:data/cat2dog"
        )
        c.data.resolution = 256
        c.model.width = 64
        c.model.num_layers = 7
        c.num_steps = 300_000
        c.decay_steps = c.num_steps // 2
        c.log_every = 1000  # print_freq
        c.sample_every = c.checkpoint_every = 10_000
    elif preset == "smoke":
        c.data.resolution = 48
        c.model.width = 2
        c.model.num_blocks = 1
        common.translation_smoke(c)
    return c
