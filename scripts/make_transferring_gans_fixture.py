"""Builds the fixture TF checkpoints that pin `jaxgan.transfer_convert` to the Transferring GANs release.

The released models (yaxingwang/Transferring-GANs, `transfer_model/{conditional,unconditional}/
{imagenet,places,celebA,bedroom}/wgan-gp.model`) are igul222's gan_64x64.py GoodGenerator /
GoodDiscriminator at DIM=64, saved by TF1's `tf.train.Saver`. They cannot be downloaded here, so
this script writes checkpoints with the same variable NAMES and the same shape STRUCTURE, small:

  DIM = 2 (widths 16, 16, 8, 4, 2 instead of 512, 512, 256, 128, 64) and a 16-D latent instead of
  the reference's hard-coded 128 (the converter reads both from the shapes), N_CLASSES = 10.

Names are made the way tflib makes them: `lib.param(name, value)` is a `tf.Variable(value,
name=name)`; Linear and Conv2D create theirs inside `tf.name_scope(layer)`, so a checkpoint key is
`<layer>/<layer>.W` (`.b`, `.Filters`, `.Biases`), while Batchnorm / cond_batchnorm / Layernorm
have no scope: `<layer>.offset`, `.scale` (plus the fused Batchnorm's never-updated
`.moving_mean`, `.moving_variance`). The graph is the reference's, written in its NCHW layout
(transfer_gan.py `GoodGenerator`, `GoodDiscriminator`, `ResidualBlock`, `UpsampleConv`,
`ConvMeanPool`, `MeanPoolConv`, `Normalize` in wgan-gp mode) with two changes that do not change
the numbers: TF's CPU conv2d only takes NHWC, so each conv is transposed around; and the fused
batch norm (training mode, float32 only) is written as moments + batch_normalization over
[0, 2, 3] with eps 1e-5, which is what it computes. The forward pass runs in float64.

Checked once against the reference's own code (not kept here): tflib from yaxingwang/Transferring-
GANs (run through 2to3, with `tensorflow` aliased to `tf.compat.v1`) and transfer_gan.py's model
functions up to `GeneratorAndDiscriminator()`, building G then D as its graph does, create exactly
these variable names and shapes (ACGAN True and False; there the latent is 128). And at DIM=64,
z 128 (this script with those two constants changed), the converted networks reproduce this
graph's outputs: G to 3e-8 (float32 storage), D and its AC head to 1e-14.

Writes tests/fixtures/transferring_gans/:
  unconditional/wgan-gp.model.{index,data-00000-of-00001}
      the parameters only, saved as transfer_gan.py restores them
      (`Saver(params_with_name('Generator') + params_with_name('Discriminator.'))`), under the
      release's prefix name.
  conditional/wgan-gp.model-4000.{index,data-00000-of-00001}, conditional/checkpoint
      ACGAN=True (per-class BN [10, C] in G, Discriminator.ACGANOutput), saved as a training
      script's `tf.train.Saver()` does: with both Adams' slots (`<var>/Adam`, `<var>/Adam_1`) and
      `beta{1,2}_power[_1]`, and a `checkpoint` file naming this script's temporary directory
      (released `checkpoint` files name their author's paths).
  {unconditional,conditional}/expected.npz
      tensor/<name>       every tensor of the checkpoint, as TF holds it
      z [2, 16] float32, labels [2] int32 (conditional)
      generator_output    [2, 3·64·64] float32: GoodGenerator(z[, labels]) flattened NCHW, as
                          the reference returns it
      critic_output       [2] float64: GoodDiscriminator(generator_output)
      critic_acgan_output [2, 10] float64 (conditional)
      dim, z_dim, n_classes
  tf2_dtypes/ckpt.{index,data-00000-of-00001}, tf2_dtypes/expected.npz
      a TF2 `tf.train.Checkpoint` of one variable per dtype (float16/32/64, bfloat16, int8/32/64,
      uint8, bool, a scalar, an empty tensor) and its object-graph string tensor

Recipe (TensorFlow stays out of jaxgan's dependencies):

    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0
    cd /work/main && /tmp/tfenv/bin/python scripts/make_transferring_gans_fixture.py

Seconds on 2 CPU cores; about 0.6 MB in all. Re-run (and commit the outputs) only when the
structure mirrored here changes.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import numpy as np
import tensorflow as tf

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "transferring_gans"
DIM, Z_DIM, N_CLASSES, N_PIXELS, BATCH, SEED = 2, 16, 10, 64, 2, 0
FACT = N_PIXELS // 16  # 4: the generator starts at 4x4, the critic ends there


class Reference:
    """GoodGenerator / GoodDiscriminator of transfer_gan.py (MODE='wgan-gp', BN_G=BN_D=True)."""

    def __init__(self, acgan: bool, rng: np.random.Generator):
        self.acgan, self.rng = acgan, rng
        self.params: dict[str, tf.Variable] = {}  # tflib's lib._params

    # --- tflib.param with seeded, distinct values ----------------------------------------------

    def param(self, name, value, trainable=True):
        if name not in self.params:
            self.params[name] = tf.compat.v1.Variable(
                value.astype(np.float32), name=name, trainable=trainable
            )
        return tf.cast(self.params[name], tf.float64)

    def uniform(self, stdev, shape):
        return self.rng.uniform(-stdev * np.sqrt(3), stdev * np.sqrt(3), shape)

    def small(self, shape, centre=0.0):  # biases, BN/LN offsets and scales: not their 0/1 init
        return centre + 0.1 * self.rng.standard_normal(shape)

    # --- tflib.ops ------------------------------------------------------------------------------

    def linear(self, name, n_in, n_out, x):
        with tf.compat.v1.name_scope(name):
            w = self.param(name + ".W", self.uniform(np.sqrt(2.0 / (n_in + n_out)), (n_in, n_out)))
            return tf.matmul(x, w) + self.param(name + ".b", self.small(n_out))

    def conv2d(self, name, n_in, n_out, k, x, he_init=True, biases=True):
        with tf.compat.v1.name_scope(name):
            fan_in, fan_out = n_in * k * k, n_out * k * k
            stdev = np.sqrt((4.0 if he_init else 2.0) / (fan_in + fan_out))
            filters = self.param(name + ".Filters", self.uniform(stdev, (k, k, n_in, n_out)))
            nhwc = tf.nn.conv2d(tf.transpose(x, [0, 2, 3, 1]), filters, 1, "SAME")
            y = tf.transpose(nhwc, [0, 3, 1, 2])  # the reference's data_format='NCHW' conv
            if biases:
                y = y + self.param(name + ".Biases", self.small(n_out))[None, :, None, None]
            return y

    def normalize(self, name, x, labels=None):
        c = x.shape[1]
        if name.startswith("Discriminator"):  # Layernorm(name, [1, 2, 3])
            mean, var = tf.nn.moments(x, [1, 2, 3], keepdims=True)
            offset = tf.reshape(self.param(name + ".offset", self.small(c)), [-1, 1, 1])
            scale = tf.reshape(self.param(name + ".scale", self.small(c, 1.0)), [-1, 1, 1])
            return tf.nn.batch_normalization(x, mean, var, offset, scale, 1e-5)
        mean, var = tf.nn.moments(x, [0, 2, 3], keepdims=True)
        if labels is not None and self.acgan:  # cond_batchnorm.Batchnorm, n_labels=N_CLASSES
            offset = tf.gather(self.param(name + ".offset", self.small((N_CLASSES, c))), labels)
            scale = tf.gather(self.param(name + ".scale", self.small((N_CLASSES, c), 1.0)), labels)
            offset, scale = offset[:, :, None, None], scale[:, :, None, None]
        else:  # batchnorm.Batchnorm(fused=True), is_training=None: batch statistics
            offset = self.param(name + ".offset", self.small(c))[None, :, None, None]
            scale = self.param(name + ".scale", self.small(c, 1.0))[None, :, None, None]
            self.param(name + ".moving_mean", np.zeros(c), trainable=False)
            self.param(name + ".moving_variance", np.ones(c), trainable=False)
        return tf.nn.batch_normalization(x, mean, var, offset, scale, 1e-5)

    # --- transfer_gan.py ------------------------------------------------------------------------

    @staticmethod
    def mean_pool(x):
        return (
            x[:, :, ::2, ::2] + x[:, :, 1::2, ::2] + x[:, :, ::2, 1::2] + x[:, :, 1::2, 1::2]
        ) / 4.0

    def upsample_conv(self, name, n_in, n_out, k, x, he_init=True, biases=True):
        x = tf.concat([x, x, x, x], axis=1)
        x = tf.transpose(tf.nn.depth_to_space(tf.transpose(x, [0, 2, 3, 1]), 2), [0, 3, 1, 2])
        return self.conv2d(name, n_in, n_out, k, x, he_init, biases)

    def residual_block(self, name, n_in, n_out, x, resample, labels=None):
        if resample == "down":
            shortcut = self.conv2d(name + ".Shortcut", n_in, n_out, 1, self.mean_pool(x), False)
        else:
            shortcut = self.upsample_conv(name + ".Shortcut", n_in, n_out, 1, x, False)
        h = tf.nn.relu(self.normalize(name + ".BN1", x, labels))
        if resample == "down":
            h = self.conv2d(name + ".Conv1", n_in, n_in, 3, h, biases=False)
            h = tf.nn.relu(self.normalize(name + ".BN2", h, labels))
            h = self.mean_pool(self.conv2d(name + ".Conv2", n_in, n_out, 3, h))
        else:
            h = self.upsample_conv(name + ".Conv1", n_in, n_out, 3, h, biases=False)
            h = tf.nn.relu(self.normalize(name + ".BN2", h, labels))
            h = self.conv2d(name + ".Conv2", n_out, n_out, 3, h)
        return shortcut + h

    def generator(self, z, labels):
        d = DIM
        x = self.linear("Generator.Input", Z_DIM, FACT * FACT * 8 * d, z)
        x = tf.reshape(x, [-1, 8 * d, FACT, FACT])  # NCHW: the columns are (channel, row, col)
        widths = (8 * d, 8 * d, 4 * d, 2 * d, d)
        for i in range(4):
            x = self.residual_block(
                f"Generator.Res{i + 1}", widths[i], widths[i + 1], x, "up", labels
            )
        x = tf.nn.relu(self.normalize("Generator.OutputN", x, labels))
        x = tf.tanh(self.conv2d("Generator.Output", d, 3, 3, x))
        return tf.reshape(x, [-1, 3 * N_PIXELS * N_PIXELS])

    def discriminator(self, images):
        d = DIM
        x = tf.reshape(images, [-1, 3, N_PIXELS, N_PIXELS])
        x = self.conv2d("Discriminator.Input", 3, d, 3, x, he_init=False)
        widths = (d, 2 * d, 4 * d, 8 * d, 8 * d)
        for i in range(4):
            x = self.residual_block(
                f"Discriminator.Res{i + 1}", widths[i], widths[i + 1], x, "down"
            )
        x = tf.reshape(x, [-1, FACT * FACT * 8 * d])  # NCHW flatten: (channel, row, col)
        score = tf.reshape(self.linear("Discriminator.Output", FACT * FACT * 8 * d, 1, x), [-1])
        if self.acgan:
            return score, self.linear(
                "Discriminator.ACGANOutput", FACT * FACT * 8 * d, N_CLASSES, x
            )
        return score, None


def build_and_save(acgan: bool) -> None:
    tf.compat.v1.reset_default_graph()
    rng = np.random.default_rng(SEED + int(acgan))
    z = rng.standard_normal((BATCH, Z_DIM)).astype(np.float32)
    labels = np.array([3, 7], np.int32)
    ref = Reference(acgan, rng)
    fakes = ref.generator(tf.constant(z, tf.float64), tf.constant(labels) if acgan else None)
    score, logits = ref.discriminator(fakes)
    directory = OUT / ("conditional" if acgan else "unconditional")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    g_vars = [v for n, v in ref.params.items() if "Generator" in n]
    d_vars = [v for n, v in ref.params.items() if "Discriminator." in n]
    if acgan:  # a training script's Saver(): Adam slots and beta powers too
        g_cost = -tf.reduce_mean(score)
        d_cost = tf.reduce_mean(score) + tf.reduce_mean(logits)
        tf.compat.v1.train.AdamOptimizer(1e-4, 0.0, 0.9).minimize(g_cost, var_list=g_vars)
        tf.compat.v1.train.AdamOptimizer(1e-4, 0.0, 0.9).minimize(d_cost, var_list=d_vars)
        saver = tf.compat.v1.train.Saver()
    else:  # exactly what transfer_gan.py restores
        saver = tf.compat.v1.train.Saver(g_vars + d_vars)
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        outputs = session.run({"g": fakes, "s": score, **({"l": logits} if acgan else {})})
        with tempfile.TemporaryDirectory() as tmp:
            if acgan:
                saver.save(
                    session, os.path.join(tmp, "wgan-gp.model"), 4000, write_meta_graph=False
                )
            else:
                saver.save(
                    session,
                    os.path.join(tmp, "wgan-gp.model"),
                    write_meta_graph=False,
                    write_state=False,
                )
            for name in os.listdir(tmp):
                shutil.copy(os.path.join(tmp, name), directory / name)
        prefix = str(directory / ("wgan-gp.model-4000" if acgan else "wgan-gp.model"))
        reader = tf.train.load_checkpoint(prefix)
        tensors = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    expected = {f"tensor/{n}": v for n, v in tensors.items()}
    expected.update(
        z=z,
        generator_output=outputs["g"].astype(np.float32),
        critic_output=outputs["s"],
        dim=DIM,
        z_dim=Z_DIM,
        n_classes=N_CLASSES if acgan else 0,
    )
    if acgan:
        expected.update(labels=labels, critic_acgan_output=outputs["l"])
    np.savez_compressed(directory / "expected.npz", **expected)
    print(f"{directory}: {len(tensors)} tensors")
    for name in sorted(tensors):
        print(f"  {name:70s} {tensors[name].dtype} {tensors[name].shape}")


def save_dtypes() -> None:
    """A TF2 object-based checkpoint (`tf.train.Checkpoint`) of every dtype the reader decodes,
    with its string tensor `_CHECKPOINTABLE_OBJECT_GRAPH`: the reader is not only for TF1 Savers."""
    rng = np.random.default_rng(SEED + 2)
    values = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f64": rng.standard_normal(4),
        "f16": rng.standard_normal(6).astype(np.float16),
        "i8": rng.integers(-128, 128, 5).astype(np.int8),
        "i32": rng.integers(-(2**31), 2**31, (2, 2)).astype(np.int32),
        "i64": rng.integers(-(2**62), 2**62, 3),
        "u8": rng.integers(0, 256, 7).astype(np.uint8),
        "flag": np.array([True, False, True]),
        "scalar": np.float32(2.5),
        "empty": np.zeros((0, 3), np.float32),
    }
    variables = {k: tf.Variable(v) for k, v in values.items()}
    variables["bf16"] = tf.Variable(tf.constant([1.5, -2.25, 3.0], tf.bfloat16))
    directory = OUT / "tf2_dtypes"
    shutil.rmtree(directory, ignore_errors=True)
    prefix = tf.train.Checkpoint(**variables).write(str(directory / "ckpt"))
    reader = tf.train.load_checkpoint(prefix)
    expected = {}
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, bytes) or value.dtype == object:  # strings: their bytes
            expected[f"string/{name}"] = np.frombuffer(np.asarray(value).item(), np.uint8)
        elif name.startswith("bf16/"):  # numpy has no bfloat16: its bit patterns
            expected[f"bfloat16_bits/{name}"] = value.view(np.uint16)
        else:
            expected[f"tensor/{name}"] = value
    np.savez_compressed(directory / "expected.npz", **expected)
    print(f"{directory}: {sorted(expected)}")


if __name__ == "__main__":
    save_dtypes()  # eager (TF2) first
    tf.compat.v1.disable_eager_execution()
    build_and_save(acgan=False)
    build_and_save(acgan=True)
