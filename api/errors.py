"""The API error hierarchy and the one place that maps every error to the JSON envelope.

Owns: `ApiError` and its subclasses (raised by every blueprint), the envelope
`{"error": {"code", "message", "details"}}` and the Flask error handlers. Must not leak a stack
trace, SQL or an exception's text from a server error into a response.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable code and optional details."""

    status = 500
    code = "internal_error"
    default_message = "internal server error"

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details or {}
        self.headers = headers or {}


class BadRequestError(ApiError):
    status, code, default_message = 400, "bad_request", "the request could not be understood"


class UnauthorizedError(ApiError):
    status, code, default_message = 401, "unauthorized", "a valid bearer token is required"


class ForbiddenError(ApiError):
    status, code, default_message = 403, "forbidden", "your token's roles do not allow this"


class NotFoundError(ApiError):
    status, code, default_message = 404, "not_found", "no such resource"


class ConflictError(ApiError):
    status, code, default_message = 409, "conflict", "the resource's state does not allow this"


class PayloadTooLargeError(ApiError):
    status, code, default_message = 413, "payload_too_large", "the request body is too large"


class UnprocessableError(ApiError):
    status, code, default_message = 422, "validation_error", "the request is invalid"


class RateLimitedError(ApiError):
    status, code, default_message = 429, "rate_limited", "too many requests"


class ServiceUnavailableError(ApiError):
    status, code, default_message = 503, "unavailable", "a dependency is unavailable"


class StreamLimitError(ServiceUnavailableError):
    code, default_message = "too_many_streams", "every event stream slot is taken"


# Codes for HTTP errors raised by Flask/Werkzeug/webargs rather than by our code.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorEnvelopeSchema(Schema):
    """The body of every error response (documented in OpenAPI)."""

    error = fields.Nested(ErrorBodySchema, required=True)


def error_response(status: int, code: str, message: str,
                   details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def _webargs_details(data: dict[str, Any]) -> dict[str, Any]:
    """Turn webargs' `messages` ({location: {field: [msg]}}) into our `details`."""
    messages = data.get("messages") or data.get("errors")
    if not isinstance(messages, dict):
        return {}
    fields_by_name: dict[str, Any] = {}
    for location_messages in messages.values():
        if isinstance(location_messages, dict):
            fields_by_name.update(location_messages)
        else:
            fields_by_name.setdefault("_schema", location_messages)
    return {"fields": fields_by_name}


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        return error_response(status, "internal_error", "internal server error")
    data = getattr(error, "data", None) or {}
    details = _webargs_details(data) if isinstance(data, dict) else {}
    message = error.description or error.name
    if status == 422:
        message = "the request is invalid"
    if status == 400 and details:
        # webargs reports an undecodable body as a 400 with a `json` message.
        message = "malformed JSON body"
    headers = {}
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return error_response(status, _HTTP_CODES.get(status, "http_error"), message, details,
                          headers)


def _handle_unexpected(error: Exception) -> Response:
    # The traceback goes to the log only; the client sees a fixed message.
    logger.exception("unhandled error while serving a request")
    return error_response(500, "internal_error", "internal server error")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers; call after flask-smorest's Api so ours replace its handler."""
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
