"""AC-GAN: WGAN-GP with an auxiliary-classifier critic and a class-conditional generator.

  python -m jaxgan.main --config=configs/acgan.py --workdir=runs/acgan              # mnist5k, CPU
  python -m jaxgan.main --config=configs/acgan.py:condbn --workdir=runs/acgan_bn    # "Cond BNorm"
  python -m jaxgan.main --config=configs/acgan.py:cifar10 --workdir=runs/acgan_c10  # the paper setup
  python -m jaxgan.main --config=configs/acgan.py:smoke --workdir=/tmp/smoke        # tests

The critic's class loss (cross-entropy) has weight 1 on real images and the generator's weight 0.1
on its fakes, as gan_cifar_resnet.py (ACGAN_SCALE=1, ACGAN_SCALE_G=0.1); the critic's fakes carry
the real batch's labels. The generator is conditioned by per-class BatchNorm ("Cond BNorm"), or by
a one-hot label joined to z ("Cond Concat" of Transferring GANs): `config.model.conditioning`.

Presets:
  default   mnist5k, the WGAN-GP default network (configs/wgan_gp.py) made conditional by Cond
            Concat, class-loss weight 1 for G, 4,100 generator iterations (~15 minutes on the
            2-core Zen 5 of README.md's "Speed"): one row of README.md's table, domain FID 3.7,
            GAN-train 94%, GAN-test 96% (two training seeds x three evaluation seeds). Why not
            the reference's Cond BNorm and 0.1: in a 1,400-step run of Adam(2e-4) with linear
            decay the per-class BN scales and offsets moved by ~0.02 (std across classes), and the
            generator ignored its labels: the shipped MNIST classifier agreed with them on 10.5%
            of 1,000 fakes, chance (`:condbn`, measured).
  condbn    the default with the reference's Cond BNorm and G class-loss weight 0.1.
  cifar10   gan_cifar_resnet.py with CONDITIONAL=ACGAN=True: ResNet width 128, 100k iterations,
            G batch 128, dequantised reals. Paper: IS 8.42 +- 0.10 (WGAN-GP Table 3).
  smoke     the 32x32 ResNet at width 8, 3 steps: for tests.
"""

from configs import wgan_gp


def get_config(preset: str = ""):
    base_preset = {"": "", "condbn": "", "cifar10": "cifar10", "smoke": "smoke"}
    if preset not in base_preset:
        raise ValueError(
            f"Unknown acgan preset {preset!r}: use '', 'condbn', 'cifar10' or 'smoke'."
        )
    c = wgan_gp.get_config(base_preset[preset])
    c.model.conditional_generator = True
    c.model.ac_head = True
    c.model.conditioning, c.ac_weight_d, c.ac_weight_g = "batchnorm", 1.0, 0.1
    if preset == "":  # mnist5k in CPU minutes: labels must take hold fast (see the docstring)
        c.model.conditioning, c.ac_weight_g = "concat", 1.0
        c.num_steps = 4100  # x 0.22 s (Zen 5) = the ~15 minutes each row of README's table gets
    return c
