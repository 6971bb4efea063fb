"""AC-GAN: WGAN-GP with an auxiliary-classifier critic and a class-conditional generator.

  python -m jaxgan.main --config=configs/acgan.py --workdir=runs/acgan              # mnist5k, CPU
  python -m jaxgan.main --config=configs/acgan.py:concat --workdir=runs/acgan_cat   # "Cond Concat"
  python -m jaxgan.main --config=configs/acgan.py:cifar10 --workdir=runs/acgan_c10  # the paper setup
  python -m jaxgan.main --config=configs/acgan.py:smoke --workdir=/tmp/smoke        # tests

The critic's class loss (cross-entropy) has weight 1 on real images and the generator's weight 0.1
on its fakes, as gan_cifar_resnet.py (ACGAN_SCALE=1, ACGAN_SCALE_G=0.1); the critic's fakes carry
the real batch's labels. The generator is conditioned by per-class BatchNorm ("Cond BNorm"), or by
a one-hot label joined to z (`:concat`, "Cond Concat" of Transferring GANs).

Presets:
  default   mnist5k, the WGAN-GP default network (configs/wgan_gp.py) made conditional,
            1,400 generator iterations: one row of README.md's "How good is my GAN?" table.
  concat    the same with Cond Concat.
  cifar10   gan_cifar_resnet.py with CONDITIONAL=ACGAN=True: ResNet width 128, 100k iterations,
            G batch 128, dequantised reals. Paper: IS 8.42 +- 0.10 (WGAN-GP Table 3).
  smoke     the 32x32 ResNet at width 8, 3 steps: for tests.
"""

from configs import wgan_gp


def get_config(preset: str = ""):
    base_preset = {"": "", "concat": "", "cifar10": "cifar10", "smoke": "smoke"}
    if preset not in base_preset:
        raise ValueError(
            f"Unknown acgan preset {preset!r}: use '', 'concat', 'cifar10' or 'smoke'."
        )
    c = wgan_gp.get_config(base_preset[preset])
    c.model.conditional_generator = True
    c.model.conditioning = "concat" if preset == "concat" else "batchnorm"
    c.model.ac_head = True
    c.ac_weight_d, c.ac_weight_g = 1.0, 0.1
    return c
