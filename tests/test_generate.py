"""`python -m jaxgan.generate`: images against the generator applied to independently recomputed
latents, the latent rule (latent i from (seed, i)), prefixes, PNGs against the npz, truncation
against the truncated normal's variance, --class, and the one-line errors.

The reference latents are drawn here with jax.random directly (not through `gan.sample_latents` or
`sampling.generation_inputs`): latent i is row i % 1000 of N(0, 1) [1000, z_dim] drawn from
`fold_in(key(seed), i // 1000)`. The reference images come from `Generator.sample` on the same
batches (a second `load_generator`), quantised with `run_files.to_uint8`.
"""

import json
import math
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from absl import flags
from PIL import Image

from jaxgan import generate
from jaxgan.configs import cyclegan, wgan_gp
from jaxgan.core import errors, parallel, run_files
from jaxgan.eval import imagesets, sampling

BATCH = 8  # the 8 test devices, one latent each


@pytest.fixture(scope="module")
def run(make_smoke_run):
    """An unconditional `wgan_gp:smoke` run (checkpoints 2 and 3)."""
    return make_smoke_run("generate_run")[0]


@pytest.fixture(scope="module")
def conditional_run(make_smoke_run):
    """The smoke run with a conditional generator and an AC head (AC-GAN), mnist5k's 10 classes."""
    return make_smoke_run("generate_conditional", conditional_generator=True, ac_head=True)[0]


def reference_latents(seed: int, indices, z_dim: int, truncation: float = 0.0) -> np.ndarray:
    """[len(indices), z_dim]: latent i, row i % 1000 of the block of fold_in(key(seed), i // 1000)."""
    key = jax.random.key(seed)

    def block(b):
        k = jax.random.fold_in(key, b)
        if truncation:
            return jax.random.truncated_normal(k, -truncation, truncation, (1000, z_dim))
        return jax.random.normal(k, (1000, z_dim))

    return np.stack([np.asarray(block(i // 1000))[i % 1000] for i in indices])


def reference_images(workdir: str, z: np.ndarray, labels: np.ndarray, num: int) -> np.ndarray:
    """uint8: `Generator.sample` on consecutive batches of BATCH latents, sharded as the evaluator
    shards them, then `to_uint8`; the first `num`."""
    generator = sampling.load_generator(workdir)
    sharding = parallel.sharded_on(generator.mesh, 0)
    out = []
    for start in range(0, len(z), BATCH):
        images = generator.sample(
            jax.device_put(z[start : start + BATCH], sharding),
            jax.device_put(labels[start : start + BATCH], sharding),
        )
        out.append(run_files.to_uint8(jax.device_get(images)))
    return np.concatenate(out)[:num]


def z_dim(workdir: str) -> int:
    return sampling.load_config(workdir).model.z_dim


# ----------------------------------------------------------------------------------------------
# Images against the generator.
# ----------------------------------------------------------------------------------------------


def test_an_image_is_the_generator_applied_to_its_latent(run):
    num, seed = 13, 3  # two batches, the second cut to 5
    images, labels = generate.generate_images(run, num, seed=seed, batch_size=BATCH)
    assert labels is None  # unconditional: no labels to write
    assert images.dtype == np.uint8 and images.shape == (num, 32, 32, 1)
    z = reference_latents(seed, range(16), z_dim(run))
    expected = reference_images(run, z, np.zeros(16, np.int32), num)
    np.testing.assert_array_equal(images, expected)
    assert len({im.tobytes() for im in images}) == num  # distinct latents, distinct images


def test_latent_i_depends_on_seed_and_i_across_blocks(run):
    generation = generate.prepare(run, 1004, seed=5, batch_size=BATCH)
    indices = [0, 1, 999, 1000, 1003]
    np.testing.assert_array_equal(generation.z[indices], reference_latents(5, indices, z_dim(run)))
    assert generation.batch_size == BATCH and len(generation.z) == 1008  # full batches
    other_seed = generate.prepare(run, 4, seed=6, batch_size=BATCH)
    assert not np.allclose(other_seed.z[:4], generation.z[:4])


def test_the_first_k_images_of_a_larger_num_are_a_smaller_num(run):
    small, _ = generate.generate_images(run, 5, seed=1, batch_size=BATCH)
    large, _ = generate.generate_images(run, 21, seed=1, batch_size=BATCH)
    np.testing.assert_array_equal(large[:5], small)


def test_pngs_and_npz_hold_the_same_pixels(run, tmp_path, capsys):
    folder, npz = tmp_path / "images", tmp_path / "fakes.npz"
    generate.generate_to(run, str(folder), 11, seed=2, batch_size=BATCH, progress=False)
    assert capsys.readouterr().out.strip().endswith(f"-> {folder}")
    generate.generate_to(run, str(npz), 11, seed=2, batch_size=BATCH, progress=False)
    names = [f"seed0002-{i:06d}.png" for i in range(11)]
    assert sorted(os.listdir(folder)) == ["generate.json", *names]
    pngs = np.stack([np.asarray(Image.open(folder / n))[..., None] for n in names])
    with np.load(npz) as stored:
        assert sorted(stored.files) == ["images"]  # unconditional: no labels
        np.testing.assert_array_equal(stored["images"], pngs)
    expected, _ = generate.generate_images(run, 11, seed=2, batch_size=BATCH)
    np.testing.assert_array_equal(pngs, expected)
    settings = json.loads((folder / "generate.json").read_text())
    assert {k: settings[k] for k in ("step", "seed", "num", "class", "truncation", "batch_size")} == {
        "step": 3, "seed": 2, "num": 11, "class": None, "truncation": 0.0, "batch_size": BATCH,
    }  # fmt: skip
    assert settings["files"] == "seed0002-{i:06d}.png" and "fold_in" in settings["latent_rule"]
    # The evaluator's --fake=FILE.npz reader takes the file as it is (in its own seeded order).
    fake = imagesets.spec_set(str(npz), "train", 0, 0, 0, 0)
    assert fake.size == 11 and fake.labels is None
    assert sorted(im.tobytes() for im in fake.images) == sorted(im.tobytes() for im in pngs)


def test_a_folder_of_other_settings_is_refused(run, tmp_path):
    folder = str(tmp_path / "images")
    generate.generate_to(run, folder, 3, seed=0, batch_size=BATCH, progress=False)
    generate.generate_to(run, folder, 5, seed=0, batch_size=BATCH, progress=False)  # more: fine
    with pytest.raises(errors.UserError, match=r"other settings \(files, seed differ"):
        generate.generate_to(run, folder, 5, seed=1, batch_size=BATCH, progress=False)


# ----------------------------------------------------------------------------------------------
# Truncation.
# ----------------------------------------------------------------------------------------------


def truncated_normal_variance(psi: float) -> float:
    """Var of N(0, 1) conditioned on |z| <= psi: 1 - 2·psi·φ(psi) / (2Φ(psi) - 1)."""
    phi = math.exp(-psi * psi / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(psi / math.sqrt(2))
    return 1 - 2 * psi * phi / mass


def test_truncation_keeps_latents_within_psi(run):
    psi, dim = 0.5, z_dim(run)
    z = generate.prepare(run, 1000, seed=4, truncation=psi, batch_size=BATCH).z[:1000]
    assert np.abs(z).max() <= psi
    np.testing.assert_array_equal(z[:3], reference_latents(4, range(3), dim, truncation=psi))
    # 16,000 entries: the sample variance is within 3% of the truncated normal's (0.0772).
    np.testing.assert_allclose(z.var(), truncated_normal_variance(psi), rtol=0.03)
    images, _ = generate.generate_images(run, 8, seed=4, truncation=psi, batch_size=BATCH)
    np.testing.assert_array_equal(images, reference_images(run, z[:8], np.zeros(8, np.int32), 8))


def test_truncation_zero_is_off(run):
    off = generate.prepare(run, 8, seed=4, truncation=0.0, batch_size=BATCH).z
    np.testing.assert_array_equal(off, reference_latents(4, range(8), z_dim(run)))
    assert np.abs(off).max() > 1.0  # untruncated N(0, 1): 128 entries, some beyond 1


def test_truncation_of_uniform_latents_is_refused():
    config = wgan_gp.get_config("smoke")
    config.model.z_dist = "uniform"
    with pytest.raises(errors.ConfigError, match=r"z_dist='uniform'.*leave --truncation out"):
        generate.latent_draw(config, 0.7)
    assert generate.latent_draw(config, 0.0) is generate.gan.sample_latents


# ----------------------------------------------------------------------------------------------
# Classes.
# ----------------------------------------------------------------------------------------------


def test_class_gives_every_image_that_label(conditional_run, tmp_path):
    num = 12
    images, labels = generate.generate_images(conditional_run, num, class_=3, batch_size=BATCH)
    np.testing.assert_array_equal(labels, np.full(num, 3))
    z = reference_latents(0, range(16), z_dim(conditional_run))
    expected = reference_images(conditional_run, z, np.full(16, 3, np.int32), num)
    np.testing.assert_array_equal(images, expected)
    # The default: class-balanced labels i % 10; the label reaches the generator.
    balanced, balanced_labels = generate.generate_images(conditional_run, num, batch_size=BATCH)
    np.testing.assert_array_equal(balanced_labels, np.arange(num) % 10)
    balanced_expected = reference_images(
        conditional_run, z, np.arange(16, dtype=np.int32) % 10, num
    )
    np.testing.assert_array_equal(balanced, balanced_expected)
    assert not np.array_equal(balanced[0], images[0])  # class 0 against class 3, same latent
    npz = tmp_path / "c.npz"
    generate.generate_to(conditional_run, str(npz), num, class_=3, batch_size=BATCH, progress=False)
    with np.load(npz) as stored:
        np.testing.assert_array_equal(stored["labels"], np.full(num, 3))
        np.testing.assert_array_equal(stored["images"], images)
    fake = imagesets.spec_set(str(npz), "train", 0, 0, 0, 0)  # the evaluator reads the labels
    np.testing.assert_array_equal(fake.labels, np.full(num, 3))


def test_class_out_of_range_names_the_range(conditional_run):
    with pytest.raises(
        errors.ConfigError, match=r"--class=10: expected 0\.\.9, one of the run's 10"
    ):
        generate.generate_images(conditional_run, 4, class_=10)


def test_class_of_an_unconditional_run_is_refused(run):
    with pytest.raises(errors.ConfigError, match="not class-conditional"):
        generate.generate_images(run, 4, class_=0)


# ----------------------------------------------------------------------------------------------
# Errors: one line, no traceback, before any checkpoint is read.
# ----------------------------------------------------------------------------------------------


def _main_error(tmp_path, *arguments) -> str:
    """`generate.main` on its own FlagValues; the message it exits with."""
    flag_values = flags.FlagValues()
    generate.define_flags(flag_values)
    flag_values(["generate", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        generate.main([], flag_values)
    message = str(exit_info.value.code)
    assert "\n" not in message
    return message


def _config_only_workdir(path, config) -> str:
    """A workdir with config.json and no checkpoint, as `jaxgan.main` leaves it before step 1."""
    run_files.write_json(str(path / "config.json"), config.to_dict())
    return str(path)


def test_a_translation_run_is_pointed_to_translate(tmp_path):
    workdir = _config_only_workdir(tmp_path, cyclegan.get_config("smoke"))
    message = _main_error(tmp_path, f"--workdir={workdir}", "--num=4", f"--out={tmp_path}/o")
    assert message.startswith("ConfigError: ") and "python -m jaxgan.translate" in message


def test_a_run_without_checkpoints_is_one_line(tmp_path):
    workdir = _config_only_workdir(tmp_path, wgan_gp.get_config("smoke"))
    message = _main_error(tmp_path, f"--workdir={workdir}", "--num=4", f"--out={tmp_path}/o")
    assert message.startswith("CheckpointError: No checkpoints in ")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--num=0"], r"ConfigError: --num=0: expected the number of images"),
        (["--num=4", "--out=images.jpg"], r"UserError: --out=images.jpg: .*'\.jpg' is neither"),
        (["--num=4", "--truncation=-1"], r"ConfigError: --truncation=-1.0: expected PSI > 0"),
        (["--num=4", "--batch_size=0"], r"ConfigError: --batch_size=0: expected at least 1"),
    ],
)
def test_bad_input_is_one_line(tmp_path, arguments, message):
    arguments = [f"--workdir={tmp_path}", f"--out={tmp_path}/o", *arguments]  # the last --out wins
    assert not os.path.exists(tmp_path / "config.json")  # checked before the run is read
    assert re.match(message, _main_error(tmp_path, *arguments))


def test_output_kind():
    assert generate.output_kind("out/fakes.npz") == "npz"
    assert generate.output_kind("out/images") == "folder"
    with pytest.raises(errors.UserError, match="neither"):
        generate.output_kind("out/images.png")


# ----------------------------------------------------------------------------------------------
# The command line in a subprocess.
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_command_line_writes_num_pngs_and_fails_in_one_line(run, tmp_path):
    out = tmp_path / "images"
    command = [sys.executable, "-m", "jaxgan.generate", f"--workdir={run}", "--num=10"]
    done = subprocess.run(
        [*command, f"--out={out}", "--batch_size=4"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["generate.json"] + [
        f"seed0000-{i:06d}.png" for i in range(10)
    ]
    failed = subprocess.run(
        [*command, f"--out={tmp_path}/x.txt"], capture_output=True, text=True, timeout=300
    )
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("UserError: --out=")
