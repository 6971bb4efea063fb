"""jaxgan: GANs as pure JAX functions, and an evaluator for their checkpoints.

    import jaxgan
    jaxgan.train("wgan_gp:smoke", "runs/x")
    g = jaxgan.load_generator("runs/x")
    jaxgan.metrics.compute(real_uint8, fake_uint8, metrics=("fid", "kid"))

The commands (`jaxgan-train`, `python -m jaxgan.evaluate`, ...) and docs/api.md say more.
"""

__version__ = "0.1.0"

from jaxgan.core import cpu_backend  # noqa: E402

cpu_backend.configure_at_import()  # XLA reads its flags as JAX's backend starts: before that

from jaxgan import configs, metrics  # noqa: E402
from jaxgan.api import load_generator, train  # noqa: E402

__all__ = ["configs", "load_generator", "metrics", "train", "__version__"]
