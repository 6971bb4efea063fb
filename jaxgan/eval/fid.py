"""Fréchet Inception Distance on precomputed features (Heusel et al. 2017, TTUR).

All statistics are float64 NumPy on the host: FID is a difference of large traces, and float32
accumulation is a known source of disagreement with the reference numbers (torcheval #192).

Statistics files (`save_statistics`, `load_statistics`) are pytorch-fid's: an `.npz` with `mu` [D]
and `sigma` [D, D] (its `--save-stats`; TTUR's `fid_stats_*.npz` and clean-fid's files have the same
keys), to which jaxgan adds how the features were made as 0-d arrays (`eval/fid_stats.py`).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping

import numpy as np

from jaxgan.core import errors, run_files

STATS_FORMAT = "jaxgan/fid_stats/v1"  # the `format` entry of the files jaxgan writes


def _as_features(features, name: str) -> np.ndarray:
    """Checks a feature matrix and returns it as float64 `[N, D]`."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{name}: expected a feature matrix [N, D], got shape {features.shape}.")
    return features


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of a feature set, in float64.

    Follows pytorch-fid / TTUR `np.cov(act, rowvar=False)` (divides by N-1).

    Args:
      features: `[N, D]` features (e.g. Inception pool3, D = 2048).

    Returns:
      `(mu [D], sigma [D, D])`, both float64.

    Raises:
      ValueError: if N <= 1 (no covariance can be estimated).

    Warns when N <= D: the covariance then has rank at most N-1 < D, so it is singular and the FID
    is dominated by estimation error (TTUR README: N must exceed the feature dimension; it
    recommends at least 10,000 samples for D = 2048).
    """
    features = _as_features(features, "features")
    n, d = features.shape
    if n <= 1:
        raise ValueError(
            f"features: need at least 2 samples to estimate a covariance, got N={n}. "
            "Extract features for more images (FID is usually computed on 10k-50k)."
        )
    if n <= d:
        warnings.warn(
            f"features: N={n} samples <= D={d} dimensions, so the covariance is singular and the FID "
            f"is unreliable (TTUR: N must exceed D). Use more than {d} samples, ideally >= 10,000.",
            stacklevel=2,
        )
    mu = features.mean(axis=0)
    sigma = np.cov(features, rowvar=False)
    return mu, np.atleast_2d(sigma)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix via `eigh`, negative eigenvalues clipped to 0."""
    matrix = 0.5 * (matrix + matrix.T)  # remove round-off asymmetry so eigh sees a symmetric input
    eigvals, eigvecs = np.linalg.eigh(matrix)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrt(sigma1 @ sigma2)) without a non-symmetric sqrtm.

    Follows TF-GAN `classifier_metrics.py::trace_sqrt_product`: with A = sqrt(sigma1),
    eig(sigma1 sigma2) = eig(A A sigma2) = eig(A sigma2 A), and A sigma2 A is symmetric PSD, so
    both square roots are real `eigh` problems (no complex numbers, unlike `scipy.linalg.sqrtm`,
    which SciPy 1.11.2-1.12 broke: mseitzer/pytorch-fid #103).
    """
    sqrt_sigma1 = _symmetric_sqrt(sigma1)
    inner = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    eigvals = np.linalg.eigvalsh(0.5 * (inner + inner.T))
    return float(np.sum(np.sqrt(np.clip(eigvals, 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    FID = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrt(sigma1 sigma2)),
    in float64, with the trace square root from the symmetric eigendecomposition (TF-GAN form).

    Args:
      mu1, mu2: `[D]` means.
      sigma1, sigma2: `[D, D]` covariances.

    Returns:
      The distance as a Python float (>= 0 up to round-off).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            "frechet_distance: expected mu1, mu2 of shape [D] and sigma1, sigma2 of shape [D, D]; got "
            f"mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}. "
            "Were the two statistics computed with the same feature layer?"
        )
    diff = mu1 - mu2
    trace_sqrt = _trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def save_statistics(path: str | os.PathLike, mu, sigma, metadata: Mapping[str, str | int]) -> None:
    """Writes `mu` [D] and `sigma` [D, D] as float64, as `np.savez(path, mu=mu, sigma=sigma)` does
    (pytorch-fid's format), with `format` = STATS_FORMAT and each `metadata` entry as a 0-d array
    (readable with allow_pickle=False); atomically, so a reader never sees half a file."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(f"save_statistics: mu {mu.shape}, sigma {sigma.shape}: not [D], [D, D].")
    entries = {"format": STATS_FORMAT, **metadata}
    if {"mu", "sigma"} & set(entries):
        raise ValueError("save_statistics: metadata may not be named mu or sigma.")
    arrays = {"mu": mu, "sigma": sigma, **{k: np.array(v) for k, v in entries.items()}}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    run_files.atomic_write(path, write, suffix=".npz")


def load_statistics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """Reads a statistics file -> (mu [D], sigma [D, D] float64, metadata).

    metadata: the 0-d entries of a file jaxgan wrote (str / int / float), or None for a file with
    only `mu` and `sigma` (pytorch-fid's, TTUR's, clean-fid's). A missing file, missing keys,
    wrong shapes, non-finite values or another format version raise one `errors.UserError`
    naming the file and what it should hold.
    """
    expected = (
        "an FID statistics file: an .npz with 'mu' [D] and 'sigma' [D, D] (pytorch-fid's "
        "np.savez(path, mu=mu, sigma=sigma))"
    )
    if not os.path.isfile(path):
        raise errors.DataError(f"{path}: no such file; expected {expected}.")
    try:
        stored = np.load(path, allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise ValueError(f"it holds one {type(stored).__name__}, not named arrays")
        with stored:
            arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise errors.ConfigError(f"{path} is not {expected}: {e}") from None
    mu, sigma = arrays.get("mu"), arrays.get("sigma")
    if mu is None or sigma is None:
        raise errors.ConfigError(f"{path} is not {expected}; it holds {sorted(arrays)}.")
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or mu.dtype.kind not in "fiu":
        raise errors.ConfigError(
            f"{path} is not {expected}: mu is {mu.dtype} {mu.shape}, sigma {sigma.dtype} "
            f"{sigma.shape}."
        )
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise errors.ConfigError(f"{path}: mu or sigma holds non-finite values; remake the file.")
    if "format" not in arrays:
        return mu, sigma, None
    found = str(arrays["format"])
    if found != STATS_FORMAT:
        raise errors.ConfigError(
            f"{path} is in statistics format {found!r}; this jaxgan reads "
            f"{STATS_FORMAT!r}. Remake it with --save_stats."
        )
    metadata = {k: v.item() for k, v in arrays.items() if k not in ("mu", "sigma") and v.ndim == 0}
    return mu, sigma, metadata


def fid_from_features(features1, features2) -> float:
    """FID between two feature sets `[N1, D]` and `[N2, D]` (symmetric in its arguments).

    FID is biased in N: compare values only at equal (N1, N2).
    """
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


def fid_chunks(real, fake, num_chunks: int = 10, chunk_size: int = 5000) -> tuple[float, float]:
    """`fid5k_x10`: FID of aligned chunks, mean and std over chunks ("How good is my GAN?").

    Follows kshmelkov/gan_evaluation `evaluation/inception.py::_compute_fid_from_activations`:
    chunk i of the reals is compared with chunk i of the fakes, and the result is
    `(np.mean(fids), np.std(fids))` (population std). Each value is a 5k-vs-5k FID, so it is much
    higher than a 50k FID of the same model; report it under its own name.

    Only the first `num_chunks * chunk_size` rows of each set are used (the reference feeds exactly
    50,000 of each); rows beyond that are ignored.

    Args:
      real: `[N_real, D]` real features, N_real >= num_chunks * chunk_size.
      fake: `[N_fake, D]` generated features, N_fake >= num_chunks * chunk_size.
      num_chunks: number of aligned chunk pairs.
      chunk_size: rows per chunk.

    Returns:
      `(mean, std)` of the per-chunk FIDs.

    Raises:
      ValueError: if either set has fewer than `num_chunks * chunk_size` rows. The chunks are not
        shrunk silently, because a smaller chunk changes the FID bias and the number is then not
        comparable with fid5k_x10 tables.
    """
    real = _as_features(real, "real")
    fake = _as_features(fake, "fake")
    if num_chunks < 1 or chunk_size < 2:
        raise ValueError(
            f"fid_chunks: need num_chunks >= 1 and chunk_size >= 2, got {num_chunks}, {chunk_size}."
        )
    needed = num_chunks * chunk_size
    if len(real) < needed or len(fake) < needed:
        raise ValueError(
            f"fid_chunks: {num_chunks} chunks x {chunk_size} need {needed} samples per set, got "
            f"N_real={len(real)}, N_fake={len(fake)}. Extract features for at least {needed} real and "
            f"{needed} generated images, or pass smaller num_chunks/chunk_size (the result is then not "
            "comparable with fid5k_x10 numbers)."
        )
    fids = [
        fid_from_features(
            real[i * chunk_size : (i + 1) * chunk_size], fake[i * chunk_size : (i + 1) * chunk_size]
        )
        for i in range(num_chunks)
    ]
    return float(np.mean(fids)), float(np.std(fids))
