"""Security headers on every response; must not change bodies or status codes.

`/api` answers are JSON for programs: nothing in them may run, be framed, be sniffed as
another type or be cached by a shared cache. The docs page runs its own inline script and
style and fetches only /api/openapi.json from this server.
"""

from __future__ import annotations

from flask import Flask, Response, request

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
DOCS_PATH = "/api/docs"

_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _add_headers(response: Response) -> Response:
    for name, value in _ALWAYS.items():
        response.headers.setdefault(name, value)
    path = request.path
    is_docs = path == DOCS_PATH or path.startswith(DOCS_PATH + "/")
    response.headers["Content-Security-Policy"] = DOCS_CSP if is_docs else API_CSP
    if path.startswith("/api"):
        # Answers carry workflow data and audit entries: never keep them in any cache.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


def init_security_headers(app: Flask) -> None:
    app.after_request(_add_headers)
