"""Times as the app writes them (ISO 8601, UTC) in cards and manifests, read back."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def parse_date(value: Any) -> datetime | None:
    """An ISO 8601 time as written in cards and manifests ("2025-11-21T14:30:05Z"), timezone-aware (UTC when it
    names none); None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
