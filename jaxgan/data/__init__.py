"""Data: dataset strings -> sources (`sources.py`) -> global batches on the mesh (`pipeline.py`)."""

from jaxgan.data.pipeline import Batches, fit_image, to_float, to_global
from jaxgan.data.sources import balanced_subset, open_source, parse, parse_class, parse_per_class

__all__ = [
    "Batches",
    "balanced_subset",
    "fit_image",
    "open_source",
    "parse",
    "parse_class",
    "parse_per_class",
    "to_float",
    "to_global",
]
