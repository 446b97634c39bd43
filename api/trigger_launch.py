"""The launcher the trigger endpoints (hooks, events) fire through, with errors mapped to HTTP.

Instances start `pending`; `admit_after_commit` runs admission right away (as execute does),
and the reconciler's admission job covers anything left. `launch_for_api` must not commit.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from api.after_commit import after_commit
from api.context import worker_runtime
from api.errors import ConflictError, NotFoundError
from worker.gateway import (
    InactiveWorkflowError,
    LaunchRequest,
    UnknownWorkflowError,
    admit_and_dispatch,
    launch,
)


def launch_for_api(session: Session, request: LaunchRequest) -> uuid.UUID:
    """Create the instance; 409 for an inactive workflow, 404 for a vanished one."""
    try:
        return launch(session, request)
    except InactiveWorkflowError as error:
        raise ConflictError(str(error)) from None
    except UnknownWorkflowError as error:
        raise NotFoundError(str(error)) from None


def admit_after_commit(launched: str) -> None:
    """Start what the committed firing created (`launched` names it), within the admission
    limit; a database failure is logged, not raised (`api.after_commit`)."""
    runtime = worker_runtime()
    after_commit(launched, lambda: admit_and_dispatch(runtime), 0)
