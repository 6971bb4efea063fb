"""Builds the fixtures that pin `jaxgan.eval.inception` to the PyTorch FID Inception.

Writes (all small; the ~95 MB weights are never stored):
  tests/fixtures/inception_fixture.npz
      images_rgb32 [3,32,32,3], images_rgb64 [1,64,64,3], images_gray [1,48,80,1]  uint8, seeded
      expected/<group>/{pool3, logits_unbiased, logits}   float64 reference outputs
      state_dict_seed, state_dict_fingerprint             float64 sum of every tensor (sorted names)
      resize/*                                            torch-fidelity TF1-resize cases
      sensitivity/*                                       how far known porting mistakes move pool3
      tiny/<name>                                         expected values of the tiny .pth files
  tests/fixtures/tiny_state_dict_zip.pth     torch.save (zip format) of a few small tensors
  tests/fixtures/tiny_state_dict_legacy.pth  same tensors, pre-1.6 format
                                             (_use_new_zipfile_serialization=False)

Reference network: the real pytorch-fid package (0.3.0): `pytorch_fid.inception.fid_inception_v3()`,
i.e. torchvision's Inception3 patched with FIDInceptionA/C/E_1/E_2, with its weight download
replaced by the seeded state_dict `jaxgan.eval.inception.random_torch_state_dict(SEED)` and loaded
strictly (so names and shapes are pytorch-fid's). It runs in float64.

Input path compared: uint8 -> float64 -> torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x`
(TF1 resize_bilinear, align_corners=False: the TTUR / torch-fidelity convention, NOT pytorch-fid's
own half-pixel `F.interpolate`) to 299x299 -> (x - 128) / 128 -> network. Grayscale is tiled to 3
channels. The result is cross-checked against torch-fidelity's `FeatureExtractorInceptionV3` run
end to end (uint8 in; float32 internally, see below) with the same weights: they agree to ~4e-7.

Environment: torchvision's PyPI wheels need the CUDA build of torch, which would replace the CPU
torch in /work/venv, so the fixture is made in a separate venv (CPU is used either way):

    /work/venv/bin/python -m venv /tmp/fidref-venv
    /tmp/fidref-venv/bin/pip install torch==2.15.0 torchvision==0.29.2 pytorch-fid==0.3.0 \
        torch-fidelity==0.4.0 jax==0.10.2 flax==0.12.8
    cd /work/main && /tmp/fidref-venv/bin/python scripts/make_inception_fixture.py

Takes ~1 minute on 2 CPU cores. Re-run it (and commit the outputs) only if
`random_torch_state_dict` or the fixture images change.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import tempfile

import numpy as np
import pytorch_fid
import pytorch_fid.inception as pfid
import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from jaxgan.eval import inception  # noqa: E402

SEED = 0  # weights: random_torch_state_dict(SEED)
IMAGE_SEED = 1234
FIXTURES = REPO / "tests" / "fixtures"
OUTPUTS = ("pool3", "logits_unbiased", "logits")
FIDELITY_NAMES = ("2048", "logits_unbiased", "logits")  # torch-fidelity's names for OUTPUTS


def fixture_images() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(IMAGE_SEED)
    return {
        "rgb32": rng.randint(0, 256, (3, 32, 32, 3), dtype=np.uint8),
        "rgb64": rng.randint(0, 256, (1, 64, 64, 3), dtype=np.uint8),
        "gray": rng.randint(0, 256, (1, 48, 80, 1), dtype=np.uint8),
    }


def build_pytorch_fid(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """pytorch-fid's own constructor, with the weight download swapped for our state_dict."""
    original = pfid.load_state_dict_from_url
    pfid.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        model = pfid.fid_inception_v3()  # load_state_dict(strict=True) inside
    finally:
        pfid.load_state_dict_from_url = original
    return model.double().eval()


def to_nchw(images: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(dtype)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def run_pytorch_fid(model: torch.nn.Module, x299: torch.Tensor) -> dict[str, np.ndarray]:
    """x299: preprocessed [N,3,299,299]. Returns pool3 (avgpool output), logits with/without bias."""
    captured = {}
    hook = model.avgpool.register_forward_hook(
        lambda mod, inp, out: captured.update(pool3=out.flatten(1))
    )
    try:
        logits = model(x299)  # eval(): dropout is identity, so this is fc(pool3)
    finally:
        hook.remove()
    pool3 = captured["pool3"]
    return {
        "pool3": pool3.numpy(),
        "logits_unbiased": (pool3 @ model.fc.weight.T).numpy(),
        "logits": logits.numpy(),
    }


def tf1_preprocess(images: np.ndarray, dtype: torch.dtype, resize=None) -> torch.Tensor:
    x = to_nchw(images, dtype)
    if resize is None:
        x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    else:
        x = resize(x)
    return (x - 128) / 128


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@contextlib.contextmanager
def avg_pools_include_padding():
    original = F.avg_pool2d

    def including(*args, **kwargs):
        kwargs["count_include_pad"] = True
        return original(*args, **kwargs)

    F.avg_pool2d = including  # pytorch_fid.inception calls F.avg_pool2d through this module
    try:
        yield
    finally:
        F.avg_pool2d = original


def sensitivity(
    state_dict: dict[str, torch.Tensor], images: np.ndarray, reference: np.ndarray
) -> dict[str, float]:
    """Relative change of pool3 caused by each mistake a port could make (vs the 1e-4 tolerance)."""
    results = {}
    x = tf1_preprocess(images, torch.float64)

    model = build_pytorch_fid(state_dict)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-5  # Flax's default
    results["bn_eps_1e-5"] = rel_err(run_pytorch_fid(model, x)["pool3"], reference)

    model = build_pytorch_fid(state_dict)
    model.Mixed_7c.forward = pfid.FIDInceptionE_1.forward.__get__(model.Mixed_7c)
    results["mixed_7c_avg_pool"] = rel_err(run_pytorch_fid(model, x)["pool3"], reference)

    model = build_pytorch_fid(state_dict)
    with avg_pools_include_padding():
        results["avg_pool_include_pad"] = rel_err(run_pytorch_fid(model, x)["pool3"], reference)

    def half_pixel(t):  # pytorch-fid's own resize
        return F.interpolate(t, size=(299, 299), mode="bilinear", align_corners=False)

    x_half = tf1_preprocess(images, torch.float64, resize=half_pixel)
    results["half_pixel_resize"] = rel_err(
        run_pytorch_fid(build_pytorch_fid(state_dict), x_half)["pool3"], reference
    )

    x_127 = to_nchw(images, torch.float64) / 255.0
    x_127 = (
        2 * interpolate_bilinear_2d_like_tensorflow1x(x_127, size=(299, 299), align_corners=False)
        - 1
    )
    results["scale_2x_minus_1"] = rel_err(
        run_pytorch_fid(build_pytorch_fid(state_dict), x_127)["pool3"], reference
    )
    return results


def resize_cases() -> dict[str, np.ndarray]:
    """torch-fidelity's TF1 resize (float32, method='slow': bit-exact with TF1 on CPU)."""
    rng = np.random.RandomState(7)
    out = {}
    cases = {
        "up": (rng.uniform(0, 255, (1, 6, 9, 2)).astype(np.float32), (29, 41)),
        "down": (rng.randint(0, 256, (2, 32, 32, 1)).astype(np.float32), (13, 7)),
        "to299": (rng.randint(0, 256, (1, 32, 32, 3)).astype(np.float32), (299, 299)),
    }
    for name, (src, size) in cases.items():
        dst = (
            interpolate_bilinear_2d_like_tensorflow1x(
                torch.from_numpy(src).permute(0, 3, 1, 2), size=size, align_corners=False
            )
            .permute(0, 2, 3, 1)
            .numpy()
        )
        out[f"resize/{name}/src"] = src
        if name == "to299":
            dst = dst[
                :, ::7, ::7, :
            ]  # 43x43 subsample keeps the file small; the test subsamples too
        out[f"resize/{name}/dst"] = dst
    return out


def tiny_state_dicts() -> dict[str, np.ndarray]:
    """A few small tensors covering the reader's cases, saved in both torch.save formats."""
    torch.manual_seed(SEED)
    module = torch.nn.Module()
    module.conv = torch.nn.Conv2d(3, 2, (1, 2), bias=False)
    module.bn = torch.nn.BatchNorm2d(2)
    with torch.no_grad():
        module.bn.running_mean.normal_()
        module.bn.running_var.uniform_(0.5, 1.5)
    state_dict = module.state_dict()  # OrderedDict with _metadata, as real checkpoints have
    state_dict["extra.transposed"] = (
        torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    )  # strides (1, 3)
    state_dict["extra.offset_view"] = torch.linspace(-1, 1, 10, dtype=torch.float64)[
        3:7
    ]  # storage offset 3
    state_dict["extra.half"] = torch.tensor([0.5, -2.0, 65504.0], dtype=torch.float16)
    state_dict["extra.long"] = torch.arange(-3, 3, dtype=torch.int64).reshape(3, 2)
    state_dict["extra.scalar"] = torch.tensor(3.25)
    torch.save(state_dict, FIXTURES / "tiny_state_dict_zip.pth")
    torch.save(
        state_dict, FIXTURES / "tiny_state_dict_legacy.pth", _use_new_zipfile_serialization=False
    )
    return {f"tiny/{k}": v.numpy().copy() for k, v in state_dict.items()}


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    print(
        f"pytorch-fid {pytorch_fid.__version__}, torch-fidelity {torch_fidelity.__version__}, "
        f"torch {torch.__version__}"
    )
    np_state_dict = inception.random_torch_state_dict(SEED)
    state_dict = {k: torch.from_numpy(v) for k, v in np_state_dict.items()}
    model = build_pytorch_fid(state_dict)
    images = fixture_images()

    # torch-fidelity end to end (uint8 in), same weights, as an independent second reference. It
    # runs in float32: torch-fidelity 0.4.0's helpers.text_to_dtype maps "float64" to torch.float32,
    # so feature_extractor_internal_dtype="float64" has no effect there.
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "random_weights.pth"
        torch.save(state_dict, path)
        fidelity = FeatureExtractorInceptionV3(
            "inception-v3-compat", list(FIDELITY_NAMES), feature_extractor_weights_path=str(path)
        )

    fixture: dict[str, np.ndarray] = {f"images_{k}": v for k, v in images.items()}
    for group, imgs in images.items():
        expected = run_pytorch_fid(model, tf1_preprocess(imgs, torch.float64))
        with torch.no_grad():
            outputs = fidelity(to_nchw(imgs, torch.uint8).contiguous())
            other = {name: t.numpy() for name, t in zip(OUTPUTS, outputs, strict=True)}
        for name in OUTPUTS:
            agree = rel_err(other[name], expected[name])
            assert agree < 1e-5, (group, name, agree)
            print(
                f"{group:6s} {name:16s} |ref| max {np.abs(expected[name]).max():8.3f}  "
                f"torch-fidelity (float32) vs pytorch-fid (float64): rel {agree:.1e}"
            )
            fixture[f"expected/{group}/{name}"] = expected[name]
        fixture[f"torch_float32_rel_err/{group}"] = np.array(
            max(rel_err(other[n], expected[n]) for n in OUTPUTS)
        )

    fixture["state_dict_seed"] = np.array(SEED)
    fixture["state_dict_fingerprint"] = np.array(
        [v.astype(np.float64).sum() for v in np_state_dict.values()]
    )

    sens = sensitivity(state_dict, images["rgb32"], fixture["expected/rgb32/pool3"])
    for name, value in sens.items():
        print(f"sensitivity {name:22s} pool3 rel change {value:.2e}")
        fixture[f"sensitivity/{name}"] = np.array(value)

    fixture.update(resize_cases())
    fixture.update(tiny_state_dicts())
    np.savez_compressed(FIXTURES / "inception_fixture.npz", **fixture)
    for p in sorted(FIXTURES.iterdir()):
        print(f"wrote {p.relative_to(REPO)} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
