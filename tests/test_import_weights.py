"""`python -m jaxgan.import_weights`: the reference projects' released weights into jaxgan runs.

Fixtures: tests/fixtures/released_weights, the files the CycleGAN and NICE-GAN reference code
writes (`torch.save` of its networks' state_dicts; NICE-GAN's dict of four state_dicts and two
optimizers), small, with the float64 translations the reference networks compute, made by
scripts/make_released_weights_fixture.py; tests/fixtures/pggan_release (PGGAN's network pickles,
scripts/make_pggan_pickle_fixture.py). Each imported run is read back as `jaxgan.translate` /
`jaxgan.generate` read it (the checkpoint's eval params, the method's translator or sampler built
from the checkpoint's config) and run in float64 (`jax.enable_x64`) against those outputs.
"""

import functools
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import restore_only_checkpoint
from PIL import Image

from jaxgan import configs, import_weights, translate
from jaxgan.core import checkpoint, errors, parallel
from jaxgan.data import to_float
from jaxgan.eval import inception, sampling
from jaxgan.models import cyclegan as cyclegan_networks
from jaxgan.training import registry

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
RELEASED = FIXTURES / "released_weights"
CYCLEGAN = {n: str(RELEASED / "cyclegan" / f"latest_net_{n}.pth") for n in ("G_A", "G_B", "D_A", "D_B")}  # fmt: skip
NICE = str(RELEASED / "nicegan" / "cat2dog_params_0000100.pt")
PGGAN = str(FIXTURES / "pggan_release" / "tf_fused" / "network.pkl")


@functools.lru_cache
def _expected() -> dict[str, np.ndarray]:
    with np.load(RELEASED / "expected.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).transpose(0, 2, 3, 1)


def _as64(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _translated(workdir: str, direction: str) -> np.ndarray:
    """The fixture's pixels translated as `jaxgan.translate` does, short of the uint8 rounding:
    the checkpoint's eval params, the method's translator for the checkpoint's config, the uint8
    images through `to_float`; in float64."""
    config = sampling.load_config(workdir)
    method = registry.get(config.method)
    mesh = parallel.make_mesh(1)
    params, meta, _ = checkpoint.restore_params(workdir, method.eval_params, "latest", mesh)
    translator = method.translator(sampling.checkpoint_config(meta, config), mesh)
    pixels = _nhwc(_expected()[f"pixels/{direction[0]}"])
    with jax.enable_x64(True):
        images = to_float(jax.numpy.asarray(pixels), jax.random.key(0))
        assert images.dtype == np.float64
        out = translator(_as64(params), images, direction)
        assert out.dtype == np.float64
        return np.asarray(out)


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("imported") / "cyclegan")
    message = import_weights.import_cyclegan(
        workdir, CYCLEGAN["G_A"], CYCLEGAN["G_B"], CYCLEGAN["D_A"], CYCLEGAN["D_B"]
    )
    return workdir, message


@pytest.fixture(scope="module")
def nicegan_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("imported") / "nicegan")
    return workdir, import_weights.import_nicegan(workdir, NICE)


# ----------------------------------------------------------------------------------------------
# The imported networks compute what the reference's computed.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_imported_cyclegan_translates_as_the_reference(cyclegan_run, direction):
    workdir, _ = cyclegan_run
    want = _nhwc(_expected()[f"cyclegan/{direction}"])
    # float64 on both sides on the same float32 weights (11 convs, instance norms): ~1e-15 apart;
    # float32 anywhere on the path would show at ~1e-7.
    np.testing.assert_allclose(_translated(workdir, direction), want, rtol=1e-9, atol=1e-12)


def test_imported_cyclegan_run_holds_every_network_at_its_sizes(cyclegan_run):
    workdir, message = cyclegan_run
    config = sampling.load_config(workdir)
    assert (config.method, config.model.g_width, config.model.num_blocks) == ("cyclegan", 2, 2)
    assert (config.model.d_width, config.model.d_layers, config.data.channels) == (2, 2, 3)
    state, meta = restore_only_checkpoint(workdir, 0)
    assert meta["directions"] == ["AtoB", "BtoA"] and meta["done"]
    for name in ("D_A", "D_B"):  # the critics, which no translation uses, landed too
        want = cyclegan_networks.discriminator_params_from_torch(
            inception.read_torch_state_dict(CYCLEGAN[name])
        )
        jax.tree.map(np.testing.assert_array_equal, state["d_params"][name], want)
    notes = open(os.path.join(workdir, "imported_from.txt")).read()
    assert "G_B <- " in notes and "latest_net_G_B.pth: width 2, num_blocks 2" in notes
    assert message.startswith(f"wrote {workdir} from --g_a=")


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_imported_nicegan_translates_as_the_reference(nicegan_run, direction):
    """NICE.test(): the source domain's discriminator encodes in eval mode, with σ = uᵀWv from
    the file's u and v; jaxgan's translator takes σ from one power iteration from u. The file
    rounds u and v to float32, which moves uᵀWv by ~1e-8 relative (imported_from.txt measures
    it): that, not float64 rounding, sets the tolerance."""
    workdir, _ = nicegan_run
    want = _nhwc(_expected()[f"nicegan/{direction}"])
    np.testing.assert_allclose(_translated(workdir, direction), want, rtol=1e-6, atol=1e-7)


def test_imported_nicegan_run_has_the_reference_iteration_and_sizes(nicegan_run):
    workdir, message = nicegan_run
    config = sampling.load_config(workdir)
    m = config.model
    assert (m.width, m.num_blocks, m.num_layers, m.light) == (1, 2, 6, True)
    state, meta = restore_only_checkpoint(workdir, 100)  # start_iter
    assert int(state["step"]) == 100 and meta["reference_iteration"] == 100
    saved = inception.read_torch_state_dict(NICE)
    np.testing.assert_array_equal(  # the stored u, as the spectral-norm state
        state["spectral_norm"]["disB"]["encoder"]["CAM"]["kernel_u"], saved["disB"]["fc.weight_u"]
    )
    notes = open(os.path.join(workdir, "imported_from.txt")).read()
    gap = float(notes.split("over the layers: ")[1].split()[0])
    assert 0 < gap < 1e-7  # float32 u and v: converged, rounded
    assert "(checkpoint 100)" in message


def test_one_generator_translates_one_way_and_says_so(tmp_path):
    """A pretrained CycleGAN model (horse2zebra.pth) is G_A alone: BtoA is refused by name."""
    workdir = str(tmp_path / "run")
    message = import_weights.import_cyclegan(workdir, g_a=CYCLEGAN["G_A"])
    assert "Only AtoB is translatable" in message
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    pixels = _nhwc(_expected()["pixels/A"])
    Image.fromarray(pixels[0]).save(folder / "a.png")
    with pytest.raises(errors.ConfigError, match="has no trained BtoA generator") as raised:
        translate.translate_folder(workdir, "BtoA", str(folder), str(out), progress=False)
    assert "--direction=AtoB" in str(raised.value) and "latest_net_G_A.pth" in str(raised.value)
    (written,) = translate.translate_folder(workdir, "AtoB", str(folder), str(out), progress=False)
    want = (_nhwc(_expected()["cyclegan/AtoB"])[0] + 1) * 127.5
    assert np.abs(np.asarray(Image.open(written), float) - want).max() <= 0.5 + 1e-3


def test_pggan_pickle_becomes_a_finished_progressive_run(tmp_path):
    """Through the method's sampler (what `generate` and `evaluate` use) at the run's lod 0: Gs
    of the pickle, as the reference computes it (scripts/make_pggan_pickle_fixture.py)."""
    workdir = str(tmp_path / "run")
    import_weights.import_pggan(workdir, PGGAN, configs.get("pggan", "smoke"))
    config = sampling.load_config(workdir)
    method = registry.get(config.method)
    mesh = parallel.make_mesh(1)
    params, meta, step = checkpoint.restore_params(workdir, method.eval_params, "latest", mesh)
    assert (step, meta["lod"], meta["done"]) == (0, 0.0, True)
    assert meta["cur_nimg"] == round(config.schedule.total_kimg * 1000)
    with np.load(FIXTURES / "pggan_release" / "tf_fused" / "expected.npz") as f:
        z, want = f["z"], _nhwc(f["g_images_lod0"])
    sample = method.sampler(sampling.checkpoint_config(meta, config), config.data.channels, 0, mesh)
    with jax.enable_x64(True):
        images = sample(meta)(_as64(params), z.astype(np.float64), np.zeros(len(z), np.int32))
    # The sampler returns images clipped to [-1, 1], as the evaluator reads them.
    np.testing.assert_allclose(np.asarray(images), np.clip(want, -1, 1), rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# Bad input: one error naming the file, the problem and the fix.
# ----------------------------------------------------------------------------------------------


def test_a_discriminator_given_as_a_generator_is_named(tmp_path):
    with pytest.raises(errors.DataError) as raised:
        import_weights.import_cyclegan(str(tmp_path / "w"), g_a=CYCLEGAN["D_A"])
    message = str(raised.value)
    assert message.startswith(f"--g_a={CYCLEGAN['D_A']} is not a CycleGAN ResnetGenerator")
    assert "it has no 'model.1.weight'" in message
    assert "looks like a CycleGAN NLayerDiscriminator's state_dict" in message
    assert "latest_net_G_A.pth" in message  # what to give instead
    assert not os.path.exists(tmp_path / "w")


def test_files_of_the_other_project_are_recognised(tmp_path):
    with pytest.raises(errors.DataError, match="looks like a NICE-GAN checkpoint .*--from=nicegan"):
        import_weights.import_cyclegan(str(tmp_path / "w"), g_a=NICE)
    with pytest.raises(errors.DataError) as raised:
        import_weights.import_nicegan(str(tmp_path / "w"), CYCLEGAN["G_A"])
    assert "is not a NICE-GAN checkpoint: it has no ['gen2B', 'gen2A', 'disA', 'disB']" in str(
        raised.value
    )
    assert "ResnetGenerator's state_dict (latest_net_G_*.pth)" in str(raised.value)


def test_missing_and_extra_tensors_are_named_and_stale_statistics_skipped():
    state_dict = dict(inception.read_torch_state_dict(CYCLEGAN["G_A"]))
    convert = functools.partial(
        import_weights.convert_all,
        cyclegan_networks.generator_params_from_torch,
        source="--g_a=x.pth",
        network="a ResnetGenerator",
        hint="HINT",
    )
    # pre-0.4 torch files hold InstanceNorm running stats the reference deletes on load
    stale = {"model.2.running_mean": np.zeros(2), "model.2.running_var": np.ones(2)}
    params = convert({**state_dict, **stale})
    assert sorted(params) == sorted(convert(state_dict))
    with pytest.raises(errors.DataError, match=r"it has no 'model.11.conv_block.5.bias'.*HINT"):
        convert({k: v for k, v in state_dict.items() if k != "model.11.conv_block.5.bias"})
    extra = {"model.10.conv_block.6.weight": np.zeros((8, 8, 3, 3))}  # a dropout generator's
    with pytest.raises(errors.DataError) as raised:
        convert({**state_dict, **extra})
    message = str(raised.value)
    assert (
        "1 of its tensors fill no parameter of jaxgan's network (model.10.conv_block.6.weight"
        in message
    )
    assert "a ResnetGenerator with dropout" in message


def test_unreadable_and_missing_files_are_named(tmp_path):
    text = tmp_path / "latest_net_G_A.pth"
    text.write_text("not a torch file")
    with pytest.raises(errors.DataError, match=f"--g_a={text} is not a torch.save file"):
        import_weights.import_cyclegan(str(tmp_path / "w"), g_a=str(text))
    with pytest.raises(errors.DataError, match="--checkpoint=nope.pt: no such file. Give the file"):
        import_weights.import_nicegan(str(tmp_path / "w"), "nope.pt")


def test_flags_config_and_workdir_are_checked(tmp_path, cyclegan_run):
    with pytest.raises(errors.ConfigError, match="needs a generator: --g_a"):
        import_weights.import_weights("cyclegan", str(tmp_path), {"d_a": CYCLEGAN["D_A"]})
    with pytest.raises(errors.ConfigError, match="--checkpoint belong"):
        import_weights.import_weights("cyclegan", str(tmp_path), {"checkpoint": NICE})
    with pytest.raises(errors.ConfigError, match="--config is a 'nicegan' config"):
        import_weights.import_cyclegan(
            str(tmp_path), CYCLEGAN["G_A"], config=configs.get("nicegan")
        )
    with pytest.raises(errors.ConfigError, match="already has checkpoints"):
        import_weights.import_cyclegan(cyclegan_run[0], CYCLEGAN["G_A"])
    small = configs.get("nicegan")
    small.data.resolution = 40  # n_dis 6 needs 48
    with pytest.raises(errors.ConfigError, match="at least 48x48.*--config=nicegan:cat2dog"):
        import_weights.import_nicegan(str(tmp_path / "w"), NICE, small)


# ----------------------------------------------------------------------------------------------
# The commands, as a user runs them.
# ----------------------------------------------------------------------------------------------


def _command(*args):
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_command_line_import_then_translate(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, image in enumerate(_nhwc(_expected()["pixels/B"])):
        Image.fromarray(image).save(folder / f"{i}.png")
    for source, files in (
        ("cyclegan", [f"--g_a={CYCLEGAN['G_A']}", f"--g_b={CYCLEGAN['G_B']}"]),
        ("nicegan", [f"--checkpoint={NICE}", "--config=nicegan:smoke"]),
    ):
        workdir = tmp_path / source
        done = _command("jaxgan.import_weights", f"--from={source}", f"--workdir={workdir}", *files)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.startswith(f"wrote {workdir}")
        out = tmp_path / f"out_{source}"
        done = _command(
            "jaxgan.translate", f"--workdir={workdir}", "--direction=BtoA", f"--input={folder}",
            f"--output={out}",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        want = (_nhwc(_expected()[f"{source}/BtoA"]) + 1) * 127.5
        for i in range(len(want)):
            got = np.asarray(Image.open(out / f"{i}.png"), float)
            assert np.abs(got - want[i]).max() <= 0.5 + 1e-3, (source, i)
    bad = _command("jaxgan.import_weights", "--from=cyclegan", f"--workdir={tmp_path / 'x'}",
                   f"--g_a={CYCLEGAN['D_A']}")  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("DataError: --g_a=")


@pytest.mark.slow
def test_evaluate_scores_an_imported_run(tmp_path):
    """The evaluator's translation job on an imported one-generator run: AtoB scored, BtoA not."""
    from conftest import write_two_domain_folder

    from jaxgan.eval import runner
    from jaxgan.eval.options import Options

    root = write_two_domain_folder(tmp_path / "pair")
    config = configs.get("cyclegan", "smoke")
    config.data.dataset = f"folder:{root}"
    workdir = str(tmp_path / "run")
    import_weights.import_cyclegan(workdir, g_a=CYCLEGAN["G_A"], config=config)
    options = Options(
        feature_network="emoji_cnn", cache_dir=str(tmp_path / "cache"), progress=False
    )
    rows = runner.evaluate_workdir(workdir, ["fid", "paired_l1"], options)
    scored = {(r["direction"], r["metric"]) for r in rows if r["kind"] == "checkpoint"}
    assert scored == {("AtoB", "fid"), ("AtoB", "paired_l1")}
    assert all(np.isfinite(r["value"]) for r in rows if r["kind"] == "checkpoint")
