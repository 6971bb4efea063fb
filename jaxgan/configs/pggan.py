"""Progressive GAN (Karras et al. 2018): grow G and D from 4x4 to the final resolution.

  python -m jaxgan.main --config=pggan --workdir=runs/pggan              # mnist5k, CPU
  python -m jaxgan.main --config=pggan --workdir=runs/flat --config.progressive=False
  python -m jaxgan.main --config=pggan:cifar10 --workdir=runs/pggan_cifar10
  python -m jaxgan.main --config=pggan:celebahq --workdir=runs/celebahq
  python -m jaxgan.main --config=pggan:table1-g --workdir=runs/t1g     # Table 1 rows a-h, e_star
  python -m jaxgan.experiments pggan_table1 --workdir=runs/table1       # every row at CPU scale
  python -m jaxgan.interpolate --workdir=runs/pggan                                 # latent-walk GIF
  python -m jaxgan.evaluate --workdir=runs/pggan --metrics=swd                      # SWD per level

Presets (each in full, and the equal-time comparison without growing: docs/configs.md):
  default   mnist5k, grows 4 -> 8 -> 16 -> 32, narrow networks, 120 kimg. Expected: recognisable
            digits at 32x32; `resolutions/` holds one grid per resolution.
  lsgan     the default with the LSGAN loss and adaptive multiplicative D noise of App. B.
  cifar10   the Theano run of the paper's §6.5 (tfds:cifar10). Paper: IS 8.80 (unsupervised).
  celebahq  1024², TF preset v1-1gpu (tfds:celeb_a_hq/1024). Paper: FID 7.30 [unverified].
  lsun256   Theano LSUN (the paper's §6.4): 256², bedroom (tfds:lsun/bedroom).
  table1-X  X in a, b, c, d, e_star, e, f, g, h: Table 1's rows with the paper's letters (CelebA
            128², folder:data/celeba128); e_star is (e*), minibatch discrimination; h is (g) at
            the non-reduced widths and 20M images.
  smoke     tiny networks growing 4 -> 8 -> 16 in a few steps: for tests.

Ablation switches: --config.progressive=False (no growing: the '-nogrowing' preset),
--config.model.mbstd_group_size=0, --config.model.use_wscale=False, --config.model.use_pixelnorm=False,
--config.model.mbdisc_kernels=100 (minibatch discrimination).
Training length is `schedule.total_kimg` (thousands of real images shown); `max_minutes` stops a
run at a wall-time budget instead.
"""

import ml_collections

from jaxgan.configs import common


def get_config(preset: str = ""):
    c = common.base()
    c.method = "progressive"
    c.progressive = True  # False: train at the final resolution from the start (no growing)
    # Fields of the fixed-length GAN loop that the progressive loop replaces.
    for name in ("num_steps", "g_batch_size"):
        del c[name]
    del c.optim["decay"]
    for name in ("g_width", "d_width", "critic_norm"):
        del c.model[name]

    c.model.name = "progan"
    c.model.fmap_base = 8192  # nf(stage) = min(fmap_base / 2^(stage·fmap_decay), fmap_max)
    c.model.fmap_decay = 1.0
    c.model.fmap_max = 512
    c.model.z_dim = 512  # latent_size; N(0, 1) latents (z_dist 'normal')
    c.model.normalize_latents = True
    c.model.use_wscale = True  # equalized learning rate
    c.model.use_pixelnorm = True
    c.model.use_leakyrelu = True
    c.model.use_batchnorm = False  # G; Table 1 rows a-c
    c.model.use_layernorm = False  # D; Table 1 rows a-c
    c.model.tanh_output = False  # Table 1 rows a-c
    c.model.mbstd_group_size = 4  # 0: off; >= minibatch: the whole minibatch (Theano 'all')
    c.model.mbstd_per_device = False  # True: groups within each device's share (shard_map)
    c.model.downscale_before_activation = False  # D: TF fused_scale's order (imported pickles)
    c.model.mbdisc_kernels = 0  # > 0: Salimans et al. minibatch discrimination in D (Table 1 e*)
    c.model.ac_head = False  # AC-GAN: D predicts the label, G gets one-hot labels
    c.model.conditioning = "concat"  # G_paper: one-hot labels join the normalised latents
    c.ac_weight_d = 1.0  # PGGAN cond_weight: D on reals and fakes, G on fakes
    c.ac_weight_g = 1.0
    c.ac_on_fakes = True  # D_wgangp_acgan: the class loss on fakes too

    c.loss = "wasserstein"  # or 'pggan_lsgan' (App. B; set penalties={} with it)
    c.penalties = ml_collections.ConfigDict(
        {"wgan_gp": {"weight": 10.0, "target": 1.0}, "drift": {"weight": 0.001}}
    )
    # App. B: D noise strength coef·max(avg - limit, 0)^exponent, avg = EMA(β) of clip(D loss, 0, 1).
    c.lsgan_noise = ml_collections.ConfigDict(dict(coef=0.2, limit=0.5, exponent=2.0, beta=0.9))
    c.n_critic = 1  # D_repeats
    c.simultaneous_updates = False  # Theano separate_funcs=False: G and D from the same fakes
    c.batch_size = 16  # minibatch_base: the minibatch where the table has no entry
    c.optim = ml_collections.ConfigDict(dict(g_lr=1e-3, d_lr=1e-3, b1=0.0, b2=0.99, eps=1e-8))
    c.ema_decay = 0.999  # G_smoothing
    c.ema_warmup = False  # True: decay_t = min(decay, (1 + t)/(10 + t)) (short CPU runs only)

    c.schedule = ml_collections.ConfigDict()
    c.schedule.initial_resolution = 4  # lod_initial_resolution
    c.schedule.training_kimg = 600.0  # stabilise each resolution for this many kimg ...
    c.schedule.transition_kimg = 600.0  # ... then fade the next one in over this many
    c.schedule.total_kimg = 12000.0
    c.schedule.batch_by_resolution = ""  # 'res:minibatch,...' (minibatch_dict)
    c.schedule.lr_by_resolution = ""  # 'res:lr,...' for G and D (G_lrate_dict = D_lrate_dict)
    c.schedule.rampup_kimg = 0.0  # Theano lr ramp-up exp(-5(1 - kimg/rampup)²); 0: none
    c.schedule.reset_optimizer = True  # fresh Adam moments when floor or ceil of lod changes

    c.log_every = 50
    c.sample_every = 500
    c.checkpoint_every = 1000

    if preset in ("", "smoke", "lsgan"):
        _mnist(c)
        if preset == "lsgan":
            c.loss = "pggan_lsgan"
            c.penalties = ml_collections.ConfigDict()
        if preset == "smoke":
            _smoke(c)
    elif preset == "cifar10":
        _cifar10(c)
    elif preset == "celebahq":
        _celebahq(c)
    elif preset == "lsun256":
        _lsun256(c)
    elif preset.startswith("table1-"):
        _table1(c, preset[len("table1-") :])
    else:
        raise ValueError(
            f"Unknown pggan preset {preset!r}: use '', 'lsgan', 'cifar10', 'celebahq', 'lsun256', "
            f"'table1-a' ... 'table1-h', 'table1-e_star' or 'smoke'."
        )
    return c


def _mnist(c):
    """The offline default: 32x32 MNIST digits, sized for a short CPU run."""
    c.data.dataset = "mnist5k"
    c.data.resolution = 32
    c.model.fmap_base = 256  # channels 64 (4x4, 8x8), 32 (16x16), 16 (32x32)
    c.model.fmap_max = 64
    c.model.z_dim = 64  # latent_size = nf(0)
    c.batch_size = 32
    c.schedule.batch_by_resolution = "4:64,8:64,16:32,32:32"
    c.schedule.training_kimg = 15.0
    c.schedule.transition_kimg = 15.0
    c.schedule.total_kimg = 120.0  # 4, 8, 16: 30 kimg each; 32: 15 fading + 30 stable
    # ~3,500 steps: a plain 0.999 average would still hold ~3% of the random init at the end,
    # and ~60% at 500 steps; the warm-up makes the grids along the way show what G has learnt.
    c.ema_warmup = True


def _smoke(c):
    """4 -> 8 -> 16 in 11 steps of 8 images: per resolution 3 stable steps and 2 fading (tests)."""
    c.data.resolution = 16
    c.model.fmap_base = 32
    c.model.fmap_max = 16
    c.model.z_dim = 16
    c.batch_size = 8
    c.schedule.batch_by_resolution = ""
    c.schedule.training_kimg = 0.016  # lod is integer for kimg 0, 0.008, 0.016
    c.schedule.transition_kimg = 0.024  # and fractional at 0.024, 0.032 (lod 1.667, 1.333)
    c.schedule.total_kimg = 0.088
    c.log_every = c.sample_every = c.checkpoint_every = 1
    c.keep_last = 2
    c.num_samples = 16


def _cifar10(c):
    c.data.dataset = "tfds:cifar10"
    c.data.resolution = 32
    c.data.flip = False
    c.model.fmap_base = 4096
    c.model.fmap_max = 128
    c.model.z_dim = 128
    c.model.mbstd_group_size = 16  # Theano Tstdeps 'all': one statistic over the minibatch of 16
    c.batch_size = 16
    c.schedule.training_kimg = c.schedule.transition_kimg = 400.0
    c.schedule.total_kimg = 20000.0
    c.simultaneous_updates = True
    c.penalties.wgan_gp.target = 750.0  # iwass_target γ


def _celebahq(c):
    c.data.dataset = "tfds:celeb_a_hq/1024"
    c.data.resolution = 1024
    c.data.flip = True
    c.model.mbstd_group_size = 16
    c.batch_size = 16
    c.schedule.batch_by_resolution = "256:14,512:6,1024:3"
    c.schedule.training_kimg = c.schedule.transition_kimg = 800.0
    c.schedule.total_kimg = 19000.0
    c.log_every, c.sample_every, c.checkpoint_every = 500, 5000, 10000


def _lsun256(c):
    c.data.dataset = "tfds:lsun/bedroom"
    c.data.resolution = 256
    c.data.flip = False  # bedroom and dog: the full set, no mirror (the 100k subsets mirror)
    c.batch_size = 16
    c.model.mbstd_group_size = 16  # Theano Tstdeps 'all': one statistic over the minibatch of 16
    c.schedule.training_kimg = c.schedule.transition_kimg = 800.0
    c.schedule.total_kimg = 20000.0
    c.schedule.rampup_kimg = 40.0
    c.log_every, c.sample_every, c.checkpoint_every = 500, 5000, 10000


# The paper's Table 1 rows, each as Theano config.py's §6.1 `config_idx` builds it; (h), "a
# non-reduced network and longer training" (the paper's §6.1), has no config_idx: it is (g) at the
# full A.1 widths and twice the images. The '*' of (e*) is spelled '_star' on the command line.
TABLE1_CONFIG_IDX = {"a": 0, "b": 1, "c": 2, "d": 3, "e_star": 5, "e": 4, "f": 6, "g": 7, "h": 7}
TABLE1_ROWS = tuple(TABLE1_CONFIG_IDX)  # the paper's order: a, b, c, d, e*, e, f, g, h
MBDISC_KERNELS = 100  # Theano config.py (e*): `mbdisc_kernels=100`, 5 dimensions per kernel
# (h): the paper states no length; this is the longest Theano schedule at 800/800 kimg (§6.4 LSUN).
TABLE1_CONVERGED_KIMG = 20000.0


def _table1(c, row: str):
    """The paper's §6.1 row `row` (a, b, c, d, e_star, e, f, g, h) as Theano config.py builds it."""
    if row not in TABLE1_CONFIG_IDX:
        raise ValueError(
            f"Table 1 row {row!r}: use one of {', '.join(TABLE1_ROWS)} (table1-e_star is the "
            f"paper's (e*), minibatch discrimination)."
        )
    idx = TABLE1_CONFIG_IDX[row]
    c.data.dataset = "folder:data/celeba128"
    c.data.resolution = 128
    c.data.flip = True
    c.model.fmap_base = 2048  # App. A.2: the reduced network (32 fmaps in the last 3x3 conv)
    c.model.mbstd_group_size = 16  # Theano 'all' over the minibatch of 16 (rows e, f, g, h)
    c.batch_size = 16
    c.schedule.training_kimg = c.schedule.transition_kimg = 800.0
    c.schedule.total_kimg = 10000.0
    c.log_every, c.sample_every, c.checkpoint_every = 500, 5000, 10000
    if idx < 3:  # gulrajani-et-al-2017 ... small-minibatch
        c.n_critic = 5
        c.optim.b2 = 0.9
        c.batch_size = 64
        c.ema_decay = 0.999**20
        c.model.z_dim = 128
        c.model.normalize_latents = False
        c.model.use_leakyrelu = False
        c.model.use_batchnorm = True
        c.model.tanh_output = True
        c.model.use_layernorm = True
        c.penalties.drift.weight = 0.0
    if idx == 0:  # no growing
        c.progressive = False
    if idx == 2:  # small-minibatch
        c.batch_size = 16
        c.ema_decay = 0.999**5
    if idx < 4 or idx == 5:  # without minibatch stddev
        c.model.mbstd_group_size = 0
    if idx == 5:  # minibatch discrimination instead
        c.model.mbdisc_kernels = MBDISC_KERNELS
    if idx < 6:  # without equalized learning rate
        c.optim.g_lr = c.optim.d_lr = 1e-4
        c.model.use_wscale = False
    if idx < 7:  # without pixelwise normalisation
        c.model.use_pixelnorm = False
    if row == "h":  # converged: the non-reduced network (App. A.1's widths), trained longer
        c.model.fmap_base = 8192
        c.schedule.total_kimg = TABLE1_CONVERGED_KIMG
