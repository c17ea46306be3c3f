"""Numbers as JSON holds them: JSON has no NaN or infinity, so a missing value is null."""

from __future__ import annotations

import math


def finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
