"""SNGAN with a projection discriminator (Miyato et al. 2018; Miyato & Koyama 2018).

  python -m jaxgan.main --config=sngan --workdir=runs/sngan              # mnist5k, CPU
  python -m jaxgan.main --config=sngan:cifar10 --workdir=runs/sngan_c10  # the paper setup
  python -m jaxgan.main --config=sngan:ndis1 --workdir=runs/sngan1       # digits
  python -m jaxgan.main --config=sngan:smoke --workdir=/tmp/smoke        # tests

pfnet-research/sngan_projection `configs/sn_cifar10_conditional.yml`: spectral normalisation of
every critic weight (one power iteration per critic update), the SN-ResNet projection critic, a
class-conditional-BatchNorm ResNet generator (sampled for evaluation with fixed BatchNorm
statistics, `eval_batchnorm='population'`, as chainer's running averages), hinge loss, n_dis 5,
Adam(2e-4, 0, 0.9) with linear decay to 0, batch 64 for the critic and 128 for the generator
(n_gen_samples), critic fakes with uniformly drawn labels. No gradient penalty.

Presets:
  default   mnist5k, width 16 (the paper: 256/128), 1,600 generator iterations. Expected: stroke-
            like shapes with labels ignored, not yet digits (docs/configs.md).
  ndis1     mnist5k, width 16, the paper's setting C for n_dis = 1 (Adam(2e-4, 0.5, 0.999)), 6,000
            generator iterations, Cond Concat labels. Expected (docs/experiments.md's table):
            domain FID 91 (62-121), GAN-train 26%, GAN-test 21%.
  cifar10   the paper: widths 256/128, 50k iterations. Reported: IS 8.62, FID 17.5 (cond. CIFAR-10,
            Miyato & Koyama 2018 Table 1), not yet reproduced with this code.
  smoke     widths 8, 3 steps: for tests.
"""

from jaxgan.configs import common


def get_config(preset: str = ""):
    c = common.base()
    c.model.name = "sngan"
    c.model.conditional_generator = True
    c.model.projection = True
    c.loss = "hinge"
    c.penalties = {}
    c.n_critic = 5
    c.optim.update(g_lr=2e-4, d_lr=2e-4, b1=0.0, b2=0.9, decay="linear")
    c.d_fake_labels = "uniform"
    c.g_batch_size = 128
    # sngan_projection's evaluation samples with chainer.using_config('train', False): its
    # generator's BatchNorm uses running averages, not each sample batch's statistics.
    c.eval_batchnorm = "population"
    if preset in ("", "smoke", "ndis1"):
        c.data.dataset = "mnist5k"
        # Width 16, so that 1,600 steps take the training wall time of the table's other rows
        # (docs/performance.md).
        c.model.g_width = c.model.d_width = 16
        c.num_steps = 1600
        c.log_every = 50
        c.sample_every = c.checkpoint_every = c.keep_every = 200  # small: keep them all
        if preset == "ndis1":
            c.n_critic = 1
            c.optim.update(b1=0.5, b2=0.999)
            c.model.conditioning = "concat"
            c.num_steps = 6000
            c.sample_every = c.checkpoint_every = c.keep_every = 1000
        if preset == "smoke":
            common.smoke(c)
            c.g_batch_size = 16
    elif preset == "cifar10":
        c.data.dataset = "tfds:cifar10"
        c.model.g_width, c.model.d_width = 256, 128
        c.num_steps = 50_000
        c.ema_decay = 0.0  # the reference samples from the trained generator itself
        c.data.dequantize = True  # datasets/cifar10.py::get_example: x/128 - 1 + U(0, 1/128)
    else:
        raise ValueError(f"Unknown sngan preset {preset!r}: use '', 'ndis1', 'cifar10' or 'smoke'.")
    return c
