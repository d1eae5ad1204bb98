"""Plugs the adapter catalog into the app's service (`core.service.Attachment`)."""

from __future__ import annotations

from adapters.catalog import AdapterCatalog
from core.models import Progress
from core.service import ExpertService


def attach_adapters(service: ExpertService, progress: Progress) -> None:
    """Adapters"""
    progress(0.0, "Scanning adapters")
    engine = service.engine
    catalog = AdapterCatalog(engine.spec, service.settings, unload=engine.unload, check_weights=engine.check_weights)
    service.attach_adapters(catalog)
