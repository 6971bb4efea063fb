"""Throughput benchmarks. Each prints its result as the last line, `<name>: <number>`.

  python -m jaxgan.bench --config=configs/wgan_gp.py [--steps=20]   # train_img_per_s
  python -m jaxgan.bench --config=configs/cyclegan.py [--steps=20]  # train_img_per_s, translation
  python -m jaxgan.bench --features=mnist_cnn [--num_images=10000]  # features_img_per_s
  python -m jaxgan.bench --features=inception_v3 [--num_images=500 --image_size=32]
  python -m jaxgan.bench --conv                                     # conv formulations, ms/step
  python -m jaxgan.bench --data=prepared:DIR [--batch_size=64]       # data_img_per_s, host input
  JAXGAN_CONV_IMPL=patches python -m jaxgan.bench --config=...     # a whole step, one formulation

`--conv` times a gradient-penalty step of two small critics per formulation: the strided stack is
where patches win by far (367 vs 62 ms here). For stride-1 stacks isolated numbers vary by shape;
the rule in `layers.conv_impl` was chosen on whole train steps (width-32 ResNet WGAN-GP: 1,679 ms
with lax for stride-1 convolutions, 2,391 ms with patches everywhere, on this project's 2-core CPU).

Train throughput counts real images through the critics per second, timed over `--steps`
iterations after one compiled warm-up step (`compile_s`), on synthetic uint8 batches of the
config's shape (no data is opened; the input pipeline is measured by the training run's own img/s).
The method's step is the one `config.method` trains with: for a GAN (`train.py`) an iteration is
n_critic critic batches and one generator batch, steps · n_critic · batch_size images; for
translation (`cyclegan.py`, `nicegan.py`) it is both generators' and both critics' update on one
A and one B batch, steps · 2 · batch_size images, as `translation.Trainer.images_seen` counts.
`benchmarks/torch_wgan_gp.py` and `benchmarks/torch_cyclegan.py` time the same iterations in
PyTorch, printing the same last line. CycleGAN on this project's 2-core CPU (medians of 3, width
32, 6 blocks, batch 1): 12.1 img/s at 64² (PyTorch 13.3 NCHW, 14.1 channels_last), 3.3 at 128²
(PyTorch 4.9 / 4.6); the generator's last 7×7 conv (32 -> 3 channels on a reflection-padded input)
is XLA:CPU's slow case there, ~29 ms forward per application at 128².

Feature throughput is the evaluator's extraction as it runs (`classifier.make_predictor`,
`inception.make_feature_extractor`): `--num_images` random uint8 images (mnist_cnn: 32x32x1;
inception_v3: `--image_size` squared x 3, resized to 299 inside) in batches of `--batch_size`
(0: 500 / 50) sharded over `--num_devices` (0: all), host -> device copies and the copy back
included. One warm-up batch (compilation) is timed and printed apart; then `--repeats` passes over
all images, whose median is the last line and whose range is printed above it. Inception runs with
random weights of the right shapes (timing only: the real ones cannot be downloaded everywhere).
`benchmarks/torch_features.py` does the same extraction as pytorch-fid does, printing the same lines.
"""

from __future__ import annotations

import os
import time

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def bench_train(config, steps: int) -> dict:
    """One method's compiled train step on synthetic batches: the lines `--config` prints."""
    import jax

    from jaxgan import methods, parallel, train

    mesh = parallel.make_mesh(config.num_devices or None)
    if methods.get(config.method).translator is not None:
        step_fn, state, batch, images_per_step = translation_step(config, mesh)
    else:
        step_fn, state, batch, images_per_step = gan_step(config, mesh)
    # Every network of each side (G_A + G_B, D_A + D_B for translation), as the PyTorch twins
    # print them; counted before the timed steps donate the state.
    params = {side: train.count_params(state[side]) for side in ("g_params", "d_params")}
    compile_s, seconds = time_steps(step_fn, state, batch, steps)
    return {
        "devices": mesh.devices.size,
        "backend": jax.default_backend(),
        **params,
        "compile_s": compile_s,
        "step_ms": 1e3 * seconds / steps,
        "train_img_per_s": steps * images_per_step / seconds,
    }


def time_steps(step_fn, state, batch, steps: int) -> tuple[float, float]:
    """(compile_s, seconds): one warm-up step (compilation included), then `steps` timed steps on
    the same batch, each waited for only at the end (the steps chain through the donated state)."""
    import jax

    start = time.perf_counter()
    state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    return compile_s, time.perf_counter() - start


def gan_step(config, mesh) -> tuple:
    """(step_fn, state, batch, images per step) of `train.py`: n_critic real batches per step."""
    import numpy as np

    from jaxgan import data, parallel, train

    channels = config.data.channels or (1 if config.data.dataset == "mnist5k" else 3)
    num_classes = 10 if train.is_conditional(config) else 0
    shape = (config.data.resolution, config.data.resolution, channels)
    generator, critic = train.build_models(config, channels, num_classes)
    g_tx = train.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = train.make_optimizer(config, config.optim.d_lr, config.n_critic)
    state = train.create_state(config, generator, critic, g_tx, d_tx, shape, mesh)
    step_fn = train.make_train_step(config, generator, critic, g_tx, d_tx, num_classes, mesh)
    labels = np.random.default_rng(1).integers(
        0, max(num_classes, 1), (config.n_critic, config.batch_size), dtype=np.int32
    )
    batch = data.to_global(
        {
            "image": random_images(
                config.n_critic * config.batch_size, config.data.resolution, channels
            ).reshape(config.n_critic, config.batch_size, *shape),
            "label": labels,
        },
        parallel.sharded_on(mesh, 1),
    )
    return step_fn, state, batch, config.n_critic * config.batch_size


def translation_step(config, mesh) -> tuple:
    """(step_fn, state, batch, images per step) of a translation method (its module's `build`):
    one A and one B image per batch position, counted both, as `translation.Trainer.images_seen`
    does."""
    import importlib

    from jaxgan import data, methods, parallel

    model = importlib.import_module(methods.REGISTRY[config.method]).build(config, mesh)
    batch = data.to_global(
        {
            domain: random_images(
                config.batch_size, config.data.resolution, config.data.channels, seed
            )[None]
            for seed, domain in enumerate("AB")
        },
        parallel.sharded_on(mesh, 1),
    )
    return model.train_step, model.init_state(), batch, 2 * config.batch_size


def bench_conv() -> dict:
    """A GP critic step (3 stride-2 5×5 convs, and a stride-1 3×3 stack), per formulation."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxgan import penalties
    from jaxgan.models import layers

    rng = np.random.default_rng(0)
    results = {}
    for name, kernel, stride, depth in (("strided_5x5", 5, 2, 3), ("plain_3x3", 3, 1, 4)):
        shapes = [(kernel, kernel, 1 if i == 0 else 64, 64) for i in range(depth)]
        params = [jnp.asarray(rng.normal(size=s) * 0.05, jnp.float32) for s in shapes]
        reals = jnp.asarray(rng.normal(size=(64, 32, 32, 1)), jnp.float32)

        def critic(params, x):
            for w in params:
                x = jax.nn.leaky_relu(layers.conv2d(x, w, stride, "SAME"), 0.2)
            return jnp.mean(x, axis=(1, 2, 3))

        def loss(params, key):
            return penalties.wgan_gp(lambda x: critic(params, x), reals, 0.5 * reals, None, key)

        for impl in ("lax", "patches"):
            os.environ["JAXGAN_CONV_IMPL"] = impl
            step = jax.jit(jax.grad(loss))
            jax.block_until_ready(step(params, jax.random.key(0)))
            start = time.perf_counter()
            for i in range(5):
                grads = step(params, jax.random.key(i))
            jax.block_until_ready(grads)
            results[f"{name}_{impl}_ms"] = 1e3 * (time.perf_counter() - start) / 5
    os.environ.pop("JAXGAN_CONV_IMPL")
    return results


# name -> (default number of images, default batch size): batches are the evaluator's defaults
# (`features.load`); 10,000 digits are an evaluation's worth, 500 images a quick Inception run.
FEATURE_DEFAULTS = {"mnist_cnn": (10_000, 500), "inception_v3": (500, 50)}


def random_images(count: int, size: int, channels: int, seed: int = 0):
    """uint8 [count, size, size, channels], uniform: timing inputs (their values do not matter)."""
    import numpy as np

    return np.random.default_rng(seed).integers(
        0, 256, (count, size, size, channels), dtype=np.uint8
    )


def time_extraction(extract, images, batch_size: int, repeats: int) -> dict:
    """Times `extract(images)`: {"warmup_s": one batch, compile included; "img_per_s": per pass}.

    The warm-up batch compiles every program a pass uses (all batches share one shape); each of
    the `repeats` passes then extracts all images, results back on the host.
    """
    start = time.perf_counter()
    extract(images[:batch_size])
    warmup_s = time.perf_counter() - start
    img_per_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        extract(images)
        img_per_s.append(len(images) / (time.perf_counter() - start))
    return {"warmup_s": warmup_s, "img_per_s": img_per_s}


def feature_extractor(name: str, batch_size: int, mesh):
    """(extract, weights description) of feature network `name`, sharded over `mesh`."""
    if name == "mnist_cnn":
        from jaxgan.eval import features
        from jaxgan.models import classifier

        model = classifier.get("mnist_cnn")
        params, _ = classifier.load_params(features.mnist_cnn_weights_path(), model)
        extract = classifier.make_predictor(model, params, batch_size, mesh=mesh)
        return extract, "shipped weights (jaxgan/assets/mnist_cnn.npz)"
    from jaxgan.eval import inception

    extract = inception.make_feature_extractor(inception.random_params(0), batch_size, mesh=mesh)
    return extract, "random weights: timing only"


def bench_features(
    name: str, num_images: int, batch_size: int, image_size: int, repeats: int, num_devices: int
) -> dict:
    """The printed lines of `--features=name`: setup, warm-up and img/s (runs, range, median)."""
    import statistics

    import jax

    from jaxgan import parallel
    from jaxgan.eval import inception

    default_images, default_batch = FEATURE_DEFAULTS[name]
    num_images, batch_size = num_images or default_images, batch_size or default_batch
    size, channels = (32, 1) if name == "mnist_cnn" else (image_size, 3)
    mesh = parallel.make_mesh(num_devices or None)
    extract, weights = feature_extractor(name, batch_size, mesh)
    timing = time_extraction(
        extract, random_images(num_images, size, channels), batch_size, repeats
    )
    rates = timing["img_per_s"]
    return {
        "network": f"{name}, {weights}",
        "images": f"{num_images} x {size}x{size}x{channels} uint8",
        "batch_size": inception.sharded_batch_size(batch_size, mesh),
        "devices": f"{mesh.devices.size} ({jax.default_backend()})",
        "warmup_s": f"{timing['warmup_s']:.2f} (one batch, compilation included; not timed)",
        "img_per_s_runs": ", ".join(f"{r:.1f}" for r in rates),
        "features_img_per_s_range": f"{min(rates):.1f}-{max(rates):.1f}",
        "features_img_per_s": f"{statistics.median(rates):.1f}",
    }


def bench_data(dataset: str, resolution: int, batch_size: int, num_images: int) -> dict:
    """Host input throughput: `data.Batches` over `dataset` (the training stream: shuffled
    indices, fitted uint8 batches) for `num_images` images after one warm-up batch."""
    from jaxgan import data

    source = data.open_source(dataset, "train")
    shape = getattr(source, "images", None)
    resolution = resolution or (shape.shape[1] if shape is not None else 64)
    batches = data.Batches(source, batch_size, resolution, source.channels, seed=0)
    try:
        next(batches)
        start, seen = time.perf_counter(), 0
        while seen < num_images:
            seen += next(batches)["image"].shape[1]
        seconds = time.perf_counter() - start
    finally:
        batches.close()
    return {"images": seen, "resolution": resolution, "data_img_per_s": round(seen / seconds)}


def main(argv):
    del argv
    if FLAGS.data:
        result = bench_data(
            FLAGS.data, FLAGS.data_resolution, FLAGS.batch_size or 64, FLAGS.num_images or 50_000,
        )  # fmt: skip
        for name, value in result.items():
            print(f"{name}: {value}")
        return
    if FLAGS.features:
        if FLAGS.features not in FEATURE_DEFAULTS:
            raise app.UsageError(
                f"--features={FLAGS.features!r}: expected one of {', '.join(FEATURE_DEFAULTS)}."
            )
        result = bench_features(
            FLAGS.features,
            FLAGS.num_images,
            FLAGS.batch_size,
            FLAGS.image_size,
            FLAGS.repeats,
            FLAGS.num_devices,
        )
        for name, value in result.items():
            print(f"{name}: {value}")
        return
    if FLAGS.conv:
        for name, value in bench_conv().items():
            print(f"{name}: {value:.1f}")
        return
    if FLAGS.config is None:
        raise app.UsageError("Give --config=CONFIG (or --features=NETWORK, or --conv).")
    result = bench_train(FLAGS.config, FLAGS.steps)
    for name, value in result.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    if "conv" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    config_flags.DEFINE_config_file(
        "config", None, "A training config, e.g. configs/wgan_gp.py.", lock_config=True
    )
    flags.DEFINE_integer("steps", 20, "Timed generator iterations (after one warm-up step).")
    flags.DEFINE_string(
        "features", None, "Benchmark a feature network instead: mnist_cnn or inception_v3."
    )
    flags.DEFINE_integer("num_images", 0, "Images per timed pass (0: 10,000 / 500).")
    flags.DEFINE_integer(
        "batch_size", 0, "Feature batch size (0: 500 / 50), rounded up to the devices."
    )
    flags.DEFINE_integer("image_size", 32, "inception_v3 input height = width (resized to 299).")
    flags.DEFINE_integer("repeats", 5, "Timed passes over all images (median and range printed).")
    flags.DEFINE_integer("num_devices", 0, "Devices to shard feature batches over (0: all).")
    flags.DEFINE_bool(
        "conv", False, "Time the two convolution formulations on a WGAN-GP critic step."
    )
    flags.DEFINE_string(
        "data", None, "Time the input stream of a dataset string instead (e.g. prepared:DIR)."
    )
    flags.DEFINE_integer(
        "data_resolution", 0, "--data: batches' resolution (0: a prepared dataset's own, else 64)."
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
