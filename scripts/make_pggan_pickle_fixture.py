"""Builds the fixture network pickles that pin `jaxgan.models.progan_release` to PGGAN's release.

The released networks (tkarras/progressive_growing_of_gans, `karras2018iclr-*.pkl`) are pickled
tuples (G, D, Gs) of `tfutil.Network`, whose `__getstate__` is {version: 2, name, static_kwargs,
build_module_src, build_func_name, variables: [(name, numpy array), ...]}. They cannot be
downloaded here, so this script writes pickles of exactly that structure, small, with random
float32 weights (non-zero biases): a class named `Network` in a module named `tfutil` whose
`__getstate__` returns the state dict, pickled with protocol 4 (Python 3.6's highest, which the
release's `misc.save_pkl` used), numpy arrays and scalars named as numpy 1.x names them
(`numpy.core.multiarray._reconstruct`, `.scalar`). Loading one asks for `tfutil.Network` and sets
the same state dict. `build_module_src` holds a placeholder string, not networks.py.

Two pickles, for the two forms the release's networks come in:

  tf_fused/network.pkl     trained by the TensorFlow code: G_paper / D_paper defaults
                           (fused_scale=True: variables '8x8/Conv0_up', '16x16/Conv1_down'),
                           mbstd_group_size 4, lod first in the variable list, as
                           `Network._init_graph` collects them from the template graph.
  theano_converted/network.pkl
                           as the release's legacy.py converts a Theano network (the CelebA-HQ
                           and LSUN pickles): fused_scale=False ('8x8/Conv0', '16x16/Conv1'),
                           mbstd_group_size 16, the Theano spec's extra kwargs (ignored by the
                           build functions), lod last.

Both: resolution 16, 3 channels, fmap_base 32, fmap_max 8 (channels 8 at 4x4 and 8x8, 4 at
16x16), latent 12 (not nf(0), so it is read from the kwargs), label_size 0, use_wscale.

Beside each, expected.npz, computed in float64 by the numpy implementation of G_paper and D_paper
below (networks.py, read line by line: NCHW, its 'linear' structure, the fused layers as the
reference writes them — transposed conv of the padded, 2x2-summed kernel; stride-2 conv of the
summed kernel / 4 — all of it in float64, the He constants included):
  z [2, 12] float64 latents; pixels [8, 3, 16, 16] uint8, D's images = pixels / 127.5 - 1
  lods [3] = 0, 0.4, 1.3
  g_images_lod{i} [2, 3, s, s]  Gs(z) at lods[i]; G_paper returns it at 16x16, which at lod 1.3
                                is the 8x8 stage's image nearest-upscaled: s = 16, 16, 8
  d_scores_lod{i} [8]           D(images) at lods[i] (D_paper's scores_out)
  g_train_images [2, 3, 16, 16] G(z) at lod 0 (G's own weights, not Gs's)

Recipe: `python scripts/make_pggan_pickle_fixture.py` (numpy only; a second; ~100 KB in all).
Re-run, and commit the outputs, only when the structure mirrored here changes.
"""

from __future__ import annotations

import io
import pathlib
import pickle

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pggan_release"
RESOLUTION, CHANNELS, FMAP_BASE, FMAP_MAX, LATENT = 16, 3, 32, 8, 12
G_BATCH, D_BATCH = 2, 8  # D: two groups of 4 (tf_fused), one of 8 (theano_converted)
LODS = (0.0, 0.4, 1.3)
SQRT2 = np.sqrt(2.0)


# ----------------------------------------------------------------------------------------------
# The pickled structure.
# ----------------------------------------------------------------------------------------------


class Network:
    """Pickles as `tfutil.Network` does: its state is the `__getstate__` dict."""

    def __init__(self, state: dict):
        self._state = state

    def __getstate__(self):
        return self._state


Network.__module__, Network.__qualname__ = "tfutil", "Network"


def _numpy_core():
    try:
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    return multiarray


# The names a 2018 (numpy 1.x) pickle gives these objects; numpy 2 would write numpy._core.
RELEASE_NAMES = {
    id(_numpy_core()._reconstruct): ("numpy.core.multiarray", "_reconstruct"),
    id(_numpy_core().scalar): ("numpy.core.multiarray", "scalar"),
    id(Network): ("tfutil", "Network"),
}


class ReleasePickler(pickle._Pickler):  # the Python pickler: its save_global can be extended
    def save_global(self, obj, name=None):
        if id(obj) in RELEASE_NAMES:
            module, qualname = RELEASE_NAMES[id(obj)]
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps(obj) -> bytes:
    buffer = io.BytesIO()
    ReleasePickler(buffer, protocol=4).dump(obj)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# G_paper / D_paper in float64 numpy (networks.py), NCHW.
# ----------------------------------------------------------------------------------------------


def nf(stage, fmap_base=FMAP_BASE, fmap_decay=1.0, fmap_max=FMAP_MAX):
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def get_weight(v, name, gain=SQRT2, fan_in=None):
    """`get_weight` with use_wscale: the stored N(0, 1) weight × std = gain / sqrt(fan_in), in
    float64 (the graph rounds std to a float32 constant, like all its float32 arithmetic)."""
    w = v[f"{name}/weight"].astype(np.float64)
    if fan_in is None:
        fan_in = np.prod(w.shape[:-1])
    return w * (gain / np.sqrt(fan_in))


def apply_bias(x, v, name):
    b = v[f"{name}/bias"].astype(np.float64)
    return x + (b if x.ndim == 2 else b[None, :, None, None])


def leaky_relu(x):
    return np.maximum(x * 0.2, x)


def pixel_norm(x):
    return x / np.sqrt(np.mean(np.square(x), axis=1, keepdims=True) + 1e-8)


def _same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def conv2d(x, w, stride=1):
    """tf.nn.conv2d NCHW, SAME, w [kh, kw, in, out] (cross-correlation)."""
    n, c, h, _ = x.shape
    k = w.shape[0]
    out, before, after = _same_pads(h, k, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))
    y = np.zeros((n, w.shape[3], out, out))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i : i + stride * out : stride, j : j + stride * out : stride]
            y += np.einsum("nchw,co->nohw", patch, w[i, j])
    return y


def conv2d_transpose_stride2(x, w):
    """tf.nn.conv2d_transpose NCHW, SAME, stride 2, w [kh, kw, out, in]: the adjoint of the
    stride-2 conv of a 2H input, so input pixel i feeds output p = 2i + k - pad_before."""
    n, _, h, _ = x.shape
    k = w.shape[0]
    _, before, _ = _same_pads(2 * h, k, 2)
    y = np.zeros((n, w.shape[2], 2 * h + 2 * k, 2 * h + 2 * k))
    offset = k  # room for negative p
    for a in range(k):
        for b in range(k):
            contrib = np.einsum("nchw,oc->nohw", x, w[a, b])
            rows = offset + 2 * np.arange(h) + a - before
            cols = offset + 2 * np.arange(h) + b - before
            y[:, :, rows[:, None], cols[None, :]] += contrib
    return y[:, :, offset : offset + 2 * h, offset : offset + 2 * h]


def summed_kernel(w):
    """tf.pad(w, 1 in kh and kw) then the sum of its four 2x2-shifted views (networks.py)."""
    p = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return p[1:, 1:] + p[:-1, 1:] + p[1:, :-1] + p[:-1, :-1]


def upscale2d(x, factor=2):
    return x.repeat(factor, axis=2).repeat(factor, axis=3)


def downscale2d(x, factor=2):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def dense(x, w):
    return x.reshape(x.shape[0], -1) @ w


def lerp_clip(a, b, t):
    return a + (b - a) * np.clip(t, 0.0, 1.0)


def g_paper(v, latents, lod_in, fused):
    """G_paper's 'linear' structure (normalize_latents, use_pixelnorm, leaky ReLU, no labels)."""
    r_log2 = int(np.log2(RESOLUTION))
    act = lambda x: pixel_norm(leaky_relu(x))

    def block(x, res):
        s = f"{2**res}x{2**res}"
        if res == 2:
            x = pixel_norm(x)
            x = dense(x, get_weight(v, f"{s}/Dense", gain=SQRT2 / 4))
            x = act(apply_bias(x.reshape(-1, nf(res - 1), 4, 4), v, f"{s}/Dense"))
            return act(apply_bias(conv2d(x, get_weight(v, f"{s}/Conv")), v, f"{s}/Conv"))
        if fused:  # upscale2d_conv2d: fan_in = kernel² · C_in
            name = f"{s}/Conv0_up"
            w = get_weight(v, name, fan_in=9 * x.shape[1])
            x = act(apply_bias(conv2d_transpose_stride2(x, summed_kernel(w)), v, name))
        else:
            x = act(apply_bias(conv2d(upscale2d(x), get_weight(v, f"{s}/Conv0")), v, f"{s}/Conv0"))
        return act(apply_bias(conv2d(x, get_weight(v, f"{s}/Conv1")), v, f"{s}/Conv1"))

    def torgb(x, res):
        name = f"ToRGB_lod{r_log2 - res}"
        return apply_bias(conv2d(x, get_weight(v, name, gain=1.0)), v, name)

    x = block(latents, 2)
    images = torgb(x, 2)
    for res in range(3, r_log2 + 1):
        lod = r_log2 - res
        x = block(x, res)
        img = torgb(x, res)
        images = upscale2d(images)
        images = lerp_clip(img, images, lod_in - lod)
    return images


def minibatch_stddev(x, group_size):
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, c, h, w)
    y = y - y.mean(axis=0, keepdims=True)
    y = np.sqrt(np.mean(np.square(y), axis=0) + 1e-8)
    y = np.mean(y, axis=(1, 2, 3), keepdims=True)
    y = np.tile(y, [g, 1, h, w])
    return np.concatenate([x, y], axis=1)


def d_paper(v, images, lod_in, fused, mbstd_group_size):
    """D_paper's 'linear' structure; returns scores_out [N] (label_size 0)."""
    r_log2 = int(np.log2(RESOLUTION))

    def fromrgb(x, res):
        name = f"FromRGB_lod{r_log2 - res}"
        return leaky_relu(apply_bias(conv2d(x, get_weight(v, name)), v, name))

    def block(x, res):
        s = f"{2**res}x{2**res}"
        if res >= 3:
            x = leaky_relu(apply_bias(conv2d(x, get_weight(v, f"{s}/Conv0")), v, f"{s}/Conv0"))
            if fused:  # conv2d_downscale2d
                name = f"{s}/Conv1_down"
                w = summed_kernel(get_weight(v, name)) * 0.25
                return leaky_relu(apply_bias(conv2d(x, w, stride=2), v, name))
            x = leaky_relu(apply_bias(conv2d(x, get_weight(v, f"{s}/Conv1")), v, f"{s}/Conv1"))
            return downscale2d(x)
        if mbstd_group_size > 1:
            x = minibatch_stddev(x, mbstd_group_size)
        x = leaky_relu(apply_bias(conv2d(x, get_weight(v, f"{s}/Conv")), v, f"{s}/Conv"))
        x = leaky_relu(apply_bias(dense(x, get_weight(v, f"{s}/Dense0")), v, f"{s}/Dense0"))
        return apply_bias(dense(x, get_weight(v, f"{s}/Dense1", gain=1.0)), v, f"{s}/Dense1")

    img = images
    x = fromrgb(img, r_log2)
    for res in range(r_log2, 2, -1):
        lod = r_log2 - res
        x = block(x, res)
        img = downscale2d(img)
        y = fromrgb(img, res - 1)
        x = lerp_clip(x, y, lod_in - lod)
    return block(x, 2)[:, 0]


# ----------------------------------------------------------------------------------------------
# Variables: names and shapes as G_paper / D_paper create them, random values.
# ----------------------------------------------------------------------------------------------


def _layer(rng, name, shape):
    weight = rng.standard_normal(shape).astype(np.float32)  # N(0, 1): use_wscale
    if name == "4x4/Dense":  # G: the bias comes after the reshape to [nf(1), 4, 4]
        outputs = shape[-1] // 16
    elif name.endswith("/Conv0_up"):  # [k, k, out, in]
        outputs = shape[2]
    else:
        outputs = shape[-1]
    bias = (0.2 * rng.standard_normal(outputs)).astype(np.float32)  # non-zero, unlike at init
    return [(f"{name}/weight", weight), (f"{name}/bias", bias)]


def g_layers(fused):
    """(name, weight shape) in the order G_paper's template graph creates them."""
    r_log2 = int(np.log2(RESOLUTION))
    rows = [("4x4/Dense", (LATENT, nf(1) * 16)), ("4x4/Conv", (3, 3, nf(1), nf(1)))]
    rows.append((f"ToRGB_lod{r_log2 - 2}", (1, 1, nf(1), CHANNELS)))
    for res in range(3, r_log2 + 1):
        s, cin, cout = f"{2**res}x{2**res}", nf(res - 2), nf(res - 1)
        rows.append(
            (f"{s}/Conv0_up", (3, 3, cout, cin)) if fused else (f"{s}/Conv0", (3, 3, cin, cout))
        )
        rows.append((f"{s}/Conv1", (3, 3, cout, cout)))
        rows.append((f"ToRGB_lod{r_log2 - res}", (1, 1, cout, CHANNELS)))
    return rows


def d_layers(fused, mbstd):
    """(name, weight shape) in the order D_paper's template graph creates them."""
    r_log2 = int(np.log2(RESOLUTION))
    rows = [("FromRGB_lod0", (1, 1, CHANNELS, nf(r_log2 - 1)))]
    for res in range(r_log2, 2, -1):
        s = f"{2**res}x{2**res}"
        rows.append((f"{s}/Conv0", (3, 3, nf(res - 1), nf(res - 1))))
        rows.append(
            (f"{s}/Conv1_down" if fused else f"{s}/Conv1", (3, 3, nf(res - 1), nf(res - 2)))
        )
        rows.append((f"FromRGB_lod{r_log2 - res + 1}", (1, 1, CHANNELS, nf(res - 2))))
    cin = nf(1) + (1 if mbstd > 1 else 0)
    rows += [("4x4/Conv", (3, 3, cin, nf(1))), ("4x4/Dense0", (nf(1) * 16, nf(0)))]
    rows.append(("4x4/Dense1", (nf(0), 1)))
    return rows


def make_variables(rng, layers, lod_first):
    variables = [pair for name, shape in layers for pair in _layer(rng, name, shape)]
    lod = [("lod", np.float32(0.0))]
    return lod + variables if lod_first else variables + lod


# ----------------------------------------------------------------------------------------------
# The two pickles.
# ----------------------------------------------------------------------------------------------

PLACEHOLDER_SRC = "# networks.py source as the release stores it (not used by the importer)\n"


def make(kind: str, seed: int):
    fused = kind == "tf_fused"
    mbstd = 4 if fused else 16
    rng = np.random.default_rng(seed)
    common = dict(num_channels=CHANNELS, resolution=RESOLUTION, label_size=0)
    widths = dict(fmap_base=FMAP_BASE, fmap_max=FMAP_MAX)
    if (
        fused
    ):  # train.py: Network('G', num_channels=..., resolution=..., label_size=..., **config.G)
        g_kwargs = {**common, **widths, "latent_size": LATENT}
        d_kwargs = {**common, **widths}
        names = ("G", "D", "Gs")
    else:  # legacy.py patch_theano_gan: the Theano spec, less what it pops, + its two keys
        theano = dict(
            num_channels=CHANNELS, resolution=RESOLUTION, fmap_base=FMAP_BASE, fmap_max=FMAP_MAX
        )
        g_kwargs = {**theano, "latent_size": LATENT, "normalize_latents": True, "use_wscale": True,
                    "use_pixelnorm": True, "use_leakyrelu": True, "fused_scale": False,
                    "mbstd_group_size": 16}  # fmt: skip
        d_kwargs = {**theano, "use_wscale": True, "fused_scale": False, "mbstd_group_size": 16}
        names = ("G_paper", "D_paper", "G_paper")
    g_vars = make_variables(rng, g_layers(fused), lod_first=fused)
    gs_vars = make_variables(rng, g_layers(fused), lod_first=fused)
    d_vars = make_variables(rng, d_layers(fused, mbstd), lod_first=fused)

    def state(name, func, kwargs, variables):
        return {"version": 2, "name": name, "static_kwargs": kwargs,
                "build_module_src": PLACEHOLDER_SRC, "build_func_name": func,
                "variables": variables}  # fmt: skip

    networks = (
        Network(state(names[0], "G_paper", g_kwargs, g_vars)),
        Network(state(names[1], "D_paper", d_kwargs, d_vars)),
        Network(state(names[2], "G_paper", dict(g_kwargs), gs_vars)),
    )
    out = OUT / kind
    out.mkdir(parents=True, exist_ok=True)
    (out / "network.pkl").write_bytes(dumps(networks))

    inputs = np.random.default_rng(100 + seed)
    z = inputs.standard_normal((G_BATCH, LATENT))
    # uint8 images (as a dataset holds them), mapped to [-1, 1] as the release's drange_net.
    pixels = inputs.integers(0, 256, (D_BATCH, CHANNELS, RESOLUTION, RESOLUTION), np.uint8)
    images = pixels / 127.5 - 1.0
    g, gs, d = (dict(v) for v in (g_vars, gs_vars, d_vars))
    expected = {"z": z, "pixels": pixels, "lods": np.asarray(LODS)}
    for i, lod in enumerate(LODS):
        full = g_paper(gs, z, lod, fused)
        # At lod >= 1 G's output is its stage's image nearest-upscaled (up to the ulps of
        # lerp_clip's a + (b - a)·1): store the stage's pixels.
        factor = 2 ** int(np.floor(lod))
        stage = full[:, :, ::factor, ::factor]
        np.testing.assert_allclose(upscale2d(stage, factor), full, rtol=0, atol=1e-14)
        expected[f"g_images_lod{i}"] = stage
        expected[f"d_scores_lod{i}"] = d_paper(d, images, lod, fused, mbstd)
    expected["g_train_images"] = g_paper(g, z, 0.0, fused)
    np.savez_compressed(out / "expected.npz", **expected)
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(kind, sizes, {k: float(np.abs(v).mean()) for k, v in expected.items() if "lod" in k})


def main():
    make("tf_fused", seed=0)
    make("theano_converted", seed=1)


if __name__ == "__main__":
    main()
