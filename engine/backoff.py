"""Retry backoff: how long to wait before a retry; it never sleeps or reads the clock."""

from __future__ import annotations

from typing import Final

MAX_RETRY_DELAY_SECONDS: Final = 300.0


def retry_delay_seconds(first_delay: float, retry_number: int) -> float:
    """Delay before retry `retry_number` (1 = first retry): first_delay, doubling, capped at 300.

    Raises: ValueError when retry_number < 1 or first_delay < 0.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number must be >= 1, got {retry_number}")
    if first_delay < 0:
        raise ValueError(f"first_delay must be >= 0, got {first_delay}")
    # Cap the exponent too, so a huge retry number cannot overflow the float.
    exponent = min(retry_number - 1, 64)
    return min(first_delay * (2.0**exponent), MAX_RETRY_DELAY_SECONDS)
