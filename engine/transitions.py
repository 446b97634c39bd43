"""Instance control transitions (pause, resume, cancel, retry); it never touches storage."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from engine.statuses import FINAL_INSTANCE_STATUSES, InstanceStatus


class ControlAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"


class TransitionError(Exception):
    """A control action is not allowed from the instance's current status."""

    def __init__(self, action: str, current: str, target: str) -> None:
        super().__init__(f"cannot {action} an instance that is {current} (to {target})")
        self.action = action
        self.current = current
        self.target = target


_TARGET: Final = {
    ControlAction.PAUSE: InstanceStatus.PAUSED,
    ControlAction.RESUME: InstanceStatus.RUNNING,
    ControlAction.CANCEL: InstanceStatus.CANCELLED,
    ControlAction.RETRY: InstanceStatus.RUNNING,
}

_ALLOWED_FROM: Final = {
    ControlAction.PAUSE: frozenset({InstanceStatus.RUNNING}),
    ControlAction.RESUME: frozenset({InstanceStatus.PAUSED}),
    ControlAction.CANCEL: frozenset(set(InstanceStatus) - FINAL_INSTANCE_STATUSES),
    ControlAction.RETRY: frozenset({InstanceStatus.FAILED}),
}


def allowed_from(action: ControlAction | str) -> frozenset[InstanceStatus]:
    """The statuses from which `action` is allowed (for conditional UPDATEs)."""
    return _ALLOWED_FROM[ControlAction(action)]


def transition(current: InstanceStatus | str, action: ControlAction | str) -> InstanceStatus:
    """The status after `action`. Raises: TransitionError naming from/to when not allowed;
    ValueError on an unknown action or status.
    """
    control = ControlAction(action)
    status = InstanceStatus(current)
    target = _TARGET[control]
    if status not in _ALLOWED_FROM[control]:
        raise TransitionError(control.value, status.value, target.value)
    return target
