"""FID statistics files in the evaluator: `--save_stats=FILE` writes the reals' statistics,
`--real=stats:FILE` scores fakes against them instead of against images.

A file is pytorch-fid's (`mu` [D] and `sigma` [D, D] float64, `fid.save_statistics`) plus how its
features were made, each a 0-d array:

  format           "jaxgan/fid_stats/v1"
  feature_network  inception_v3 | mnist_cnn | fashion_cnn | emoji_cnn
  weights_sha256   the weights' SHA-256: for inception_v3 that of pytorch-fid's .pth the converted
                   weights were made from (6726825d...), for the shipped networks their .npz's
  resize           --resize: legacy | clean (it changes only inception_v3's input)
  feature_code     `features.CODE_VERSION` of the network
  resolution, channels   the size the real images were read at; the fakes are read the same way
  n                the number of real images
  real             the real set's name, for people

A run made another way is refused, naming the setting that differs. A file with only mu and sigma
(pytorch-fid's, TTUR's, clean-fid's) is trusted as Inception pool3 statistics made as this run
makes its features, with a one-line note: TTUR's match `--resize=legacy`; docs/evaluation.md
says which others do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
from absl import logging

from jaxgan.core import errors
from jaxgan.eval import features, fid, inception, registry
from jaxgan.eval.imagesets import ImageSet, StatsSet
from jaxgan.eval.options import Options

# The metrics that read nothing of the reals but `real.memo["fid_stats"]` (`eval/metrics.py`).
STATS_METRICS = ("fid",)
METADATA = (
    "feature_network", "weights_sha256", "resize", "feature_code", "resolution", "channels", "n",
)  # fmt: skip


def weights_sha256(network: str, inception_weights: str | None) -> str:
    """The SHA-256 a file records for `network`'s weights (see the module docstring)."""
    if network == "inception_v3":
        return inception.weights_source_sha256(inception.find_weights(inception_weights))
    return inception.sha256_of_file(features.domain_weights_path(network))


def metadata(scorer, real: ImageSet) -> dict:
    """How `scorer`'s features of `real` are made: the entries a statistics file records."""
    name, options = scorer.network_name, scorer.options
    return {
        "feature_network": name,
        "weights_sha256": weights_sha256(name, options.inception_weights),
        "resize": options.resize,
        "feature_code": features.CODE_VERSION[name],
        "resolution": scorer.resolution,
        "channels": scorer.channels,
        "n": real.size,
        "real": real.name,
    }


def save_real(path: str, scorer, real: ImageSet | None) -> None:
    """Writes the FID statistics of `real` (its features by `scorer`'s network) to `path`.

    real: None for a job without one reference set (a translation run's two domains).
    """
    if real is None:
        raise errors.ConfigError(
            "--save_stats writes one real set's statistics; a translation run has two domains. "
            "Use two-set mode: --real=DOMAIN_IMAGES --fake=... --save_stats=FILE."
        )
    if scorer.network_name is None:
        raise errors.ConfigError(
            f"--save_stats={path} writes the feature network's statistics of the reals, and none "
            "of --metrics uses a feature network: add fid to --metrics."
        )
    if "fid_stats" not in real.memo:  # the same statistics the fid metric memoises
        real.memo["fid_stats"] = fid.feature_statistics(scorer.features(real)["features"])
    if jax.process_index() != 0:  # every process computes them (alike); process 0 writes
        return
    fid.save_statistics(path, *real.memo["fid_stats"], metadata(scorer, real))
    logging.info("Wrote the FID statistics of %s (%s images) to %s.", real.name, real.size, path)


def _refusal(path: str, flag: str, made, used) -> errors.ConfigError:
    return errors.ConfigError(
        f"{path} was made with --{flag}={made}, this run uses --{flag}={used}: pass "
        f"--{flag}={made} or remake the file."
    )


def options_for(stats: StatsSet, metrics: Sequence[registry.Metric], options: Options) -> Options:
    """The options to score against `stats`: its network and resolution where the run left them
    to the reals (`auto`, 0). Raises ConfigError for a metric that needs the real images, and
    for a network, resolution or resize other than the file's, naming it."""
    needs_images = [m.name for m in metrics if m.name not in STATS_METRICS]
    if needs_images:
        raise errors.ConfigError(
            f"{', '.join(needs_images)} {'needs' if len(needs_images) == 1 else 'need'} the real "
            f"images; --real={stats.name} holds only "
            f"their FID statistics (mean and covariance), which is all {', '.join(STATS_METRICS)} "
            f"needs. Pass --metrics={','.join(STATS_METRICS)}, or give --real as images."
        )
    if options.save_stats:
        raise errors.ConfigError(
            f"--save_stats writes the statistics of real images; --real={stats.name} is already "
            "a statistics file."
        )
    made = stats.metadata
    if made is None:
        network = "inception_v3" if options.feature_network == "auto" else options.feature_network
        logging.warning(
            "%s has no metadata (pytorch-fid's or TTUR's own format): trusted as %s statistics "
            "made as this run makes its features (--resize=%s); see docs/evaluation.md.",
            stats.path, network, options.resize,
        )  # fmt: skip
        return dataclasses.replace(options, feature_network=network)
    missing = [k for k in METADATA if k not in made]
    if missing:
        raise errors.ConfigError(
            f"{stats.path} lacks the metadata {', '.join(missing)}; remake it with --save_stats."
        )
    network, resolution = options.feature_network, options.resolution
    if network not in ("auto", made["feature_network"]):
        raise _refusal(stats.path, "feature_network", made["feature_network"], network)
    if resolution not in (0, made["resolution"]):
        raise _refusal(stats.path, "resolution", made["resolution"], resolution)
    if made["feature_network"] == "inception_v3" and options.resize != made["resize"]:
        raise _refusal(stats.path, "resize", made["resize"], options.resize)
    return dataclasses.replace(
        options, feature_network=made["feature_network"], resolution=made["resolution"]
    )


def check_network(stats: StatsSet, network: str, options: Options) -> None:
    """Raises ConfigError where this run's `network` would compute other features than the
    file's: other weights (by SHA-256) or another version of the feature code."""
    made = stats.metadata
    if made is None:
        return
    code = features.CODE_VERSION[network]
    if made["feature_code"] != code:
        raise errors.ConfigError(
            f"{stats.path} was made by version {made['feature_code']} of jaxgan's {network} "
            f"feature code, this jaxgan has version {code}: remake the file."
        )
    digest = weights_sha256(network, options.inception_weights)
    if made["weights_sha256"] != digest:
        hint = "--inception_weights=NPZ converted from that file" if network == "inception_v3" else (
            "the jaxgan that shipped those weights"
        )  # fmt: skip
        raise errors.ConfigError(
            f"{stats.path} was made with {network} weights of SHA-256 {made['weights_sha256']}, "
            f"this run's weights have SHA-256 {digest}: use {hint}, or remake the file."
        )
