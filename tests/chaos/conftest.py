"""Chaos tests reuse the e2e fixtures (local HTTP server, settings, runtime)."""

from __future__ import annotations

from tests.e2e.conftest import e2e_settings, http_server, runtime

__all__ = ["e2e_settings", "http_server", "runtime"]
