"""The Blueprint every /api resource uses: flask-smorest's, with strict argument parsing.

webargs ignores unknown query parameters by default; ours makes each location follow its
schema's `unknown` (RAISE in every input schema), so a misspelt filter is a 422, not silently
ignored. An argument schema is one instance per endpoint, not one per request. Must not
carry routes itself.
"""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
from flask_smorest.utils import resolve_schema_instance
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; PostgreSQL's jsonb refuses them too.
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _contains_nul(value: Any) -> bool:
    """Whether any string (key or value) holds NUL, which PostgreSQL text and jsonb refuse."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class StrictParser(FlaskParser):
    # None: do not override the schema's own Meta.unknown for any location.
    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, Any] = {
        "json": None, "form": None, "json_or_form": None, "querystring": None,
        "query": None, "headers": None, "cookies": None, "files": None, "view_args": None,
        "path": None,
    }

    def _raw_load_json(self, req: flask.Request) -> Any:
        """The JSON body, refusing NaN/Infinity and NUL (a 400 like any malformed body).

        webargs reads a decode error whose `doc` is empty as "no body", so `doc` is never empty.
        """
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise json.JSONDecodeError(f"body is not UTF-8: {error.reason}", "?", 0) from None
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise json.JSONDecodeError("the body nests too deeply", text, 0) from None
        if "\\u0000" in text and _contains_nul(value):
            raise json.JSONDecodeError("strings must not contain \\u0000", text, 0)
        return value


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """Use this instead of `flask_smorest.Blueprint` for every /api resource."""

    ARGUMENTS_PARSER = StrictParser()

    def arguments(self, schema: Any, **kwargs: Any) -> Any:
        """flask-smorest's, with a schema class made an instance once, here.

        Given a class, webargs builds an instance for every request (its fields bound
        again each time). A marshmallow 4 schema keeps no state between loads, so one
        instance serves every request and thread, as the response schemas already do.
        """
        return super().arguments(resolve_schema_instance(schema), **kwargs)
