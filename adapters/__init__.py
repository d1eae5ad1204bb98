"""LoRA adapters: what one is (spec, handle, card, the one tensor rule), the store, the registry, upload
validation, and the catalog the answer path resolves from.

The UI needs `AdapterCatalog` (adapters/catalog.py) and the errors; everything an uploaded adapter
goes through before it is stored is in adapters/validate.py and adapters/upload.py. Loading an adapter
onto the model is the engine's job (`engines.residency`, `engines.llamacpp`); this package never imports torch
at import time (except `adapters.synthetic`, which writes random adapters for tests and benchmarks). Imports
`core` only.
"""

from adapters.catalog import AdapterCatalog
from adapters.errors import AdapterError, AdapterNotAvailable, AdapterRejected
from adapters.registry import AdapterInfo, SkippedAdapter
from adapters.store import DEMO_DIR

__all__ = [
    "DEMO_DIR",
    "AdapterCatalog",
    "AdapterError",
    "AdapterInfo",
    "AdapterNotAvailable",
    "AdapterRejected",
    "SkippedAdapter",
]
