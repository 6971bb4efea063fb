"""Throughput benchmarks. Each prints its result as the last line, `<name>: <number>`.

  python -m jaxgan.bench --config=configs/wgan_gp.py [--steps=20]   # train_img_per_s
  python -m jaxgan.bench --features=inception_v3 [--batch_size=50]  # features_img_per_s
  python -m jaxgan.bench --features=mnist_cnn [--batch_size=500]    # the evaluator's offline network
  python -m jaxgan.bench --conv                                     # conv formulations, ms/step
  JAXGAN_CONV_IMPL=patches python -m jaxgan.bench --config=...     # a whole step, one formulation

`--conv` times a gradient-penalty step of two small critics per formulation: the strided stack is
where patches win by far (367 vs 62 ms here). For stride-1 stacks isolated numbers vary by shape;
the rule in `layers.conv_impl` was chosen on whole train steps (width-32 ResNet WGAN-GP: 1,679 ms
with lax for stride-1 convolutions, 2,391 ms with patches everywhere, on this project's 2-core CPU).

Train throughput counts real images through the critic: steps · n_critic · batch_size / seconds,
timed over `--steps` generator iterations after one compiled warm-up step, on synthetic uint8
batches of the config's shape (the input pipeline is measured by the training run's own img/s).
"""

from __future__ import annotations

import os
import time

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def bench_train(config, steps: int) -> dict:
    import jax
    import numpy as np

    from jaxgan import data, parallel, train

    mesh = parallel.make_mesh(config.num_devices or None)
    channels = config.data.channels or (1 if config.data.dataset == "mnist5k" else 3)
    num_classes = 10 if train.is_conditional(config) else 0
    shape = (config.data.resolution, config.data.resolution, channels)
    generator, critic = train.build_models(config, channels, num_classes)
    g_tx = train.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = train.make_optimizer(config, config.optim.d_lr, config.n_critic)
    state = train.create_state(config, generator, critic, g_tx, d_tx, shape, mesh)
    step_fn = train.make_train_step(config, generator, critic, g_tx, d_tx, num_classes, mesh)
    rng = np.random.default_rng(0)
    batch = data.to_global(
        {
            "image": rng.integers(
                0, 256, (config.n_critic, config.batch_size, *shape), dtype=np.uint8
            ),
            "label": rng.integers(
                0, max(num_classes, 1), (config.n_critic, config.batch_size), dtype=np.int32
            ),
        },
        parallel.sharded_on(mesh, 1),
    )
    start = time.perf_counter()
    state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    return {
        "devices": mesh.devices.size,
        "backend": jax.default_backend(),
        "compile_s": compile_s,
        "step_ms": 1e3 * seconds / steps,
        "train_img_per_s": steps * config.n_critic * config.batch_size / seconds,
    }


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


def bench_features_mnist_cnn(batch_size: int, num_batches: int) -> float:
    """mnist_cnn feature extraction in images/second (shipped weights, random 32x32 uint8 digits).

    Times `num_batches` batches through `features.load("mnist_cnn", ...).extract` after one warm-up
    batch (compilation excluded), host -> device copy and the copy back included.
    """
    import numpy as np

    from jaxgan.eval import features

    network = features.load("mnist_cnn", 32, 1, batch_size)
    images = np.random.RandomState(0).randint(0, 256, (batch_size, 32, 32, 1), dtype=np.uint8)
    network.extract(images)
    start = time.perf_counter()
    for _ in range(num_batches):
        network.extract(images)
    return batch_size * num_batches / (time.perf_counter() - start)


def main(argv):
    del argv
    if FLAGS.features == "mnist_cnn":
        img_per_s = bench_features_mnist_cnn(FLAGS.batch_size, FLAGS.num_batches)
        print(f"features_img_per_s: {img_per_s:.1f}")
        return
    if FLAGS.features:
        if FLAGS.features != "inception_v3":
            raise app.UsageError(f"--features={FLAGS.features!r}: only inception_v3 is available.")
        from jaxgan.eval import inception

        img_per_s = inception.benchmark_features(FLAGS.batch_size, FLAGS.num_batches)
        print(f"features_img_per_s: {img_per_s:.1f}")
        return
    if FLAGS.conv:
        for name, value in bench_conv().items():
            print(f"{name}: {value:.1f}")
        return
    if FLAGS.config is None:
        raise app.UsageError("Give --config=CONFIG (or --features=inception_v3, or --conv).")
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
    flags.DEFINE_string("features", None, "Benchmark a feature network instead: inception_v3.")
    flags.DEFINE_integer("batch_size", 50, "Feature-extraction batch size.")
    flags.DEFINE_integer("num_batches", 10, "Timed feature-extraction batches.")
    flags.DEFINE_bool(
        "conv", False, "Time the two convolution formulations on a WGAN-GP critic step."
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
