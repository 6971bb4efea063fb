"""DCGAN (Radford et al. 2016), the architecture and hyper-parameters of pytorch/examples dcgan.

  python -m jaxgan.main --config=configs/dcgan.py --workdir=runs/dcgan             # mnist5k, CPU
  python -m jaxgan.main --config=configs/dcgan.py:celeba64 --workdir=runs/celeba   # the paper's faces setup
  python -m jaxgan.main --config=configs/dcgan.py:smoke --workdir=/tmp/smoke       # tests

Hyper-parameters (all presets but smoke): non-saturating BCE loss, one critic step per generator
step, Adam(2e-4, 0.5, 0.999), no lr decay, batch 64 (the paper: 128), z ~ N(0, 1) of size 100,
N(0, 0.02) init, BatchNorm in both networks except the critic's first layer, no EMA (decay 0).

Presets:
  default   mnist5k at 32x32, ngf = ndf = 32. Expected: digits; README.md gives measured numbers.
  celeba64  64x64, ngf = ndf = 64, 25 epochs of a face folder (folder:data/celeba, aligned crops).
  cifar10   32x32, ngf = ndf = 64 on tfds:cifar10.
  smoke     tiny widths, 3 steps: for tests.
"""

from configs import common


def get_config(preset: str = ""):
    c = common.base()
    c.model.name = "dcgan"
    c.model.z_dim = 100
    c.model.critic_norm = "batch"
    c.loss = "non_saturating"
    c.penalties = {}
    c.n_critic = 1
    c.optim.update(g_lr=2e-4, d_lr=2e-4, b1=0.5, b2=0.999, decay="constant")
    c.ema_decay = 0.0
    if preset in ("", "smoke"):
        c.data.dataset = "mnist5k"
        c.model.g_width = c.model.d_width = 32
        c.num_steps = 5000
        c.log_every = 100
        c.sample_every = c.checkpoint_every = 500
        if preset == "smoke":
            common.smoke(c)
    elif preset == "celeba64":
        c.data.dataset = "folder:data/celeba"
        c.data.resolution = 64
        c.model.g_width = c.model.d_width = 64
        c.num_steps = 80_000
    elif preset == "cifar10":
        c.data.dataset = "tfds:cifar10"
        c.model.g_width = c.model.d_width = 64
        c.num_steps = 100_000
    else:
        raise ValueError(
            f"Unknown dcgan preset {preset!r}: use '', 'celeba64', 'cifar10' or 'smoke'."
        )
    return c
