"""Data: dataset strings -> sources (`sources.py`) -> global batches on the mesh (`pipeline.py`);
two-domain (unpaired translation) sources and batches (`two_domain.py`); `prepare.py` writes
prepared datasets (`python -m jaxgan.data.prepare DATASET --resolution=R --out=DIR`, read back as
`prepared:DIR`; `... emoji --out=DIR`)."""

from jaxgan.data.pipeline import Batches, fit_image, to_float, to_global
from jaxgan.data.sources import (
    balanced_subset,
    open_run_source,
    open_source,
    parse,
    parse_class,
    parse_per_class,
)
from jaxgan.data.two_domain import TwoDomainBatches, open_domains

__all__ = [
    "Batches",
    "TwoDomainBatches",
    "balanced_subset",
    "fit_image",
    "open_domains",
    "open_run_source",
    "open_source",
    "parse",
    "parse_class",
    "parse_per_class",
    "to_float",
    "to_global",
]
