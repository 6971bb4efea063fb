"""The Transferring GANs converter: TF checkpoint reader, name table, layouts, and `init_from`.

Fixtures (scripts/make_transferring_gans_fixture.py, written by real TensorFlow): the reference's
variable names and shape structure at DIM=2 with a 16-D latent, unconditional (parameters only,
prefix `wgan-gp.model`, as transfer_gan.py restores it) and conditional (a training Saver's file
with Adam slots, `wgan-gp.model-4000` and a `checkpoint` file naming another machine's directory),
each with every tensor and the reference network's float64 outputs in `expected.npz`.
"""

import os
import pathlib
import shutil

import jax
import numpy as np
import pytest
from conftest import restore_only_checkpoint

from jaxgan import transfer_convert
from jaxgan.core import errors, parallel, tf_checkpoint
from jaxgan.methods import gan
from jaxgan.training import loop, transfer

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "transferring_gans"
# The unconditional one by its prefix, the conditional one by its directory (`checkpoint` file).
SOURCES = {
    "unconditional": FIXTURES / "unconditional" / "wgan-gp.model",
    "conditional": FIXTURES / "conditional",
}
KINDS = sorted(SOURCES)


def _expected(kind: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / kind / "expected.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _tensors(kind: str) -> dict[str, np.ndarray]:
    return {k[len("tensor/") :]: v for k, v in _expected(kind).items() if k.startswith("tensor/")}


def _leaves(tree) -> dict[str, np.ndarray]:
    return {
        transfer.param_path(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)
    }


# ----------------------------------------------------------------------------------------------
# The reader.
# ----------------------------------------------------------------------------------------------


def test_crc32c_known_value_and_the_vectorised_path_agree_with_the_byte_loop():
    assert tf_checkpoint.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    data = np.random.default_rng(0).integers(0, 256, 5 * 1024 + 17, np.uint8).tobytes()
    assert tf_checkpoint.crc32c(data) == tf_checkpoint._advance(0xFFFFFFFF, data) ^ 0xFFFFFFFF


@pytest.mark.parametrize("kind", KINDS)
def test_the_reader_returns_every_tensor_bit_equal(kind):
    got, want = tf_checkpoint.read_checkpoint(str(SOURCES[kind])), _tensors(kind)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert got[name].tobytes() == value.tobytes(), name
    listed = tf_checkpoint.list_checkpoint(str(SOURCES[kind]))
    assert {n: s for n, (_, s) in listed.items()} == {n: v.shape for n, v in want.items()}


def test_the_reader_decodes_a_tf2_object_checkpoint_of_every_dtype():
    got = tf_checkpoint.read_checkpoint(str(FIXTURES / "tf2_dtypes" / "ckpt"))
    want = _expected("tf2_dtypes")
    assert sorted(got) == sorted(key.split("/", 1)[1] for key in want)
    for key, value in want.items():
        kind, name = key.split("/", 1)
        if kind == "tensor":
            assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
            assert got[name].tobytes() == value.tobytes(), name
        elif kind == "string":  # the object graph: a serialized proto in a scalar string tensor
            assert got[name].shape == () and got[name].item() == value.tobytes()
        else:
            assert kind == "bfloat16_bits" and got[name].dtype.name == "bfloat16"
            np.testing.assert_array_equal(got[name].view(np.uint16), value)


def test_a_prefix_its_index_and_its_directory_name_the_same_checkpoint():
    directory = FIXTURES / "conditional"
    # The `checkpoint` file names the machine that wrote it: the reader looks beside it instead.
    named = (directory / "checkpoint").read_text()
    assert 'model_checkpoint_path: "/' in named and str(directory) not in named
    prefix = str(directory / "wgan-gp.model-4000")
    assert tf_checkpoint.resolve_prefix(str(directory)) == prefix
    assert tf_checkpoint.resolve_prefix(prefix + ".index") == prefix
    assert tf_checkpoint.resolve_prefix(prefix) == prefix


def _copy(tmp_path, kind="unconditional") -> str:
    for f in (FIXTURES / kind).iterdir():
        shutil.copy(f, tmp_path / f.name)
    return str(tmp_path / "wgan-gp.model")


def test_missing_truncated_and_damaged_files_fail_naming_what(tmp_path):
    with pytest.raises(tf_checkpoint.CheckpointFilesMissing, match=r"nowhere\.index does not"):
        tf_checkpoint.read_checkpoint(str(tmp_path / "nowhere"))
    prefix = _copy(tmp_path)
    data = prefix + ".data-00000-of-00001"
    raw = open(data, "rb").read()
    os.remove(data)
    with pytest.raises(
        tf_checkpoint.CheckpointFilesMissing, match=r"missing .*data-00000-of-00001"
    ):
        tf_checkpoint.read_checkpoint(prefix)
    open(data, "wb").write(raw[: len(raw) // 2])
    with pytest.raises(tf_checkpoint.CorruptCheckpoint, match=r"tensor '.*' .*\(truncated\)"):
        tf_checkpoint.read_checkpoint(prefix)
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0x01
    open(data, "wb").write(bytes(damaged))
    with pytest.raises(tf_checkpoint.CorruptCheckpoint, match=r"tensor '.*' .*crc32c"):
        tf_checkpoint.read_checkpoint(prefix)
    index = open(prefix + ".index", "rb").read()
    open(prefix + ".index", "wb").write(index[:-10])
    with pytest.raises(tf_checkpoint.CorruptCheckpoint, match=r"not a TensorFlow checkpoint index"):
        tf_checkpoint.read_checkpoint(prefix)
    v1 = tmp_path / "v1.ckpt"
    v1.write_bytes(b"\0" * 64)
    with pytest.raises(tf_checkpoint.CorruptCheckpoint, match=r"V1 checkpoint"):
        tf_checkpoint.read_checkpoint(str(v1))


# ----------------------------------------------------------------------------------------------
# The converter.
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """kind -> (workdir, restored state, meta, config dict): each fixture converted once."""
    runs = {}
    for kind in KINDS:
        workdir = str(tmp_path_factory.mktemp(f"converted_{kind}"))
        transfer_convert.convert(str(SOURCES[kind]), workdir)
        state, meta = restore_only_checkpoint(workdir, 0)
        runs[kind] = workdir, state, meta
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_reference_tensor_lands_on_one_parameter_after_its_layout_change(converted, kind):
    workdir, state, meta = converted[kind]
    want, conditional = _tensors(kind), kind == "conditional"
    table = transfer_convert.mapping(conditional)
    ours = {f"{e}/{p}": v for e in ("g_params", "d_params") for p, v in _leaves(state[e]).items()}
    assert sorted(p for _, p, _ in table) == sorted(ours)  # one to one, nothing left fresh
    for ref, path, layout in table:
        np.testing.assert_array_equal(
            ours[path], transfer_convert.LAYOUTS[layout](want[ref]), err_msg=f"{ref} -> {path}"
        )
    for path, value in _leaves(state["g_params"]).items():
        np.testing.assert_array_equal(_leaves(state["ema_params"])[path], value)
    left = sorted(set(want) - {ref for ref, _, _ in table})
    assert left and all(transfer_convert.IGNORED.fullmatch(n) for n in left)
    if conditional:  # what a training Saver adds, and the per-class BN / AC head shapes
        assert any(n.endswith("/Adam_1") for n in left) and "beta1_power" in left
        assert ours["g_params/Res1/Norm1/scale"].shape == (10, 16)
        assert ours["d_params/ACGANOutput/kernel"].shape == (4 * 4 * 16, 10)
    else:
        assert "Generator.Res1.BN1.moving_mean" in left
    # The permutations, element by element: the reference's (channel, row, col) is our (row, col,
    # channel); at DIM=2 the 4x4 maps have C = 16 channels.
    w_in = want["Generator.Input/Generator.Input.W"]
    w_out = want["Discriminator.Output/Discriminator.Output.W"]
    for c, h, w in [(0, 0, 1), (5, 2, 3), (15, 3, 0)]:
        ref_index, our_index = c * 16 + h * 4 + w, (h * 4 + w) * 16 + c
        assert ours["g_params/Input/kernel"][3, our_index] == w_in[3, ref_index]
        assert ours["d_params/Output/kernel"][our_index, 0] == w_out[ref_index, 0]
    config = meta["config"]
    assert (config["model"]["g_width"], config["model"]["z_dim"]) == (2, 16)
    assert config["model"]["conditional_generator"] == config["model"]["ac_head"] == conditional
    assert open(os.path.join(workdir, "converted_from.txt")).read().startswith("converted ")


@pytest.mark.parametrize("kind", KINDS)
def test_the_converted_networks_compute_what_the_reference_graph_computed(converted, kind):
    """The strongest check of the layouts: TF's float64 forward pass of the reference graph."""
    _, state, meta = converted[kind]
    want = _expected(kind)
    conditional = kind == "conditional"
    config = transfer_convert.make_config(
        {"width": 2, "z_dim": 16, "num_classes": 10 if conditional else 0}
    )
    generator, critic = gan.build_models(config, 3, 10 if conditional else 0)
    labels = want["labels"] if conditional else np.zeros(2, np.int32)
    with jax.enable_x64(True):
        as64 = lambda tree: jax.tree.map(lambda x: np.asarray(x, np.float64), tree)
        images = generator.apply(
            {"params": as64(state["g_params"])}, want["z"].astype(np.float64), labels
        )
        reference = want["generator_output"].reshape(2, 3, 64, 64).transpose(0, 2, 3, 1)
        np.testing.assert_allclose(np.asarray(images), reference, atol=2e-6)  # float32-stored
        score, logits = critic.apply({"params": as64(state["d_params"])}, images, labels)
        np.testing.assert_allclose(np.asarray(score), want["critic_output"], rtol=1e-9, atol=1e-9)
        if conditional:
            np.testing.assert_allclose(
                np.asarray(logits), want["critic_acgan_output"], rtol=1e-9, atol=1e-9
            )


def _target_config(smoke_config, workdir, conditional, **overrides):
    """A `:smoke`-sized 64x64 ResNet run at the fixture's width, starting from `workdir`."""
    model = {"model.g_width": 2, "model.d_width": 2, "model.z_dim": 16}
    if conditional:
        model.update({"model.conditional_generator": True, "model.ac_head": True})
    return smoke_config(
        **{"data.resolution": 64, "data.channels": 3, "init_from": workdir},
        **model,
        **overrides,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_init_from_accepts_the_converted_run(converted, tmp_path, smoke_config, kind):
    """Through the run loop: a fresh 64x64 run (mnist5k as RGB, its 10 classes for the conditional
    one) at the fixture's width starts from the converted run. num_steps=0 stops right after the
    merge: one train step at 64x64 compiles for ~45 s on 2 CPU cores, the merge is what is tested."""
    workdir, state, _ = converted[kind]
    config = _target_config(smoke_config, workdir, kind == "conditional", num_steps=0)
    merged = loop.train_and_evaluate(config, str(tmp_path))
    for key in ("g_params", "ema_params", "d_params"):
        for path, value in _leaves(state[key]).items():
            np.testing.assert_array_equal(_leaves(merged[key])[path], value, err_msg=path)
    table = open(tmp_path / "init_from.txt").read().splitlines()[0]
    n = sum(len(_leaves(state[k])) for k in ("g_params", "ema_params", "d_params"))
    assert table == f"init_from {workdir}:0: {n} loaded, 0 fresh, 0 skipped"


def test_the_missing_file_error_says_where_the_release_lives(tmp_path, capsys):
    missing = str(tmp_path / "transfer_model" / "unconditional" / "bedroom" / "wgan-gp.model")
    with pytest.raises(errors.DataError) as raised:
        transfer_convert.convert(missing, str(tmp_path / "out"))
    message = str(raised.value)
    assert f"{missing}.index does not exist" in message
    assert "https://github.com/yaxingwang/Transferring-GANs" in message
    assert "https://drive.google.com/file/d/1e7Pw-m-DgAiB_aQnNUUwBRVFc2izRiRw" in message
    assert "transfer_model/{conditional,unconditional}/{imagenet,places,celebA,bedroom}" in message
    assert transfer_convert.main([f"--tf_checkpoint={missing}", f"--workdir={tmp_path}/o"]) == 1
    assert "drive.google.com" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_unmapped_unfilled_and_misshapen_variables_are_named(tmp_path):
    tensors = _tensors("unconditional")
    tensors["Generator.Res9.Conv1/Generator.Res9.Conv1.Filters"] = np.zeros((3, 3, 2, 2))
    del tensors["Discriminator.Res2.BN1.scale"]
    tensors["Generator.Output/Generator.Output.Filters"] = np.zeros((3, 3, 2, 4))
    config = transfer_convert.make_config({"width": 2, "z_dim": 16, "num_classes": 0})
    abstract = jax.eval_shape(transfer_convert.state_factory(config, 0, parallel.make_mesh(1)))
    with pytest.raises(errors.ConfigError) as raised:
        transfer_convert.convert_params(tensors, abstract)
    message = str(raised.value)
    assert "Generator.Res9.Conv1/Generator.Res9.Conv1.Filters (3, 3, 2, 2): no parameter" in message
    assert (
        "Discriminator.Res2.BN1.scale: not in the checkpoint (for d_params/Res2/Norm1/scale)"
        in message
    )
    assert (
        "(3, 3, 2, 4) -> g_params/Output/kernel: (3, 3, 2, 4) after 'same', ours is (3, 3, 2, 3)"
        in message
    )
    with pytest.raises(errors.ConfigError, match=r"--conditional=True, but .* is unconditional"):
        transfer_convert.convert(str(SOURCES["unconditional"]), str(tmp_path), conditional=True)
