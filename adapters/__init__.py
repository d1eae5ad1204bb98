"""LoRA adapters: the store, the registry, pre-flight validation, and hot-swap onto the one base model.

The UI needs only `AdapterManager` (see adapters/manager.py) and the errors; everything an
uploaded adapter goes through before PEFT sees it is in adapters/validate.py and adapters/upload.py.
Imports `core` only; nothing heavy happens at import time.
"""

from adapters.errors import AdapterError, AdapterNotAvailable, AdapterRejected
from adapters.manager import AdapterManager
from adapters.registry import AdapterInfo, SkippedAdapter

__all__ = ["AdapterError", "AdapterInfo", "AdapterManager", "AdapterNotAvailable", "AdapterRejected", "SkippedAdapter"]
