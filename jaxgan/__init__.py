"""jaxgan: GANs as pure JAX functions, and an evaluator for their checkpoints."""

__version__ = "0.1.0"
