"""Benchmarks: Flowyard against a minimal Celery-plus-PostgreSQL baseline, run in one process."""
