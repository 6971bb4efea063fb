"""FID Inception-v3 port vs the PyTorch reference, the TF1 resize, the .pth reader and the weight lookup.

The network reference is `tests/fixtures/inception_fixture.npz`, made by
`scripts/make_inception_fixture.py` with the real pytorch-fid package (float64) and seeded random
weights that `random_torch_state_dict(seed)` regenerates here with numpy alone. No torch at test
time. If `random_torch_state_dict` or the fixture images change, re-run that script.
"""

import os
import pathlib
import pickle
import subprocess
import sys
import time
import zipfile

import jax
import numpy as np
import pytest

from jaxgan.core import npz_weights
from jaxgan.eval import inception

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TOLERANCE = 1e-4  # pool3 within 1e-4 relative of torch-fidelity's, on the same uint8 input
GROUPS = ("rgb32", "rgb64", "gray")
BATCH_SIZE = 2  # rounded up to 8 on the 8 test devices: every group is one padded batch


@pytest.fixture(scope="module")
def fixture():
    with np.load(FIXTURES / "inception_fixture.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def torch_state_dict(fixture):
    state_dict = inception.random_torch_state_dict(int(fixture["state_dict_seed"]))
    fingerprint = np.array([v.astype(np.float64).sum() for v in state_dict.values()])
    np.testing.assert_allclose(
        fingerprint,
        fixture["state_dict_fingerprint"],
        rtol=1e-12,
        err_msg="random_torch_state_dict changed; re-run scripts/make_inception_fixture.py",
    )
    return state_dict


@pytest.fixture(scope="module")
def extractor(torch_state_dict):
    return inception.make_feature_extractor(
        inception.params_from_torch_state_dict(torch_state_dict), batch_size=BATCH_SIZE
    )


@pytest.fixture(scope="module")
def features(fixture, extractor):
    return {group: extractor(fixture[f"images_{group}"]) for group in GROUPS}


def rel_err(ours, ref):
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


# ---------------------------------------------------------------------------------- network


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_network_matches_pytorch_fid(fixture, features, group):
    for name in inception.FEATURE_NAMES:
        ours, ref = features[group][name], fixture[f"expected/{group}/{name}"]
        assert ours.shape == ref.shape and ours.dtype == np.float32
        # Elementwise, with an absolute floor at 1e-5 of the output's scale for near-zero logits.
        # float32 rounding through the network is ~1e-6 relative (2^-24·√(fan-in) per layer),
        # far inside the spec's bound, which is there to catch porting mistakes (see below).
        np.testing.assert_allclose(
            ours, ref, rtol=TOLERANCE, atol=1e-5 * np.abs(ref).max(), err_msg=f"{group}/{name}"
        )
        assert rel_err(ours, ref) < TOLERANCE, (group, name)


def test_fixture_detects_porting_mistakes(fixture):
    # Each known mistake (BN eps 1e-5, avg pool in Mixed_7c, avg pools counting padding, half-pixel
    # resize, 2x-1 scaling) moves the reference pool3 by far more than the tolerance, so the
    # comparison above would catch it.
    names = [k for k in fixture if k.startswith("sensitivity/")]
    assert len(names) == 5
    for name in names:
        assert fixture[name] > 20 * TOLERANCE, name


def test_logits_are_pool3_times_fc(features, torch_state_dict):
    out = features["rgb64"]
    weight = torch_state_dict["fc.weight"].astype(np.float64)
    unbiased = out["pool3"].astype(np.float64) @ weight.T
    # float32 2048-term dot products: rounding ~2^-24·√2048·‖pool3·w‖ <~ 1e-5 for these weights
    # (order-independent bound 2048·2^-24·Σ|pool3·w| ~ 8e-3 would not see a missing bias).
    np.testing.assert_allclose(out["logits_unbiased"], unbiased, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        out["logits"], unbiased + torch_state_dict["fc.bias"], rtol=1e-5, atol=1e-5
    )


def test_extractor_streams_chunks_and_pads(fixture, features, extractor):
    images = fixture["images_rgb32"]
    streamed = extractor(iter([images[:1], images[1:]]), total=len(images))
    for name in inception.FEATURE_NAMES:
        np.testing.assert_array_equal(streamed[name], features["rgb32"][name])
    with pytest.raises(TypeError, match="uint8"):
        extractor(images.astype(np.float32))
    with pytest.raises(ValueError, match="no images"):
        extractor(iter([]))


def test_extractor_float64_and_inside_mesh(fixture, features, torch_state_dict):
    extract = inception.make_feature_extractor(
        inception.params_from_torch_state_dict(torch_state_dict),
        batch_size=BATCH_SIZE,
        dtype=np.float64,
    )
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    with jax.set_mesh(mesh):  # the caller's mesh must not replicate or break the extraction
        out = extract(fixture["images_gray"])
    assert out["pool3"].dtype == np.float64
    np.testing.assert_array_equal(out["pool3"], features["gray"]["pool3"].astype(np.float64))


def test_sharded_extraction_equals_one_device(fixture, features, torch_state_dict):
    # `features` ran 3 images in batches of 2 rounded up to 8 (the 8 test devices): one batch, 5
    # padded images, one image per device. The reference applies the same jitted functions to the
    # 3 images on one device. Both float32, in different per-device batch shapes (so possibly other
    # summation orders): each is ~1e-6 relative from exact (2^-24·√(fan-in) per layer, as in
    # test_network_matches_pytorch_fid), so 1e-5 holds on any CPU, while a misplaced or padded
    # image moves the features by O(1). (float64 would allow 1e-10, but its 8-device compile and
    # 11 float64 passes take ~10 s here; the classifier's sharding test, the same batch loop, is
    # in float64.)
    images = fixture["images_rgb32"]
    variables = inception.params_from_torch_state_dict(torch_state_dict)
    one_device = inception._network_jit(variables, inception._preprocess_jit(images))
    assert len(one_device["pool3"].devices()) == 1
    for name in inception.FEATURE_NAMES:
        ref = np.asarray(one_device[name])
        np.testing.assert_allclose(
            features["rgb32"][name], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max(), err_msg=name
        )


def tf1_resize_on_host(batch):
    return np.asarray(inception.resize_bilinear_tf1(batch, (299, 299)), np.float32)


@pytest.mark.parametrize("group", ["rgb32", "gray"])
def test_host_resize_replaces_only_the_resize(
    fixture, features, extractor, torch_state_dict, group
):
    extract = inception.make_feature_extractor(
        inception.params_from_torch_state_dict(torch_state_dict),
        batch_size=BATCH_SIZE,
        host_resize=tf1_resize_on_host,
    )
    out = extract(fixture[f"images_{group}"])
    # The same resize, run eagerly on the host instead of fused into the jitted preprocess: XLA
    # may contract its lerps into FMAs, so the network inputs differ by <= ~3 ulps of 255 / 128
    # (~4e-7), the size of float32's own rounding of the input. Each float32 pass is ~1e-6
    # relative from exact (2^-24·√(fan-in) per layer, see above), so 1e-5 holds on any CPU; a
    # second resize or a missing scaling moves pool3 by > 2e-3 (test_fixture_detects_...).
    for name in inception.FEATURE_NAMES:
        ref = features[group][name]
        np.testing.assert_allclose(out[name], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    with pytest.raises(ValueError, match=r"host_resize mapped a batch \(8, 32, 32, 3\)"):
        inception.make_feature_extractor(
            inception.params_from_torch_state_dict(torch_state_dict),
            batch_size=BATCH_SIZE,
            host_resize=lambda batch: batch.astype(np.float32),  # forgot to resize
        )(fixture["images_rgb32"])


def test_scale_resized_is_preprocess_without_the_resize(fixture):
    images = fixture["images_gray"]
    np.testing.assert_array_equal(
        inception.scale_resized(inception.resize_bilinear_tf1(images, (299, 299))),
        inception.preprocess(images),
    )


# ---------------------------------------------------------------------------------- resize


def tf1_resize_loop(image, out_h, out_w):
    """Direct per-pixel TF1 resize_bilinear(align_corners=False) of one [H, W, C] image (float64 lerp)."""
    in_h, in_w, _ = image.shape
    out = np.zeros((out_h, out_w, image.shape[2]))
    for i in range(out_h):
        y = np.float32(i) * (
            np.float32(in_h) / np.float32(out_h)
        )  # float32 source coordinate, as TF1
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, in_h - 1), float(y) - y0
        for j in range(out_w):
            x = np.float32(j) * (np.float32(in_w) / np.float32(out_w))
            x0 = int(np.floor(x))
            x1, fx = min(x0 + 1, in_w - 1), float(x) - x0
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * fx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * fx
            out[i, j] = top + (bottom - top) * fy
    return out


def test_resize_hand_computed():
    # 2x2 -> 3x3: src = dst * 2/3 = 0, 2/3, 4/3; the last row/column clamps to index 1.
    image = np.array([[0.0, 30.0], [60.0, 90.0]], np.float32)[None, :, :, None]
    expected = [[0, 20, 30], [40, 60, 70], [60, 80, 90]]
    # Elementwise float32 lerps (no sums): within ~1 ulp of values <= 90 (7.6e-6) on any CPU.
    np.testing.assert_allclose(
        inception.resize_bilinear_tf1(image, (3, 3))[0, :, :, 0], expected, atol=1e-5
    )
    # 1x4 -> 1x3 (downsampling): src = 0, 4/3, 8/3 -> 0, 10 + 10/3, 20 + 20/3.
    row = np.array([0.0, 10.0, 20.0, 30.0], np.float32)[None, None, :, None]
    np.testing.assert_allclose(
        inception.resize_bilinear_tf1(row, (1, 3))[0, 0, :, 0], [0.0, 40 / 3, 80 / 3], rtol=1e-6
    )


@pytest.mark.parametrize("in_shape,out_size", [((7, 5, 2), (11, 4)), ((32, 32, 3), (299, 299))])
def test_resize_matches_numpy_loop(in_shape, out_size):
    image = np.random.RandomState(0).uniform(0, 255, in_shape).astype(np.float32)
    ours = np.asarray(
        jax.jit(inception.resize_bilinear_tf1, static_argnums=1)(image[None], out_size)
    )[0]
    # Three float32 lerps vs float64 ones at the same float32 taps: <= ~3 ulps of 255 (4.6e-5).
    np.testing.assert_allclose(
        ours, tf1_resize_loop(image.astype(np.float64), *out_size), rtol=1e-5, atol=1e-4
    )


@pytest.mark.parametrize("case", ["up", "down", "to299"])
def test_resize_bit_exact_with_torch_fidelity(fixture, case):
    src, dst = fixture[f"resize/{case}/src"], fixture[f"resize/{case}/dst"]
    size = (299, 299) if case == "to299" else dst.shape[1:3]
    ours = np.asarray(inception.resize_bilinear_tf1(src, size))
    if case == "to299":
        ours = ours[:, ::7, ::7, :]  # the fixture stores this subsample
    np.testing.assert_array_equal(ours, dst)


def test_resize_is_not_jax_image_resize():
    # jax.image.resize uses half-pixel centres (TF1's bilinear resize has none), a different convention.
    image = np.random.RandomState(1).uniform(0, 255, (1, 32, 32, 1)).astype(np.float32)
    ours = np.asarray(inception.resize_bilinear_tf1(image, (299, 299)))
    half_pixel = np.asarray(jax.image.resize(image, (1, 299, 299, 1), "bilinear"))
    assert np.abs(ours - half_pixel).max() > 1.0
    np.testing.assert_array_equal(inception.resize_bilinear_tf1(image, (32, 32)), image)


def test_preprocess_scaling_and_grayscale():
    plateaus = np.zeros((1, 299, 299, 1), np.uint8)  # already 299: the resize is the identity
    plateaus[:, 100:200] = 128
    plateaus[:, 200:] = 255
    x = np.asarray(inception.preprocess(plateaus))
    assert x.shape == (1, 299, 299, 3)
    assert sorted(np.unique(x)) == [-1.0, 0.0, 127 / 128]  # (x - 128) / 128
    gray = np.array([0, 128, 255, 64], np.uint8).reshape(1, 2, 2, 1)
    rgb = np.asarray(inception.preprocess(np.repeat(gray, 3, axis=-1)))
    np.testing.assert_array_equal(np.asarray(inception.preprocess(gray)), rgb)
    with pytest.raises(TypeError, match="uint8"):
        inception.preprocess(gray.astype(np.float32))
    with pytest.raises(ValueError, match="N, H, W, C"):
        inception.preprocess(np.zeros((1, 8, 8, 2), np.uint8))


# ---------------------------------------------------------------------------------- weights


def test_mapping_layouts(torch_state_dict):
    variables = inception.params_from_torch_state_dict(torch_state_dict)
    conv = torch_state_dict["Mixed_6b.branch7x7_2.conv.weight"]  # OIHW [128, 128, 1, 7]
    kernel = variables["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"]
    assert kernel.shape == (1, 7, 128, 128)
    np.testing.assert_array_equal(kernel[0, 5, 3, 9], conv[9, 3, 0, 5])
    np.testing.assert_array_equal(kernel, conv.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(
        variables["params"]["fc"]["kernel"], torch_state_dict["fc.weight"].T
    )
    np.testing.assert_array_equal(variables["params"]["fc"]["bias"], torch_state_dict["fc.bias"])
    bn = "Mixed_7c.branch_pool.bn"
    np.testing.assert_array_equal(
        variables["params"]["Mixed_7c"]["branch_pool"]["bn"]["scale"],
        torch_state_dict[f"{bn}.weight"],
    )
    np.testing.assert_array_equal(
        variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"],
        torch_state_dict[f"{bn}.running_var"],
    )
    np.testing.assert_array_equal(
        variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["mean"],
        torch_state_dict[f"{bn}.running_mean"],
    )


def test_mapping_rejects_wrong_state_dicts(torch_state_dict):
    with_counter = dict(torch_state_dict, **{"Conv2d_1a_3x3.bn.num_batches_tracked": np.array(0)})
    inception.params_from_torch_state_dict(with_counter)  # BN's counter is ignored
    missing = {k: v for k, v in torch_state_dict.items() if k != "Mixed_5b.branch1x1.conv.weight"}
    with pytest.raises(ValueError, match=r"missing Mixed_5b\.branch1x1\.conv\.weight"):
        inception.params_from_torch_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected AuxLogits\.fc\.weight"):
        inception.params_from_torch_state_dict(
            dict(torch_state_dict, **{"AuxLogits.fc.weight": np.zeros((1000, 768))})
        )
    with pytest.raises(
        ValueError, match=r"wrong shapes fc\.weight: \(1000, 2048\) != \(1008, 2048\)"
    ):
        inception.params_from_torch_state_dict(
            dict(torch_state_dict, **{"fc.weight": np.zeros((1000, 2048))})
        )


def test_save_load_roundtrip(tmp_path, torch_state_dict):
    variables = inception.params_from_torch_state_dict(torch_state_dict)
    path = inception.save_params(variables, tmp_path / "sub" / "w.npz")
    loaded = inception.load_params(path)
    for key, value in npz_weights.flatten(variables).items():
        np.testing.assert_array_equal(npz_weights.flatten(loaded)[key], value)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a jaxgan FID Inception weights file"):
        inception.load_params(tmp_path / "other.npz")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_read_torch_state_dict_without_torch(fixture, fmt):
    state_dict = inception.read_torch_state_dict(FIXTURES / f"tiny_state_dict_{fmt}.pth")
    expected = {k[len("tiny/") :]: v for k, v in fixture.items() if k.startswith("tiny/")}
    assert list(state_dict) == list(expected)  # order kept (OrderedDict)
    for name, value in expected.items():
        assert state_dict[name].dtype == value.dtype, name
        np.testing.assert_array_equal(state_dict[name], value, err_msg=name)
    # A transposed tensor (strides 1, 3), a view at storage offset 3, float16, int64 and a scalar:
    np.testing.assert_array_equal(
        state_dict["extra.transposed"], np.arange(6, dtype=np.float32).reshape(2, 3).T
    )
    np.testing.assert_allclose(state_dict["extra.offset_view"], np.linspace(-1, 1, 10)[3:7])
    assert state_dict["extra.scalar"].shape == () and state_dict["extra.scalar"] == 3.25


def test_read_torch_state_dict_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"w": Exploit()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        inception.read_torch_state_dict(path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a torch.save file"):
        inception.read_torch_state_dict(tmp_path / "junk.pth")


def test_sha256_check(tmp_path):
    path = FIXTURES / "tiny_state_dict_legacy.pth"
    digest = inception.sha256_of_file(path)
    assert not digest.startswith(inception.FID_WEIGHTS_SHA256_PREFIX)
    with pytest.raises(
        ValueError, match=f"does not start with {inception.FID_WEIGHTS_SHA256_PREFIX}"
    ) as err:
        inception.check_sha256(path)
    assert inception.FID_WEIGHTS_URL in str(err.value) and "--allow_hash_mismatch" in str(err.value)
    assert inception.check_sha256(path, expected_prefix=digest[:8]) == digest
    (tmp_path / "abc").write_bytes(b"abc")  # a known SHA-256
    assert inception.sha256_of_file(tmp_path / "abc").startswith("ba7816bf8f01cfea414140de5dae2223")


def test_convert_command(tmp_path, monkeypatch, capsys, torch_state_dict):
    pth, out = FIXTURES / "tiny_state_dict_zip.pth", tmp_path / "w.npz"
    assert inception.main(["convert", f"--pth={pth}", f"--out={out}"]) == 1
    assert "does not start with 6726825d" in capsys.readouterr().err and not out.exists()
    # Past the hash check, the real reader finds a state_dict that is not the Inception.
    assert inception.main(["convert", f"--pth={pth}", f"--out={out}", "--allow_hash_mismatch"]) == 1
    assert (
        "does not hold the FID Inception-v3 weights: missing" in capsys.readouterr().err
        and not out.exists()
    )
    # The whole pipeline with a full-size state_dict standing in for the file's contents.
    monkeypatch.setattr(inception, "read_torch_state_dict", lambda path: torch_state_dict)
    assert inception.main(["convert", f"--pth={pth}", f"--out={out}", "--allow_hash_mismatch"]) == 0
    loaded = npz_weights.flatten(inception.load_params(inception.find_weights(out)))
    expected = npz_weights.flatten(inception.params_from_torch_state_dict(torch_state_dict))
    assert loaded.keys() == expected.keys()
    np.testing.assert_array_equal(
        loaded["params/Conv2d_1a_3x3/conv/kernel"], expected["params/Conv2d_1a_3x3/conv/kernel"]
    )


# ---------------------------------------------------------------------------------- lookup


def test_find_weights_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(inception.WEIGHTS_ENV_VAR, raising=False)
    cached = tmp_path / "cache" / "jaxgan" / "inception_v3_fid.npz"
    assert inception.default_weights_path() == cached
    cached.parent.mkdir(parents=True)
    cached.touch()
    assert inception.find_weights() == cached
    env = tmp_path / "env.npz"
    env.touch()
    monkeypatch.setenv(inception.WEIGHTS_ENV_VAR, str(env))
    assert inception.find_weights() == env
    explicit = tmp_path / "explicit.npz"
    explicit.touch()
    assert inception.find_weights(explicit) == explicit
    # A path that was asked for but is absent is an error, not a silent fall-back to the cache.
    with pytest.raises(inception.InceptionWeightsNotFoundError, match="explicit path"):
        inception.find_weights(tmp_path / "nope.npz")


@pytest.mark.slow
def test_missing_weights_error_is_fast_and_actionable(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), JAX_PLATFORMS="cpu")
    env.pop(inception.WEIGHTS_ENV_VAR, None)
    code = "from jaxgan.eval.inception import find_weights\nfind_weights()"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=pathlib.Path(__file__).parents[1],
    )
    elapsed = time.perf_counter() - start  # includes starting Python and importing jax/flax
    assert result.returncode != 0
    assert "InceptionWeightsNotFoundError" in result.stderr
    assert inception.FID_WEIGHTS_URL in result.stderr
    assert (
        "python -m jaxgan.eval.inception convert --pth=pt_inception-2015-12-05-6726825d.pth"
        in result.stderr
    )
    assert str(tmp_path / "jaxgan" / "inception_v3_fid.npz") in result.stderr
    assert elapsed < 5.0, f"find_weights took {elapsed:.1f} s to fail"


@pytest.mark.slow
def test_feature_network_with_clean_resize(fixture, features, torch_state_dict, tmp_path):
    """`--resize=clean` reaches the network: features.load hands clean-fid's resize to the
    extractor, names it in the rows, and the features differ from the legacy (TF1) ones."""
    from jaxgan.eval import features as feature_networks
    from jaxgan.eval import resize

    variables = inception.params_from_torch_state_dict(torch_state_dict)
    path = str(inception.save_params(variables, tmp_path / "w.npz"))
    images = fixture["images_rgb32"]
    clean = feature_networks.load("inception_v3", 32, 3, BATCH_SIZE, path, resize="clean")
    legacy = feature_networks.load("inception_v3", 32, 3, BATCH_SIZE, path)
    assert (clean.resize, legacy.resize) == (resize.CLEAN, resize.LEGACY)
    assert clean.weights == feature_networks.weights_id("inception_v3", path)
    expected = inception.make_feature_extractor(
        variables, BATCH_SIZE, host_resize=resize.clean_resize
    )(images)
    got = clean.extract(images)
    np.testing.assert_array_equal(got["features"], expected["pool3"])  # the same program
    np.testing.assert_array_equal(legacy.extract(images)["features"], features["rgb32"]["pool3"])
    # Bicubic and bilinear resizes feed the network different pixels: pool3 moves well beyond
    # float32 rounding (~1e-6 relative, see test_host_resize_replaces_only_the_resize).
    assert rel_err(got["features"], features["rgb32"]["pool3"]) > 1e-3
