"""Transferring GANs (Wang et al., ECCV 2018): train on little target data, from scratch or from a
pretrained GAN (`--config.init_from=SOURCE_WORKDIR`, jaxgan/training/transfer.py).

  sudo apt-get install dataset-fashion-mnist                                     # the target data
  python -m jaxgan.main --config=transfer:source --workdir=runs/source    # mnist5k digits
  python -m jaxgan.main --config=transfer --workdir=runs/scratch          # 1,000 targets
  python -m jaxgan.main --config=transfer --workdir=runs/transfer --config.init_from=runs/source
  python -m jaxgan.main --config=transfer:paper --workdir=runs/paper \\
      --config.data.dataset=folder:data/target64 --config.init_from=runs/converted   # the paper's setup

Presets (in full: docs/configs.md):
  default      the target: Fashion-MNIST, 100 images of each class (`fashion_mnist:n=100`), 32x32,
               jaxgan/configs/wgan_gp.py's default network, 1,000 generator iterations; with `init_from`
               the transfer run. Expected from scratch: rough garments, domain FID 89.2.
  source       the source GAN: `jaxgan/configs/wgan_gp.py`'s default run on the mnist5k digits.
  paper        `transfer_gan.py` (commit 0a4b23f): the 64x64 ResNet of gan_64x64.py, 25,000
               iterations; needs an image folder and a converted source (jaxgan.transfer_convert).
  conditional  the default target as an AC-GAN (the paper's Tables 6-7), jaxgan/configs/acgan.py's network.
  smoke        `wgan_gp:smoke` on `mnist5k:n=2`: for tests.
"""

from jaxgan.configs import acgan, wgan_gp
from jaxgan.training import contract

PRESETS = ("", "source", "paper", "conditional", "smoke")


def conditional_fields() -> dict:
    """What makes a GAN of jaxgan/configs/wgan_gp.py the AC-GAN of the paper's Tables 6-7: the fields
    jaxgan/configs/acgan.py's default changes (conditional generator by Cond Concat, AC head, class-loss
    weights), flattened: `--config.<field>` values for any preset of the same network family."""
    changes = contract.config_changes(
        wgan_gp.get_config("").to_dict(), acgan.get_config("").to_dict()
    )
    return {field: new for field, (_, new) in changes.items()}


def get_config(preset: str = ""):
    if preset not in PRESETS:
        raise ValueError(
            f"Unknown transfer preset {preset!r}: use one of {', '.join(map(repr, PRESETS))}."
        )
    c = wgan_gp.get_config({"paper": "resnet64", "smoke": "smoke"}.get(preset, ""))
    if preset in ("", "conditional"):
        c.data.dataset = "fashion_mnist:n=100"
        c.num_steps = 1000
        c.sample_every = c.checkpoint_every = c.keep_every = 250
    if preset == "conditional":
        c.update_from_flattened_dict(conditional_fields())
    elif preset == "paper":
        c.optim.g_lr = c.optim.d_lr = 1e-5
        c.optim.decay = "constant"
        c.batch_size = c.g_batch_size = 16
        c.num_steps = 25_000
        c.ac_weight_d = c.ac_weight_g = 1.0  # ACGAN_SCALE = ACGAN_SCALE_G = 1
    elif preset == "smoke":
        c.data.dataset = "mnist5k:n=2"
    return c
