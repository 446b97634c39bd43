"""Configure structlog for a process from LOG_FORMAT (json for containers, console for humans).

Called once by process entry points (`flowyard worker`, `flowyard scheduler`); nothing here
runs at import time.
"""

from __future__ import annotations

import logging
import sys

import structlog

from models.settings import Settings


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """structlog events as one JSON object per line, or coloured console lines."""
    renderer: structlog.types.Processor
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
