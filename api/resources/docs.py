"""The browsable API description at /api/docs: a self-contained page, no CDN.

Must not fetch anything but /api/openapi.json from this server.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

blp = Blueprint("docs", __name__)

_STATIC = Path(__file__).resolve().parent.parent / "static"


@blp.get("/api/docs")
def docs_page() -> Response:
    return send_from_directory(_STATIC, "docs.html", mimetype="text/html")
