"""The API's one door into the worker package: the launch, control and resume calls it may use.

API modules import the worker only through here (tests/test_layering.py checks it), so the
surface the HTTP layer depends on stays small and visible. Process entry points under
api/commands/ build workers and schedulers and are exempt. Nothing here adds behaviour.
"""

from __future__ import annotations

from worker import control
from worker.admission import admit_and_dispatch, admit_new, after_new, decide_new
from worker.direct_launch import DirectLaunch, after_direct_launch, launch_directly
from worker.firing import LaunchRequest, fire_trigger
from worker.launch import InactiveWorkflowError, UnknownWorkflowError, create_instance, launch
from worker.nodes.approval import record_decision, resume_after_commit
from worker.plugins import load_node_types
from worker.runtime import WorkerRuntime

__all__ = [
    "DirectLaunch",
    "InactiveWorkflowError",
    "LaunchRequest",
    "UnknownWorkflowError",
    "WorkerRuntime",
    "admit_and_dispatch",
    "admit_new",
    "after_direct_launch",
    "after_new",
    "control",
    "create_instance",
    "decide_new",
    "fire_trigger",
    "launch",
    "launch_directly",
    "load_node_types",
    "record_decision",
    "resume_after_commit",
]
