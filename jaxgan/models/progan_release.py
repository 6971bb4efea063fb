"""The released Progressive GAN network pickles, read into jaxgan's `progan` parameters.

tkarras/progressive_growing_of_gans released `karras2018iclr-*.pkl` (CelebA-HQ 1024², the LSUN
categories at 256², ...) and its training script writes `network-snapshot-*.pkl` in the same form:
a pickled tuple (G, D, Gs) of `tfutil.Network` objects, Gs being the moving average of G. Each
unpickles to the dict its `Network.__getstate__` returns:

  version 2, name, build_func_name ('G_paper' / 'D_paper'), static_kwargs (the build function's
  keyword arguments: num_channels, resolution, label_size, fmap_base, ... as given; the rest
  take `G_paper` / `D_paper`'s defaults), build_module_src (the networks.py source, never run
  here) and variables, a list of (name, numpy array): 'lod', '4x4/Dense/weight', '4x4/Dense/bias',
  '4x4/Conv/weight', '8x8/Conv0_up/weight' (or '8x8/Conv0' when fused_scale=False),
  '8x8/Conv1/weight', 'ToRGB_lod0/weight', ...; D's 'FromRGB_lod0', '16x16/Conv0',
  '16x16/Conv1_down' (or 'Conv1'), '4x4/Conv', '4x4/Dense0', '4x4/Dense1'.

The file is read by `jaxgan.core.restricted_pickle` (arrays and the network state only; no
TensorFlow, no code from the pickle). Every variable maps to one parameter of `progan.Generator` /
`progan.Critic` built from the returned config overrides, and every parameter is filled; anything
left over on either side is an error naming it, as is a shape that the kwargs do not imply.

Layouts (TF is NCHW; kernels are [kh, kw, in, out] cross-correlations like ours, and weights are
stored unscaled with `use_wscale`, the He constant applied at run time as our `runtime_scale`):
  - 4x4/Dense: its 16·nf(1) outputs are reshaped to [nf(1), 4, 4] (channel, row, col); ours to
    [4, 4, nf(1)]: columns permuted. Its bias is per channel (after the reshape): our '4x4/bias'.
  - Conv0_up (fused upscale2d_conv2d): a [3, 3, out, in] kernel used, padded and 2x2-summed, by a
    stride-2 transposed conv; that equals nearest-×2 then a 3x3 conv with the kernel flipped in
    both spatial axes and in/out swapped, which is our Conv0.
  - Conv1_down (fused conv2d_downscale2d): the 2x2-summed kernel / 4 at stride 2 equals the 3x3
    conv then a 2x2 box: the same kernel as our Conv1. But its bias and LReLU come after the box,
    where the separate form (and jaxgan's default) applies them before it: the overrides set
    `model.downscale_before_activation` to D's fused_scale, which builds TF's order.
  - 4x4/Dense0: its inputs are the flattened [nf(1), 4, 4] map (channel, row, col): rows permuted.
  - ToRGB_lod{k} / FromRGB_lod{k}: the layers of resolution 2^(R - k), ours by resolution.

Differences from G_paper / D_paper that change outputs, and what is done about them:
  - With labels (label_size > 0) and normalize_latents, G_paper pixel-normalises the latents and
    the labels together; jaxgan's generator (Theano's order) appends the labels after normalising.
    Refused (`ReleaseError`): no released network has labels.
  - pixelnorm_epsilon other than 1e-8 (the '-fp16' preset's 1e-4): refused.
  - dtype 'float16' (activations) is read: the weights are float32, and jaxgan computes in its
    own `compute_dtype`, so outputs differ by rounding only.
  - lod: the networks compute at their stored lod; jaxgan's sampler takes the lod from the run's
    checkpoint. `released_pickle_to_run_parts` refuses a lod other than 0 (a snapshot taken before
    the final resolution had faded in); `read_release` gives it for callers that handle it.
  - G at lod > 0 returns full-resolution images, nearest-upscaled; jaxgan's generator returns the
    stage's resolution (its eval sampler upscales them as G does). Fused and separate resampling,
    'linear' and 'recursive' structure compute the same function (the structure is ignored).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxgan.core import errors, npz_weights, restricted_pickle
from jaxgan.models import progan

RELEASE = "tkarras/progressive_growing_of_gans (karras2018iclr-*.pkl, network-snapshot-*.pkl)"

# G_paper's and D_paper's keyword defaults (networks.py), for the kwargs a pickle leaves out.
G_DEFAULTS: dict[str, Any] = dict(
    num_channels=1,
    resolution=32,
    label_size=0,
    fmap_base=8192,
    fmap_decay=1.0,
    fmap_max=512,
    latent_size=None,  # None: nf(0)
    normalize_latents=True,
    use_wscale=True,
    use_pixelnorm=True,
    pixelnorm_epsilon=1e-8,
    use_leakyrelu=True,
    dtype="float32",
    fused_scale=True,
    structure=None,
)
D_DEFAULTS: dict[str, Any] = dict(
    num_channels=1,
    resolution=32,
    label_size=0,
    fmap_base=8192,
    fmap_decay=1.0,
    fmap_max=512,
    use_wscale=True,
    mbstd_group_size=4,
    dtype="float32",
    fused_scale=True,
    structure=None,
)
# What both networks must agree on, since one jaxgan config builds both.
SHARED = (
    "num_channels",
    "resolution",
    "label_size",
    "fmap_base",
    "fmap_decay",
    "fmap_max",
    "use_wscale",
)


class ReleaseError(errors.UserError, ValueError):
    """A network pickle this importer cannot turn into a jaxgan run exactly."""


@dataclasses.dataclass(frozen=True)
class Release:
    """The three networks of a pickle: their kwargs (defaults filled in) and variables by name."""

    path: str
    g_kwargs: dict[str, Any]
    d_kwargs: dict[str, Any]
    variables: dict[str, dict[str, np.ndarray]]  # 'G', 'D', 'Gs' -> {TF name: array}

    @property
    def lod(self) -> float:
        """Gs's level of detail: 0 at the final resolution, 1.5 half-way into the previous fade."""
        return float(self.variables["Gs"].get("lod", 0.0))

    @property
    def resolution_log2(self) -> int:
        return progan.resolution_log2(self.g_kwargs["resolution"])

    def nf(self, stage: int) -> int:
        k = self.g_kwargs
        return progan.num_features(stage, k["fmap_base"], k["fmap_decay"], k["fmap_max"])

    @property
    def latent_size(self) -> int:
        size = self.g_kwargs["latent_size"]
        return self.nf(0) if size is None else int(size)


# ----------------------------------------------------------------------------------------------
# Reading the pickle.
# ----------------------------------------------------------------------------------------------


def _network_state(obj: Any, role: str, path: str) -> dict[str, Any]:
    if not isinstance(obj, restricted_pickle.NetworkState):
        raise ReleaseError(f"{path}: {role} is a {type(obj).__name__}, not a tfutil.Network.")
    state = obj.state
    if state.get("version") != 2:
        raise ReleaseError(
            f"{path}: {role} is a tfutil.Network of state version {state.get('version')!r}; this "
            f"importer reads version 2 (the TensorFlow release). A Theano-era pickle converts with "
            f"the release's legacy.py (misc.load_pkl, then pickle.dump)."
        )
    return state


def _kwargs(state: dict[str, Any], defaults: dict[str, Any], func: str, role: str, path: str):
    if state.get("build_func_name") != func:
        raise ReleaseError(
            f"{path}: {role} was built by {state.get('build_func_name')!r}; this importer maps "
            f"{RELEASE}'s {func} only."
        )
    given = dict(state.get("static_kwargs") or {})
    # Like the build function's **kwargs, a key it does not know is ignored.
    return {name: given.get(name, default) for name, default in defaults.items()}


def _variables(state: dict[str, Any], role: str, path: str) -> dict[str, np.ndarray]:
    out = {}
    for name, value in state.get("variables", []):
        if not isinstance(value, (np.ndarray, np.generic)):
            raise ReleaseError(f"{path}: {role} variable {name!r} is a {type(value).__name__}.")
        out[str(name)] = np.asarray(value)
    return out


def read_release(path: str | os.PathLike) -> Release:
    """The (G, D, Gs) of a released network pickle, read without running any of its code."""
    path = os.fspath(path)
    networks = restricted_pickle.load(path)
    if not (isinstance(networks, tuple) and len(networks) == 3):
        raise ReleaseError(
            f"{path}: expected a pickled tuple (G, D, Gs) of tfutil.Network, as {RELEASE} "
            f"writes; got a {type(networks).__name__}."
        )
    states = {
        role: _network_state(obj, role, path) for role, obj in zip(("G", "D", "Gs"), networks)
    }
    g_kwargs = _kwargs(states["G"], G_DEFAULTS, "G_paper", "G", path)
    gs_kwargs = _kwargs(states["Gs"], G_DEFAULTS, "G_paper", "Gs", path)
    d_kwargs = _kwargs(states["D"], D_DEFAULTS, "D_paper", "D", path)
    if gs_kwargs != g_kwargs:
        raise ReleaseError(
            f"{path}: Gs was built with other kwargs than G: {gs_kwargs} vs {g_kwargs}."
        )
    differ = [k for k in SHARED if g_kwargs[k] != d_kwargs[k]]
    if differ:
        raise ReleaseError(
            f"{path}: G and D differ in {', '.join(f'{k} ({g_kwargs[k]} vs {d_kwargs[k]})' for k in differ)}; "
            f"a jaxgan config builds both networks from one value of each."
        )
    variables = {role: _variables(state, role, path) for role, state in states.items()}
    return Release(path, g_kwargs, d_kwargs, variables)


# ----------------------------------------------------------------------------------------------
# Layouts: TF array -> ours.
# ----------------------------------------------------------------------------------------------


def same(w: np.ndarray) -> np.ndarray:
    return w


def dense_columns_nchw_to_nhwc(w: np.ndarray) -> np.ndarray:
    """G's 4x4/Dense [in, C·4·4] with columns (channel, row, col) -> [in, 4·4·C] (row, col, ch)."""
    return w.reshape(w.shape[0], -1, 4, 4).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def dense_rows_nchw_to_nhwc(w: np.ndarray) -> np.ndarray:
    """D's 4x4/Dense0 [C·4·4, out] with rows (channel, row, col) -> [4·4·C, out] (row, col, ch)."""
    return w.reshape(-1, 4, 4, w.shape[1]).transpose(1, 2, 0, 3).reshape(-1, w.shape[1])


def transposed_conv_to_conv(w: np.ndarray) -> np.ndarray:
    """upscale2d_conv2d's [3, 3, out, in] kernel -> the [3, 3, in, out] kernel of nearest-×2 then
    a SAME conv: both spatial axes flipped (a transposed conv is the conv's adjoint), in/out swapped."""
    return w[::-1, ::-1].transpose(0, 1, 3, 2)


Layout = Callable[[np.ndarray], np.ndarray]


def _layer(tf_name: str, ours: str, layout: Layout = same, bias: str | None = None):
    """(TF variable, our param path, layout) for a layer's weight and bias."""
    return [
        (f"{tf_name}/weight", f"{ours}/kernel", layout),
        (f"{tf_name}/bias", bias or f"{ours}/bias", same),
    ]


def generator_table(release: Release) -> list[tuple[str, str, Layout]]:
    """(TF name, our path, layout) for every parameter of G_paper, in the order it builds them."""
    final, fused = release.resolution_log2, release.g_kwargs["fused_scale"]
    rows = _layer("4x4/Dense", "4x4/Dense", dense_columns_nchw_to_nhwc, bias="4x4/bias")
    rows += _layer("4x4/Conv", "4x4/Conv")
    for r in range(2, final + 1):
        block = f"{2**r}x{2**r}"
        if r > 2:
            if fused:
                rows += _layer(f"{block}/Conv0_up", f"{block}/Conv0", transposed_conv_to_conv)
            else:
                rows += _layer(f"{block}/Conv0", f"{block}/Conv0")
            rows += _layer(f"{block}/Conv1", f"{block}/Conv1")
        rows += _layer(f"ToRGB_lod{final - r}", f"ToRGB_{block}")
    return rows


def critic_table(release: Release) -> list[tuple[str, str, Layout]]:
    """(TF name, our path, layout) for every parameter of D_paper, in the order it builds them."""
    final, fused = release.resolution_log2, release.d_kwargs["fused_scale"]
    rows = []
    for r in range(final, 1, -1):
        block = f"{2**r}x{2**r}"
        rows += _layer(f"FromRGB_lod{final - r}", f"FromRGB_{block}")
        if r > 2:
            rows += _layer(f"{block}/Conv0", f"{block}/Conv0")
            rows += _layer(f"{block}/Conv1_down" if fused else f"{block}/Conv1", f"{block}/Conv1")
    rows += _layer("4x4/Conv", "4x4/Conv")
    rows += _layer("4x4/Dense0", "4x4/Dense0", dense_rows_nchw_to_nhwc)
    rows += _layer("4x4/Dense1", "4x4/Dense1")
    return rows


# ----------------------------------------------------------------------------------------------
# The run's config and the parameters.
# ----------------------------------------------------------------------------------------------


def check_supported(release: Release) -> None:
    """Refuse what jaxgan's networks would compute differently (see the module docstring)."""
    g, path = release.g_kwargs, release.path
    if g["label_size"] and g["normalize_latents"]:
        raise ReleaseError(
            f"{path}: G_paper with label_size={g['label_size']} pixel-normalises its latents and "
            f"labels together, jaxgan's progressive generator the latents alone (then appends the "
            f"labels), so the outputs would differ; conditional PGGAN pickles are not imported."
        )
    if not math.isclose(float(g["pixelnorm_epsilon"]), 1e-8, rel_tol=1e-6):
        raise ReleaseError(
            f"{path}: G's pixelnorm_epsilon is {g['pixelnorm_epsilon']}; jaxgan's pixel norm uses "
            f"1e-8 (the release's default), so the outputs would differ."
        )


def config_overrides(release: Release) -> dict[str, Any]:
    """The `pggan` config fields ('model.fmap_base', ...) that build the pickle's networks."""
    g, d = release.g_kwargs, release.d_kwargs
    conditional = bool(g["label_size"])
    return {
        "data.resolution": int(g["resolution"]),
        "data.channels": int(g["num_channels"]),
        "model.fmap_base": int(g["fmap_base"]),
        "model.fmap_decay": float(g["fmap_decay"]),
        "model.fmap_max": int(g["fmap_max"]),
        "model.z_dim": release.latent_size,
        "model.normalize_latents": bool(g["normalize_latents"]),
        "model.use_wscale": bool(g["use_wscale"]),
        "model.use_pixelnorm": bool(g["use_pixelnorm"]),
        "model.use_leakyrelu": bool(g["use_leakyrelu"]),
        "model.use_batchnorm": False,
        "model.use_layernorm": False,
        "model.tanh_output": False,
        "model.mbstd_group_size": int(d["mbstd_group_size"]),
        "model.downscale_before_activation": bool(d["fused_scale"]),
        "model.conditional_generator": conditional,
        "model.ac_head": conditional,
    }


def build_networks(overrides: Mapping[str, Any], num_classes: int = 0):
    """The `progan.Generator` and `progan.Critic` that `config_overrides` describe (what
    `jaxgan.methods.progressive.build_models` builds from a config with those fields)."""
    m = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("model.")}
    widths = dict(fmap_base=m["fmap_base"], fmap_decay=m["fmap_decay"], fmap_max=m["fmap_max"])
    generator = progan.Generator(
        resolution=overrides["data.resolution"],
        channels=overrides["data.channels"],
        num_classes=num_classes if m["conditional_generator"] else 0,
        normalize_latents=m["normalize_latents"],
        use_wscale=m["use_wscale"],
        use_pixelnorm=m["use_pixelnorm"],
        use_leakyrelu=m["use_leakyrelu"],
        **widths,
    )
    critic = progan.Critic(
        resolution=overrides["data.resolution"],
        num_classes=num_classes if m["ac_head"] else 0,
        use_wscale=m["use_wscale"],
        mbstd_group_size=m["mbstd_group_size"],
        downscale_before_activation=m["downscale_before_activation"],
        **widths,
    )
    return generator, critic


def convert(
    variables: Mapping[str, np.ndarray],
    table: list[tuple[str, str, Layout]],
    expected: Mapping[str, tuple[int, ...]],
    role: str,
    path: str,
) -> dict[str, Any]:
    """One network's variables -> our nested params (float32), checked name by name and by shape
    against `expected` {our path: shape}; 'lod' is not a parameter."""
    rows = {tf_name: (ours, layout) for tf_name, ours, layout in table}
    unmapped = sorted(set(variables) - set(rows) - {"lod"})
    missing = sorted(set(rows) - set(variables))
    if unmapped or missing:
        raise ReleaseError(
            f"{path}: {role}'s variables do not match its kwargs' network: "
            f"not in the pickle {missing or 'none'}; not mapped {unmapped or 'none'}."
        )
    flat = {
        ours: layout(np.asarray(variables[tf], np.float32)) for tf, (ours, layout) in rows.items()
    }
    missing, unexpected, wrong = npz_weights.mismatches(flat, expected)
    if missing or unexpected or wrong:
        shapes = {k: (tuple(flat[k].shape), tuple(expected[k])) for k in wrong}
        raise ReleaseError(
            f"{path}: {role} does not fill jaxgan's network of the same kwargs: missing "
            f"{missing or 'none'}, unexpected {unexpected or 'none'}, shapes (ours from the pickle, "
            f"expected) {shapes or 'none'}."
        )
    return npz_weights.unflatten({k: np.ascontiguousarray(v) for k, v in flat.items()})


def _shapes(module, *args) -> dict[str, tuple[int, ...]]:
    tree = jax.eval_shape(module.init, jax.random.key(0), *args)["params"]
    return {k: tuple(v.shape) for k, v in npz_weights.flatten(tree).items()}


def released_pickle_to_run_parts(path: str | os.PathLike):
    """A released PGGAN pickle -> (config_overrides, generator_params, discriminator_params,
    ema_generator_params).

    config_overrides: {'data.resolution': R, 'data.channels': C, 'model.fmap_base': ..., ...},
    to set on `jaxgan.configs.pggan.get_config()`; the params are nested dicts of float32 arrays
    for `progan.Generator` (G, and Gs as the EMA generator) and `progan.Critic` (D) built from
    it. The networks are at lod 0 (the final resolution): the run's checkpoint meta gets lod 0.
    Raises `ReleaseError` (a `UserError`) naming the file for anything it cannot map exactly.
    """
    release = read_release(path)
    check_supported(release)
    lods = {role: float(v.get("lod", 0.0)) for role, v in release.variables.items()}
    if any(lods.values()):
        raise ReleaseError(
            f"{release.path}: the networks are at lod {lods} (0 is the final resolution, fully "
            f"faded in); only lod 0 networks are imported as a run."
        )
    overrides = config_overrides(release)
    labels = int(release.g_kwargs["label_size"])
    generator, critic = build_networks(overrides, labels)
    resolution, channels = overrides["data.resolution"], overrides["data.channels"]
    z = np.zeros((1, release.latent_size), np.float32)
    g_args = (z, np.zeros((1,), np.int32)) if labels else (z,)
    g_shapes = _shapes(generator, *g_args)
    # A batch the minibatch-stddev group divides.
    batch = max(1, int(overrides["model.mbstd_group_size"]))
    d_shapes = _shapes(critic, np.zeros((batch, resolution, resolution, channels), np.float32))
    g_table, d_table = generator_table(release), critic_table(release)
    v = release.variables
    return (
        overrides,
        convert(v["G"], g_table, g_shapes, "G", release.path),
        convert(v["D"], d_table, d_shapes, "D", release.path),
        convert(v["Gs"], g_table, g_shapes, "Gs", release.path),
    )
