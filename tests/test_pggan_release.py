"""PGGAN's released network pickles: the restricted unpickler and the mapping to jaxgan's networks.

Fixtures (scripts/make_pggan_pickle_fixture.py): pickles of the release's exact structure, a tuple
(G, D, Gs) of `tfutil.Network` states with random float32 weights, at 16x16 with fmap_base 32,
fmap_max 8 and a 12-D latent, in the two forms released networks come in (`tf_fused`: trained by
the TF code, fused up/down-sampling layers; `theano_converted`: legacy.py's conversion of a Theano
network, separate layers, one minibatch-stddev group), with the float64 outputs of the script's
numpy G_paper / D_paper at lods 0, 0.4 and 1.3.
"""

import io
import os
import pathlib
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.configs import pggan
from jaxgan.core import errors, restricted_pickle
from jaxgan.methods import progressive
from jaxgan.models import layers, progan_release

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "pggan_release"
KINDS = ("tf_fused", "theano_converted")


def _expected(kind: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / kind / "expected.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def imported():
    return {
        k: progan_release.released_pickle_to_run_parts(FIXTURES / k / "network.pkl") for k in KINDS
    }


# ----------------------------------------------------------------------------------------------
# The restricted unpickler.
# ----------------------------------------------------------------------------------------------


class _CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo this must not run",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize(
    "payload, name", [(_CallsSystem(), "system"), (_CallsEval(), "builtins.eval")]
)
def test_a_pickle_that_calls_a_function_is_refused_before_the_call(payload, name, capfd):
    data = pickle.dumps((np.zeros(2), payload))
    with pytest.raises(restricted_pickle.UnsafePickleError, match=name) as info:
        restricted_pickle.loads(data, source="evil.pkl")
    assert "evil.pkl" in str(info.value) and isinstance(info.value, errors.UserError)
    assert "must not run" not in capfd.readouterr().out
    assert pickle.loads(pickle.dumps(np.zeros(2))) is not None  # plain pickle still works


def test_arrays_scalars_and_ordered_dicts_load_bit_equal_in_every_protocol():
    from collections import OrderedDict

    value = OrderedDict(a=np.arange(6, dtype=np.float32).reshape(2, 3).T, b=np.float32(0.25))
    for protocol in range(3, pickle.HIGHEST_PROTOCOL + 1):  # 2 spells bytes via _codecs
        got = restricted_pickle.loads(pickle.dumps(value, protocol=protocol))
        assert list(got) == ["a", "b"] and got["a"].dtype == np.float32
        np.testing.assert_array_equal(got["a"], value["a"])
        assert got["b"] == np.float32(0.25) and got["b"].dtype == np.float32


def test_the_fixture_names_tfutil_network_and_numpy_1_modules_and_loads_as_state_dicts():
    data = (FIXTURES / "tf_fused" / "network.pkl").read_bytes()
    # What a 2018 release pickle asks for (protocol 4 spells module and name as two strings).
    for module, name in (("tfutil", "Network"), ("numpy.core.multiarray", "_reconstruct")):
        assert module.encode() in data and name.encode() in data
    networks = restricted_pickle.load(FIXTURES / "tf_fused" / "network.pkl")
    assert isinstance(networks, tuple) and len(networks) == 3
    for net, func in zip(networks, ("G_paper", "D_paper", "G_paper")):
        assert isinstance(net, restricted_pickle.NetworkState)
        assert net.state["version"] == 2 and net.state["build_func_name"] == func
        names = [name for name, _ in net.state["variables"]]
        assert names[0] == "lod" and all(
            isinstance(v, (np.ndarray, np.generic)) for _, v in net.state["variables"]
        )
    assert "8x8/Conv0_up/weight" in names and "16x16/Conv1_down/weight" not in names  # Gs
    assert "16x16/Conv1_down/weight" in dict(networks[1].state["variables"])  # D


# ----------------------------------------------------------------------------------------------
# The mapping: jaxgan's networks compute what G_paper and D_paper compute.
# ----------------------------------------------------------------------------------------------


def _as64(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


@pytest.mark.parametrize("kind", KINDS)
def test_the_config_overrides_build_the_networks_the_parameters_fill(imported, kind):
    overrides, g_params, d_params, ema_params = imported[kind]
    assert overrides["data.resolution"] == 16 and overrides["data.channels"] == 3
    assert overrides["model.z_dim"] == 12  # the kwargs' latent_size, not nf(0) = 8
    assert (overrides["model.fmap_base"], overrides["model.fmap_max"]) == (32, 8)
    assert overrides["model.mbstd_group_size"] == (4 if kind == "tf_fused" else 16)
    config = pggan.get_config()
    for field, value in overrides.items():
        section, name = field.split(".")
        assert name in config[section], field  # every override is a pggan config field
        config[section][name] = value
    generator, critic = progressive.build_models(config, 3, 0)
    key = jax.random.key(0)
    g_shapes = jax.eval_shape(generator.init, key, jnp.zeros((2, 12)))["params"]
    d_shapes = jax.eval_shape(critic.init, key, jnp.zeros((16, 16, 16, 3)))["params"]
    shape = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
    assert shape(g_params) == shape(g_shapes) == shape(ema_params)
    assert shape(d_params) == shape(d_shapes)
    # G and Gs are different networks in the pickle (Gs is G's moving average).
    assert not np.array_equal(
        g_params["4x4"]["Conv"]["kernel"], ema_params["4x4"]["Conv"]["kernel"]
    )


def _build(overrides):
    config = pggan.get_config()
    for field, value in overrides.items():
        section, name = field.split(".")
        config[section][name] = value
    return progressive.build_models(config, overrides["data.channels"], 0)


@pytest.mark.parametrize("kind", KINDS)
def test_generator_and_critic_equal_the_reference_in_float64_at_every_lod(imported, kind):
    """Gs and D at lod 0 (the final network), 0.4 (16x16 fading in) and 1.3 (8x8 fading in);
    G at lod 0. jaxgan's stage (res_log2, alpha) for a lod is progressive.stage_of/fade_alpha's."""
    overrides, g_params, d_params, ema_params = imported[kind]
    want = _expected(kind)
    generator, critic = _build(overrides)
    nchw = lambda x: np.transpose(np.asarray(x), (0, 3, 1, 2))
    with jax.enable_x64(True):
        z = jnp.asarray(want["z"])
        images = jnp.asarray(np.transpose(want["pixels"], (0, 2, 3, 1)) / 127.5 - 1.0)
        for i, lod in enumerate(want["lods"]):
            stage = progressive.stage_of(float(lod), 4, 2)
            alpha = progressive.fade_alpha(float(lod))
            run_g = lambda p: generator.apply(
                {"params": _as64(p)}, z, res_log2=stage.res_log2, alpha=alpha
            )
            got = nchw(run_g(ema_params))
            assert got.dtype == np.float64 and got.shape == want[f"g_images_lod{i}"].shape
            # The same float64 arithmetic in another order (sums of <= 9·8 products per conv,
            # ~12 layers): within ~1e-14 of values ~1 (measured 1.4e-14).
            np.testing.assert_allclose(got, want[f"g_images_lod{i}"], rtol=1e-10, atol=1e-12)
            stage_images = layers.downsample_mean(images, 2 ** (4 - stage.res_log2))
            scores, _ = critic.apply(
                {"params": _as64(d_params)}, stage_images, res_log2=stage.res_log2, alpha=alpha
            )
            np.testing.assert_allclose(
                np.asarray(scores), want[f"d_scores_lod{i}"], rtol=1e-10, atol=1e-12
            )
        got = nchw(generator.apply({"params": _as64(g_params)}, z))
        np.testing.assert_allclose(got, want["g_train_images"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_layout_would_be_caught(imported, kind):
    """The comparison above is sharp: G without the transposed-conv flip, D without the NCHW row
    permutation of Dense0, or the fused D with the separate form's order of box and activation,
    differ from the reference by far more than its tolerance."""
    overrides, _, d_params, ema_params = imported[kind]
    want = _expected(kind)
    generator, critic = _build(overrides)
    with jax.enable_x64(True):
        g_bad = jax.tree.map(np.copy, ema_params)
        g_bad["8x8"]["Conv0"]["kernel"] = g_bad["8x8"]["Conv0"]["kernel"][::-1, ::-1]
        got = np.transpose(
            np.asarray(generator.apply({"params": _as64(g_bad)}, jnp.asarray(want["z"]))),
            (0, 3, 1, 2),
        )
        assert np.abs(got - want["g_images_lod0"]).max() > 1e-3
        d_bad = jax.tree.map(np.copy, d_params)
        d_bad["4x4"]["Dense0"]["kernel"] = progan_release.dense_rows_nchw_to_nhwc(
            d_bad["4x4"]["Dense0"]["kernel"]
        )
        images = jnp.asarray(np.transpose(want["pixels"], (0, 2, 3, 1)) / 127.5 - 1.0)
        scores, _ = critic.apply({"params": _as64(d_bad)}, images)
        assert np.abs(np.asarray(scores) - want["d_scores_lod0"]).max() > 1e-3
        if kind == "tf_fused":  # and the fused D's order of box and activation matters
            _, separate = _build({**overrides, "model.downscale_before_activation": False})
            scores, _ = separate.apply({"params": _as64(d_params)}, images)
            assert np.abs(np.asarray(scores) - want["d_scores_lod0"]).max() > 1e-3


# ----------------------------------------------------------------------------------------------
# What is refused.
# ----------------------------------------------------------------------------------------------


def _rewritten(tmp_path, edit) -> str:
    """The tf_fused pickle with `edit(states)` applied to its three state dicts, re-pickled."""
    networks = restricted_pickle.load(FIXTURES / "tf_fused" / "network.pkl")
    states = [dict(n.state) for n in networks]
    edit(states)

    class Network:
        def __init__(self, state):
            self._state = state

        def __getstate__(self):
            return self._state

    Network.__module__, Network.__qualname__ = "tfutil", "Network"

    class Pickler(pickle._Pickler):
        def save_global(self, obj, name=None):
            if obj is Network:
                self.save("tfutil")
                self.save("Network")
                self.write(pickle.STACK_GLOBAL)
                self.memoize(obj)
                return
            super().save_global(obj, name)

    buffer = io.BytesIO()
    Pickler(buffer, protocol=4).dump(tuple(Network(s) for s in states))
    path = tmp_path / "edited.pkl"
    path.write_bytes(buffer.getvalue())
    return str(path)


def _set_kwarg(name, value, roles=(0, 2)):
    def edit(states):
        for i in roles:
            states[i]["static_kwargs"] = {**states[i]["static_kwargs"], name: value}

    return edit


def _set_lod(value):
    def edit(states):
        for s in states:
            s["variables"] = [
                (n, np.float32(value) if n == "lod" else v) for n, v in s["variables"]
            ]

    return edit


def _drop_variable(name):
    def edit(states):
        states[1]["variables"] = [(n, v) for n, v in states[1]["variables"] if n != name]

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set_kwarg("label_size", 4, roles=(0, 1, 2)), "pixel-normalises its latents and labels"),
        (_set_kwarg("pixelnorm_epsilon", 1e-4), "pixelnorm_epsilon"),
        (_set_lod(1.5), "lod"),
        (_drop_variable("4x4/Dense0/bias"), "4x4/Dense0/bias"),
        (_set_kwarg("fmap_max", 16, roles=(0, 2)), "G and D differ in fmap_max"),
        (_set_kwarg("latent_size", 10), "4x4/Dense/kernel"),
    ],
)
def test_what_would_compute_differently_is_refused_with_the_reason(tmp_path, edit, message):
    path = _rewritten(tmp_path, edit)
    with pytest.raises(progan_release.ReleaseError, match=message) as info:
        progan_release.released_pickle_to_run_parts(path)
    assert path in str(info.value)


def test_a_theano_era_pickle_and_another_build_function_are_refused(tmp_path):
    def theano(states):
        states[0].pop("version")

    with pytest.raises(progan_release.ReleaseError, match="legacy.py"):
        progan_release.read_release(_rewritten(tmp_path, theano))

    def other(states):
        states[1]["build_func_name"] = "D_patchgan"

    with pytest.raises(progan_release.ReleaseError, match="D_patchgan"):
        progan_release.read_release(_rewritten(tmp_path, other))
