"""Fields every GAN config has; each method's file starts from `base()` and changes what differs.

Override any field from the command line: `--config.optim.g_lr=1e-4 --config.data.dataset=folder:/x`.
The config is locked, so a misspelt field fails and names the nearest one.
"""

import ml_collections
from ml_collections import config_dict


def run() -> ml_collections.ConfigDict:
    """The fields the run loop reads (jaxgan/training/loop.py), whatever the method."""
    c = ml_collections.ConfigDict()
    c.method = "gan"  # a name of the registry, jaxgan/training/registry.py: gan | progressive | cyclegan | nicegan
    c.seed = 0
    c.num_steps = 100_000  # generator iterations
    c.max_minutes = 0.0  # > 0: stop (and checkpoint) after this much training wall time
    c.num_devices = 0  # 0: every device
    c.log_every = 100
    c.sample_every = 1000
    c.checkpoint_every = 1000
    c.keep_last = 3  # newest checkpoints kept ...
    c.keep_every = 0  # ... plus every step that is a multiple of this (0: none)
    c.tensorboard = True
    # A non-finite update is never saved; 'stop' ends the run (naming the step and a finite
    # checkpoint), 'skip' keeps the old state, counts it and goes on (as PGGAN's TF code does).
    c.nonfinite = "stop"
    # The networks' arithmetic in a train step: float32 | bfloat16 (activations bf16; parameters,
    # optimizer state, normalisation statistics and losses stay float32: jaxgan/core/precision.py).
    c.compute_dtype = "float32"
    # Start a fresh run from a pretrained one (Transferring GANs; jaxgan/training/transfer.py): WORKDIR[:STEP],
    # which networks ('g' with its EMA, 'd', or 'g,d'), and fnmatch patterns of parameter paths to
    # initialise fresh instead (e.g. 'd_params/Output/*').
    c.init_from = ""
    c.init_from_networks = "g,d"
    c.init_from_skip = ""
    return c


def translation() -> ml_collections.ConfigDict:
    """An unpaired translation config (cyclegan, nicegan): `run()` and the two-domain data."""
    c = run()
    c.data = ml_collections.ConfigDict()
    c.data.dataset = "folder:data/emoji"  # folder:PATH (trainA/ trainB/ testA/ testB/) | tfds:NAME
    c.data.data_dir = config_dict.placeholder(str)
    c.data.resolution = 64  # the crop size (resize_and_crop resizes to 286/256 of it first)
    c.data.channels = 3
    # How images become resolution² (the reference's --preprocess, jaxgan/data/two_domain.py):
    # resize_and_crop | crop | scale_width_and_crop | none ('scale_width' is refused there).
    c.data.preprocess = "resize_and_crop"
    c.batch_size = 1
    c.num_samples = 4  # test images of each domain in the sample grids
    return c


def translation_smoke(c: ml_collections.ConfigDict) -> None:
    """A translation config's `:smoke` schedule: 3 steps of batch 2, every cadence 1, for tests."""
    c.batch_size = 2
    c.num_steps = 3
    c.decay_steps = 2
    c.num_samples = 2
    c.log_every = c.sample_every = c.checkpoint_every = 1
    c.keep_last = 2


def base() -> ml_collections.ConfigDict:
    """A GAN config (methods gan and progressive): `run()` and the fields of generating from z."""
    c = run()

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "mnist5k"  # mnist5k | tfds:NAME[:SPLIT] | folder:PATH
    c.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir (default $TFDS_DATA_DIR)
    c.data.resolution = 32
    c.data.channels = 0  # 0: what the dataset has
    c.data.flip = False  # random horizontal mirror
    c.data.dequantize = False  # (x + U(0,1))/128 - 1, as gan_cifar_resnet.py

    c.model = ml_collections.ConfigDict()
    c.model.name = "resnet"  # resnet | dcgan
    c.model.g_width = 128
    c.model.d_width = 128
    c.model.z_dim = 128
    c.model.z_dist = "normal"  # normal | uniform
    c.model.critic_norm = "none"  # dcgan critic: batch | layer | none
    c.model.conditional_generator = False  # G sees the class label ...
    c.model.conditioning = "batchnorm"  # ... by per-class BatchNorm, or 'concat' (one-hot joins z)
    c.model.ac_head = False  # auxiliary classifier on the critic (AC-GAN)
    c.model.projection = False  # projection critic, <embed(y), phi(x)> (SNGAN; model 'sngan')

    c.loss = "wasserstein"  # wasserstein | non_saturating | hinge | least_squares
    # name -> {weight, and the penalty's keyword arguments}; see jaxgan/training/penalties.py.
    c.penalties = ml_collections.ConfigDict({"wgan_gp": {"weight": 10.0, "target": 1.0}})
    c.ac_weight_d = 1.0  # AC-GAN class loss weights (WGAN-GP: 1 on reals for D, 0.1 for G)
    c.ac_weight_g = 0.1
    c.ac_on_fakes = False  # also on fakes for D (TF-GAN's acgan loss, "How good is my GAN?")
    c.d_fake_labels = "real"  # labels of the critic's fakes: the real batch's, or 'uniform' (SNGAN)

    c.n_critic = 5
    c.batch_size = 64  # critic batch (global, over all devices)
    c.g_batch_size = 64  # generator batch (gan_cifar_resnet uses 2 x 64)
    c.optim = ml_collections.ConfigDict(
        dict(g_lr=2e-4, d_lr=2e-4, b1=0.0, b2=0.9, eps=1e-8, decay="linear")
    )  # decay: linear | constant
    c.ema_decay = 0.999  # generator EMA used for samples and evaluation (0: none)
    c.ema_warmup = True  # decay_t = min(decay, (1 + t) / (10 + t)), as tf.train's EMA

    # DiffAugment (jaxgan/training/augment.py) of every image the critic sees: '' (off) or a comma list of
    # color | translation | cutout, e.g. 'color,translation,cutout' (the paper's policy).
    c.diffaugment = ""
    c.d_freeze_blocks = (
        0  # FreezeD: the critic's first N blocks get no updates (jaxgan/methods/gan.py)
    )
    c.num_samples = 64  # images in each sample grid (fixed latents)
    # How the evaluated generator's BatchNorm layers normalise: 'batch' (each sampled batch's own
    # statistics, as tflib and PyTorch DCGAN sample) or 'population' (fixed statistics of
    # train.POPULATION_LATENTS latents, as chainer's SNGAN samples with running averages).
    c.eval_batchnorm = "batch"
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks a config to a few seconds of CPU: what the tests run."""
    c.model.g_width = c.model.d_width = 8
    c.model.z_dim = 16
    c.batch_size = c.g_batch_size = 8
    c.n_critic = min(c.n_critic, 2)  # the critic loop is unrolled: compile time grows with it
    c.num_steps = 3
    c.log_every = c.sample_every = c.checkpoint_every = 1
    c.keep_last = 2
    c.num_samples = 16
    return c
