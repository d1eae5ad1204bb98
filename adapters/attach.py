"""Plugs the adapter manager into the app's service (`core.service.Attachment`)."""

from __future__ import annotations

from adapters.manager import AdapterManager
from core.models import Progress
from core.service import ExpertService


def attach_adapters(service: ExpertService, progress: Progress) -> None:
    """Adapters"""
    progress(0.0, "Scanning adapters")
    service.adapters = AdapterManager(service.pipeline.engine, service.settings)
