"""Celery side: app factory, one task per node type, orchestrator, reconciler, notifications."""
