"""Transferring GANs (Wang et al., ECCV 2018): train on little target data, from scratch or from a
pretrained GAN (`--config.init_from=SOURCE_WORKDIR`, jaxgan/training/transfer.py).

  sudo apt-get install dataset-fashion-mnist                                     # the target data
  python -m jaxgan.main --config=configs/transfer.py:source --workdir=runs/source    # mnist5k digits
  python -m jaxgan.main --config=configs/transfer.py --workdir=runs/scratch          # 1,000 targets
  python -m jaxgan.main --config=configs/transfer.py --workdir=runs/transfer --config.init_from=runs/source
  python -m jaxgan.main --config=configs/transfer.py:paper --workdir=runs/paper \\
      --config.data.dataset=folder:data/target64 --config.init_from=runs/converted   # the paper's setup

Presets:
  default   the target: Fashion-MNIST, 100 images of each class (`fashion_mnist:n=100`, 1,000 of
            the 60,000), 32x32, the WGAN-GP network of `configs/wgan_gp.py` (DCGAN-style, width 32,
            EMA G), 1,000 generator iterations. From scratch as it stands; with `init_from` it is
            the transfer run. `--config.data.dataset=fashion_mnist:n=10` or `fashion_mnist` change
            the target size (the paper's Table 2). From scratch on a 2-core CPU: 3.7 minutes,
            rough garments, domain FID (fashion_cnn, 50,000 fakes) 89.2.
  source    the source GAN: `configs/wgan_gp.py`'s default run on the mnist5k digits (2,400
            iterations); the same networks, so `init_from` maps every parameter.
  paper     `transfer_gan.py` (commit 0a4b23f): the 64x64 ResNet of gan_64x64.py (LayerNorm
            critic), Adam(1e-5, 0, 0.9) for G and D, constant, batch 16, n_critic 5, lambda 10,
            25,000 iterations; conditional runs (`--config.model.conditional_generator=True
            --config.model.ac_head=True`) weigh the AC loss 1 for both. Needs a folder of images
            (`data.dataset`) and a 64x64 source (a converted release: jaxgan.transfer_convert).
  conditional  the default target as an AC-GAN (the paper's Tables 6-7): `configs/acgan.py`'s
            default network (Cond Concat generator, AC head, class-loss weight 1 for G and D). From
            the unconditional source every shared parameter loads; the label rows of G's input
            kernel and the AC head start fresh (`init_from.txt` says `extended` / fresh).
  smoke     `configs/wgan_gp.py:smoke` on `mnist5k:n=2`: for tests.
"""

from configs import acgan, wgan_gp

PRESETS = ("", "source", "paper", "conditional", "smoke")


def conditional_fields() -> dict:
    """What makes a GAN of configs/wgan_gp.py the AC-GAN of the paper's Tables 6-7: the fields
    configs/acgan.py's default changes (conditional generator by Cond Concat, AC head, class-loss
    weights), flattened: `--config.<field>` values for any preset of the same network family."""
    from jaxgan.training import contract

    changes = contract.config_changes(wgan_gp.get_config("").to_dict(), acgan.get_config("").to_dict())
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
