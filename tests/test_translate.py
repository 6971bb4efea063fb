"""`python -m jaxgan.translate`: a folder of images through a translation run's generator.

Reference values along an independent path: each input read with PIL and prepared by hand (alpha
composited on white in floats, grey replicated to RGB, the reference's bicubic base-4 resize), the
final state's generator applied directly on one device, quantised with `to_uint8`. The tool
translates in padded batches on the 8 test devices: a pixel may round to the next grey level.
"""

import os
import shutil

import jax
import numpy as np
import pytest
from absl import flags
from PIL import Image

from jaxgan import translate
from jaxgan.core import errors, run_files
from jaxgan.methods.cyclegan import build_models

LEVELS = 1  # grey levels a pixel may differ by (XLA float rounding across batch shapes)


def _random_image(rng, height, width, channels):
    return rng.randint(0, 256, (height, width, channels)).astype(np.uint8)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of five images of two translation sizes (16x16 and 20x24) in four kinds, and
    {name: the uint8 image the generator should see}, prepared without the tool's code."""
    rng = np.random.RandomState(0)
    folder = tmp_path_factory.mktemp("inputs")
    expected = {}

    rgb = _random_image(rng, 16, 16, 3)
    Image.fromarray(rgb).save(folder / "a_rgb.png")
    expected["a_rgb"] = rgb

    wide = _random_image(rng, 20, 24, 3)  # H 20, W 24: a second size group
    Image.fromarray(wide).save(folder / "b_wide.png")
    expected["b_wide"] = wide

    rgba = _random_image(rng, 16, 16, 4)
    rgba[0, :, 3], rgba[1, :, 3] = 0, 255  # fully transparent -> white; opaque -> its colour
    Image.fromarray(rgba).save(folder / "c_rgba.png")
    alpha = rgba[..., 3:].astype(np.float64)
    on_white = (rgba[..., :3] * alpha + 255.0 * (255.0 - alpha)) / 255.0
    expected["c_rgba"] = np.floor(on_white + 0.5).astype(np.uint8)  # no ties: 255 is odd

    odd = _random_image(rng, 18, 18, 3)  # round(18 / 4) = 4 (half to even): 16, not 20
    Image.fromarray(odd).save(folder / "d_odd.png")
    expected["d_odd"] = np.asarray(Image.fromarray(odd).resize((16, 16), Image.BICUBIC))

    grey = _random_image(rng, 16, 16, 1)[..., 0]
    Image.fromarray(grey).save(folder / "e_grey.bmp")
    expected["e_grey"] = np.repeat(grey[..., None], 3, axis=-1)

    (folder / "notes.txt").write_text("not an image")
    (folder / "nested").mkdir()  # not read: the tool is not recursive
    Image.fromarray(rgb).save(folder / "nested" / "z.png")
    return folder, expected


@pytest.fixture(scope="module")
def reference(translation_run):
    """`reference(generator_name, image)`: uint8 [H, W, 3], the final state's generator applied
    directly to one prepared uint8 image (jitted: one compile per size, not one per operation)."""
    _, _, config, state = translation_run
    generator, _ = build_models(config, 3)
    apply = jax.jit(generator.apply)

    def translate_one(generator_name, image):
        x = image[None].astype(np.float32) / 127.5 - 1.0
        g_params = state["g_params"][generator_name]
        return run_files.to_uint8(np.asarray(apply({"params": g_params}, x)))[0]

    return translate_one


def _assert_close(written_path, expected):
    written = np.asarray(Image.open(written_path))
    assert written.shape == expected.shape, written_path
    difference = np.abs(written.astype(int) - expected.astype(int)).max()
    assert difference <= LEVELS, f"{written_path}: {difference} grey levels from the reference"


def test_folder_of_two_sizes_matches_the_generator(
    translation_run, inputs, reference, tmp_path, caplog
):
    workdir = translation_run[0]
    folder, expected = inputs
    out = tmp_path / "out"
    written = translate.translate_folder(
        workdir, "AtoB", str(folder), str(out), batch_size=3, progress=False
    )
    assert written == [str(out / f"{name}.png") for name in sorted(expected)]
    assert sorted(os.listdir(out)) == sorted(f"{name}.png" for name in expected)  # no temp files
    for name, image in expected.items():
        _assert_close(out / f"{name}.png", reference("G_A", image))
    assert "Resized 1 of 5 images" in caplog.text and "d_odd.png 18x18 -> 16x16" in caplog.text


def test_command_line_bto_a_uses_g_b(translation_run, inputs, reference, tmp_path, capsys):
    """The command line, parsed on its own FlagValues in this process (a subprocess recompiles)."""
    workdir = translation_run[0]
    folder, expected = inputs
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(folder / "a_rgb.png", single / "a_rgb.png")
    out = tmp_path / "out"
    flag_values = flags.FlagValues()
    translate.define_flags(flag_values)
    flag_values(
        ["translate", f"--workdir={workdir}", "--direction=BtoA", f"--input={single}",
         f"--output={out}", "--step=3"]
    )  # fmt: skip
    translate.main([], flag_values)
    final_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert final_line == f"translated 1 images BtoA with checkpoint 3 -> {out}"
    g_b = reference("G_B", expected["a_rgb"])
    g_a = reference("G_A", expected["a_rgb"])
    # G_B differs from G_A by far more than the tolerance: the comparison tells them apart.
    assert np.abs(g_a.astype(int) - g_b.astype(int)).max() > 10 * LEVELS
    _assert_close(out / "a_rgb.png", g_b)


def _gan_run(tmp_path):
    from jaxgan.configs import wgan_gp

    workdir = tmp_path / "gan"
    run_files.write_json(str(workdir / "config.json"), wgan_gp.get_config("smoke").to_dict())
    return {"workdir": str(workdir)}


def _without_checkpoints(tmp_path, workdir):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    shutil.copy(os.path.join(workdir, "config.json"), empty / "config.json")
    return {"workdir": str(empty)}


def _folder_with(tmp_path, **images):
    folder = tmp_path / "bad_input"
    folder.mkdir(exist_ok=True)
    for name, (width, height) in images.items():
        Image.new("RGB", (width, height), "red").save(folder / name.replace("_", "."))
    return {"input_dir": str(folder)}


ERROR_CASES = {  # name: (arguments over the good ones, error type, what the message must say)
    "no_config": (lambda t, w: {"workdir": str(t / "nowhere")}, errors.UserError, "config.json"),
    "gan_run": (lambda t, w: _gan_run(t), errors.ConfigError, "'gan' run, not a translation run"),
    "no_checkpoints": (_without_checkpoints, errors.CheckpointError, "No checkpoints"),
    "unknown_step": (lambda t, w: {"step": 1}, errors.ConfigError, r"no checkpoint 1 .*\[2, 3\]"),
    "step_not_a_number": (lambda t, w: {"step": "best"}, errors.ConfigError, "'latest' or a"),
    "direction": (lambda t, w: {"direction": "AtoC"}, errors.ConfigError, "'AtoC': expected"),
    "batch_size": (lambda t, w: {"batch_size": 0}, errors.ConfigError, "batch_size=0"),
    "no_input": (lambda t, w: {"input_dir": str(t / "no")}, errors.DataError, "does not exist"),
    "no_images": (lambda t, w: _folder_with(t), errors.DataError, "holds no images"),
    "output_is_input": (
        lambda t, w: {"output_dir": str(t / "good")},
        errors.UserError,
        "is the --input folder",
    ),
    "too_small": (
        lambda t, w: _folder_with(t, tiny_png=(5, 16)),
        errors.UserError,
        r"tiny.png is 5x16",
    ),
    "same_stem": (
        lambda t, w: _folder_with(t, a_png=(16, 16), a_jpg=(16, 16)),
        errors.UserError,
        r"a.jpg and a.png would both be written",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_name_the_problem_before_writing(case, translation_run, tmp_path):
    workdir = translation_run[0]
    good = tmp_path / "good"
    good.mkdir()
    Image.new("RGB", (16, 16), "red").save(good / "x.png")
    change, error, message = ERROR_CASES[case]
    arguments = {
        "workdir": workdir, "direction": "AtoB", "input_dir": str(good),
        "output_dir": str(tmp_path / "out"), "progress": False,
    }  # fmt: skip
    arguments.update(change(tmp_path, workdir))
    with pytest.raises(error, match=message):
        translate.translate_folder(**arguments)
    assert not (tmp_path / "out").exists()  # every check comes before the first write


def test_command_line_error_is_one_line(tmp_path):
    flag_values = flags.FlagValues()
    translate.define_flags(flag_values)
    flag_values(["translate", f"--workdir={tmp_path}", f"--input={tmp_path}", "--output=o"])
    with pytest.raises(SystemExit) as exit_info:
        translate.main([], flag_values)
    assert str(exit_info.value).startswith("DataError: ")
    assert "config.json not found" in str(exit_info.value) and "\n" not in str(exit_info.value)


def test_reference_size_rounds_half_to_even():
    """`__make_power_2`: round(side / 4) * 4 with Python's round."""
    assert [translate.reference_size(s, s)[0] for s in (16, 17, 18, 19, 22, 6, 5)] == [
        16, 16, 16, 20, 24, 8, 4,
    ]  # fmt: skip
