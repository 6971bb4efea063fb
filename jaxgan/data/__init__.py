"""Data: dataset strings -> sources (`sources.py`) -> global batches on the mesh (`pipeline.py`)."""

from jaxgan.data.pipeline import Batches, fit_image, to_float, to_global
from jaxgan.data.sources import open_source, parse

__all__ = ["Batches", "fit_image", "open_source", "parse", "to_float", "to_global"]
