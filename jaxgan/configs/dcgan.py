"""DCGAN (Radford et al. 2016), the architecture and hyper-parameters of pytorch/examples dcgan.

  python -m jaxgan.main --config=dcgan --workdir=runs/dcgan             # mnist5k, CPU
  python -m jaxgan.main --config=dcgan:celeba64 --workdir=runs/celeba   # the paper's faces setup
  python -m jaxgan.main --config=dcgan:smoke --workdir=/tmp/smoke       # tests

Hyper-parameters (all presets but smoke): non-saturating BCE loss, one critic step per generator
step, Adam(2e-4, 0.5, 0.999), no lr decay, batch 64 (the paper: 128), z ~ N(0, 1) of size 100,
N(0, 0.02) init, BatchNorm in both networks except the critic's first layer, no EMA (decay 0).

Presets:
  default   mnist5k at 32x32, ngf = ndf = 32. Expected: digits; its critic's features and latent
            space: docs/experiments.md (`jaxgan.experiments dcgan_features`, `jaxgan.interpolate`).
  ac        the DCGAN baseline of "How good is my GAN?" on mnist5k: per-class BatchNorm in G, an
            AC head on the critic, TF-GAN's AC-GAN loss (weight 1 for the critic, 0.1 for G), batch
            100, 10,600 steps. Expected (docs/experiments.md's table): clean digits (domain FID 4.0)
            that ignore their labels (GAN-test 10%, GAN-train 11%; docs/configs.md).
  cifar10_ac  the same on CIFAR-10 with ngf = ndf = 64, 50k iterations (the paper's command:
            gan_loss=classical, acgan_dw=1.0, acgan_gw=0.1, Adam(2e-4, 0.5, 0.999), batch 100).
  celeba64  64x64, ngf = ndf = 64, 25 epochs of a face folder (folder:data/celeba, aligned crops).
  cifar10   32x32, ngf = ndf = 64 on tfds:cifar10.
  smoke     tiny widths, 3 steps: for tests (ac_smoke: the same with the AC-GAN term).
"""

from jaxgan.configs import common

# Each preset: the preset its data and sizes come from, and whether it adds the AC-GAN term.
PRESETS = {
    "": ("", False),
    "smoke": ("smoke", False),
    "celeba64": ("celeba64", False),
    "cifar10": ("cifar10", False),
    "ac": ("", True),
    "cifar10_ac": ("cifar10", True),
    "ac_smoke": ("smoke", True),
}


def get_config(preset: str = ""):
    if preset not in PRESETS:
        raise ValueError(f"Unknown dcgan preset {preset!r}: use one of {sorted(PRESETS)}.")
    base_preset, ac = PRESETS[preset]
    c = common.base()
    c.model.name = "dcgan"
    c.model.z_dim = 100
    c.model.critic_norm = "batch"
    c.loss = "non_saturating"
    c.penalties = {}
    c.n_critic = 1
    c.optim.update(g_lr=2e-4, d_lr=2e-4, b1=0.5, b2=0.999, decay="constant")
    c.ema_decay = 0.0
    if base_preset in ("", "smoke"):
        c.data.dataset = "mnist5k"
        c.model.g_width = c.model.d_width = 32
        c.num_steps = 5000
        c.log_every = 100
        c.sample_every = c.checkpoint_every = c.keep_every = 500  # small: keep them all
    elif base_preset == "celeba64":
        c.data.dataset = "folder:data/celeba"
        c.data.resolution = 64
        c.model.g_width = c.model.d_width = 64
        c.num_steps = 80_000
    else:  # cifar10
        c.data.dataset = "tfds:cifar10"
        c.model.g_width = c.model.d_width = 64
        c.num_steps = 100_000
    if ac:  # "How good is my GAN?": gan_loss=classical, acgan_dw=1.0, acgan_gw=0.1, batch 100
        c.model.conditional_generator = True
        c.model.ac_head = True
        c.ac_weight_d, c.ac_weight_g, c.ac_on_fakes = 1.0, 0.1, True
        c.batch_size = c.g_batch_size = 100
        c.ema_decay = 0.999  # evaluated like the table's other rows: from the EMA generator
        # mnist5k: as long in wall time as the table's other rows (docs/experiments.md).
        c.num_steps = 50_000 if base_preset == "cifar10" else 10_600
        c.sample_every = c.checkpoint_every = c.keep_every = c.num_steps // 6
    if base_preset == "smoke":
        common.smoke(c)
    return c
