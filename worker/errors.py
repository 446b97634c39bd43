"""Node failure classes: what a handler raises to say whether another attempt may help."""

from __future__ import annotations


class NodeError(Exception):
    """Root of node failures; retryable unless it is a PermanentNodeError."""


class RetryableNodeError(NodeError):
    """A failure another attempt may fix (timeouts, 5xx, connection errors)."""


class PermanentNodeError(NodeError):
    """A failure no retry can fix (bad config, blocked address, evaluation error)."""


class StepTimeoutError(RetryableNodeError):
    """One attempt ran past the node's timeout_seconds."""
