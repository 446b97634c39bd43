"""The Blueprint every /api resource uses: flask-smorest's, with strict argument parsing.

webargs ignores unknown query parameters by default; ours makes each location follow its
schema's `unknown` (RAISE in every input schema), so a misspelt filter is a 422, not silently
ignored. Must not carry routes itself.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from webargs.flaskparser import FlaskParser


class StrictParser(FlaskParser):
    # None: do not override the schema's own Meta.unknown for any location.
    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, Any] = {
        "json": None, "form": None, "json_or_form": None, "querystring": None,
        "query": None, "headers": None, "cookies": None, "files": None, "view_args": None,
        "path": None,
    }


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """Use this instead of `flask_smorest.Blueprint` for every /api resource."""

    ARGUMENTS_PARSER = StrictParser()
