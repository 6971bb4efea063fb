"""How images reach the Inception network's 299x299 input: the two resize modes.

Every Inception metric row records its resize mode, because the same images give different FID
under different resizes (clean-fid reports +1-2 FID on CIFAR-10 between the two below).

  * LEGACY = "tf1_bilinear_299": TF1 `tf.image.resize_bilinear(align_corners=False)` (no half-pixel
    offset) inside the network, `inception.resize_bilinear_tf1`. This is what the TTUR and PGGAN TF
    graphs, torch-fidelity, the StyleGAN2-ADA TorchScript and clean-fid's `legacy_tensorflow` mode
    do, so it reproduces the FID/IS/KID tables of those papers and tools. (pytorch-fid resizes
    with half-pixel bilinear, clean-fid's `legacy_pytorch`; it agrees with these only for 299x299
    inputs.)
  * CLEAN = "pil_bicubic_299": clean-fid's "clean" mode (Parmar et al. 2022,
    `cleanfid/resize.py::make_resizer("PIL", False, "bicubic", (299, 299))`). Each channel becomes a
    float32 PIL image (mode "F"), is resized with PIL's antialiased BICUBIC filter, clipped to
    [0, 255] and NOT re-quantised: the float values are the network's input. It reproduces the
    clean-fid leaderboard and papers that report "Clean-FID".

`clean_resize` implements CLEAN on the host with PIL. The resampling is PIL's own C code, so with
the same Pillow the numbers equal clean-fid's bit for bit; Pillow builds that order the two passes
differently can differ by a float32 ulp on non-square inputs, far below anything FID sees.

Grayscale input is resized once and tiled to 3 channels afterwards. clean-fid tiles first (it opens
files with `Image.convert("RGB")`; its resizer indexes channels 0-2), but the resize acts on each
channel separately, so three identical channels give three identical results: tiling before or
after is bit-identical, and after is three times cheaper.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

LEGACY = "tf1_bilinear_299"
CLEAN = "pil_bicubic_299"
INCEPTION_SIZE = 299


def _resize_channel_pil_bicubic(channel: np.ndarray, size: int) -> np.ndarray:
    """One channel uint8 [H, W] -> float32 [size, size] in [0, 255], clean-fid's "clean" resize.

    A float32 array makes a mode "F" image, whose resample path (Pillow `Resample.c`,
    `ImagingResample{Horizontal,Vertical}_32bpc`: double weights and sums, float32 storage)
    keeps fractional values instead of rounding to uint8.
    """
    image = Image.fromarray(channel.astype(np.float32))
    resized = image.resize((size, size), resample=Image.Resampling.BICUBIC)
    # Bicubic overshoots near edges (negative lobes); clean-fid clips but does not round.
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)


def _resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, C] (C = 1 or 3) -> float32 [size, size, 3]."""
    channels = [_resize_channel_pil_bicubic(image[:, :, c], size) for c in range(image.shape[-1])]
    if len(channels) == 1:
        # Grayscale: tiling after the per-channel resize equals tiling before (module docstring).
        channels = channels * 3
    return np.stack(channels, axis=-1)


def _check_uint8_images(images: np.ndarray) -> None:
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"clean_resize: images must be [N, H, W, C] with C in (1, 3), got shape {images.shape}"
        )
    if images.dtype != np.uint8:
        raise TypeError(
            f"clean_resize: images must be uint8 in [0, 255], got {images.dtype}. Quantize "
            "generator output first, as for the legacy mode (see inception.preprocess)."
        )


def clean_resize(
    images: np.ndarray, size: int = INCEPTION_SIZE, num_threads: int | None = None
) -> np.ndarray:
    """clean-fid's "clean" resize: uint8 [N, H, W, C] (C = 1 or 3) -> float32 [N, size, size, 3].

    Values are in [0, 255] and not quantised; feed them to the network as they are (clean-fid then
    applies (x - 128) / 128, as the legacy pipeline does). num_threads: PIL releases the GIL while
    resampling, so images are resized in a thread pool (default: one thread per CPU core).
    """
    images = np.asarray(images)
    _check_uint8_images(images)
    num_threads = num_threads or os.cpu_count() or 1
    if num_threads == 1 or len(images) <= 1:
        resized = [_resize_image(image, size) for image in images]
    else:
        with ThreadPoolExecutor(max_workers=num_threads) as pool:
            resized = list(pool.map(lambda image: _resize_image(image, size), images))
    if not resized:
        return np.zeros((0, size, size, 3), np.float32)
    return np.stack(resized)
