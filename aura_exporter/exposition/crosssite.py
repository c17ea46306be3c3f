"""Requests a browser sends on behalf of another site's page, refused where they could act or read.

A page on another site can make a browser POST to /-/reload or open the /api/v1/decisions WebSocket
with the credentials it holds for the exporter (basic auth, client certificates): the browser says so
in `Sec-Fetch-Site` (every current browser) or, failing that, in an `Origin` naming another host.
Clients that are not browsers (curl, Prometheus, a config reloader) send neither and are not affected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

SAME_SITE = ("same-origin", "none")  # "none": typed in the address bar or a bookmark, not sent by a page


def cross_site(request: web.Request) -> bool:
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.lower() not in SAME_SITE
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.host.lower()  # "null" (a sandboxed page) has no host


def refusal() -> web.Response:
    return web.Response(status=403, text="Cross-site request refused.\n")
