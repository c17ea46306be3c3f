"""HTML and SVG text from monitored systems: label values are hostile, so every value is escaped, quotes too."""

from __future__ import annotations

import html


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)
