"""Node-type specs (config schema, handles, queue) and the built-in ones; it never runs a node.

Every config value may be a secret reference `{"$secret": "NAME"}` (resolved by the worker at
run time) or a string with `{{ }}` templates (rendered by the worker before the handler runs),
so config schemas accept a template string in place of any typed value, and configs are
checked with secret references replaced by placeholders.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from marshmallow import RAISE, Schema, ValidationError, fields, validate

ERROR_HANDLE: Final = "error"
DEFAULT_HANDLE: Final = "default"
SECRET_KEY: Final = "$secret"
_SECRET_PLACEHOLDER = "{{ secret }}"

NodeRunner = Callable[[dict[str, Any], Any], Any]


class NodeTypeError(Exception):
    """A node-type registry is inconsistent (e.g. two types with one name)."""


class NodeConfigError(Exception):
    """A node config does not satisfy its type's schema; `messages` are keyed by field."""

    def __init__(self, messages: dict[str, Any]) -> None:
        super().__init__(f"invalid config: {messages}")
        self.messages = messages


def is_secret_ref(value: Any) -> bool:
    """Whether a config value is exactly `{"$secret": "NAME"}`."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get(SECRET_KEY), str)
        and bool(value[SECRET_KEY])
    )


def secret_names(value: Any) -> list[str]:
    """Names of every secret referenced in a config value, in order of appearance."""
    if is_secret_ref(value):
        return [value[SECRET_KEY]]
    if isinstance(value, dict):
        return [name for item in value.values() for name in secret_names(item)]
    if isinstance(value, list):
        return [name for item in value for name in secret_names(item)]
    return []


def _with_placeholders(value: Any) -> Any:
    if is_secret_ref(value):
        return _SECRET_PLACEHOLDER
    if isinstance(value, dict):
        return {key: _with_placeholders(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_placeholders(item) for item in value]
    return value


@functools.cache
def _schema(schema_class: type[Schema]) -> Schema:
    """One instance per config schema: loading keeps no state on it, building one per step
    cost more than the load."""
    return schema_class()


@dataclass(frozen=True)
class NodeType:
    """What the engine and the API know about a node type; `run` is set by the worker."""

    name: str
    config_schema: type[Schema]
    handles: tuple[str, ...] = (DEFAULT_HANDLE,)
    default_handle: str | None = DEFAULT_HANDLE
    queue: str = ""
    expression_fields: tuple[str, ...] = ()
    # The handler only computes its result from its config and context: no side effect, no
    # wait, nothing a second run would repeat. Such a step may run before it is claimed,
    # its claim and result then recorded in one transaction (it is never seen `running`).
    pure: bool = False
    run: NodeRunner | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.queue:
            object.__setattr__(self, "queue", self.name)

    def offers(self, handle: str) -> bool:
        """Whether an edge may leave this type through `handle` (the error handle always)."""
        return handle == ERROR_HANDLE or handle in self.handles

    def config_problems(self, config: Any) -> dict[str, Any]:
        """Marshmallow messages keyed by field; empty when the config is valid."""
        try:
            _schema(self.config_schema).load(_with_placeholders(config))
        except ValidationError as error:
            messages = error.messages
            return dict(messages) if isinstance(messages, dict) else {"_schema": messages}
        return {}

    def load_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config with defaults applied, after templates and secrets are resolved.

        Raises: NodeConfigError.
        """
        try:
            loaded = _schema(self.config_schema).load(dict(config))
        except ValidationError as error:
            messages = error.messages
            raise NodeConfigError(
                dict(messages) if isinstance(messages, dict) else {"_schema": messages}
            ) from None
        return dict(loaded)


def build_registry(types: Iterable[NodeType]) -> dict[str, NodeType]:
    """A name -> NodeType dict. Raises: NodeTypeError on a duplicate name."""
    registry: dict[str, NodeType] = {}
    for node_type in types:
        if node_type.name in registry:
            raise NodeTypeError(f"node type {node_type.name!r} is registered twice")
        registry[node_type.name] = node_type
    return registry


class Templated(fields.Field):  # type: ignore[type-arg]
    """A field that also accepts a `{{ }}` template string in place of its typed value."""

    def __init__(self, inner: fields.Field, **kwargs: Any) -> None:  # type: ignore[type-arg]
        super().__init__(**kwargs)
        self.inner = inner

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if isinstance(value, str) and "{{" in value:
            return value
        return self.inner.deserialize(value, attr, data, **kwargs)


class ConfigSchema(Schema):
    """Base of config schemas: unknown keys are errors."""

    class Meta:
        unknown = RAISE


class EmptyConfig(ConfigSchema):
    """Types without config."""


class TransformConfig(ConfigSchema):
    output = fields.Raw(allow_none=True)


class ConditionConfig(ConfigSchema):
    expression = fields.String(required=True, validate=validate.Length(min=1))


def _positive(**kwargs: Any) -> Templated:
    number = fields.Float(allow_nan=False, validate=validate.Range(min=0, min_inclusive=False))
    return Templated(number, **kwargs)


class DelayConfig(ConfigSchema):
    seconds = _positive(required=True)


HTTP_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class HttpConfig(ConfigSchema):
    method = Templated(fields.String(validate=validate.OneOf(HTTP_METHODS)), load_default="GET")
    url = Templated(fields.Url(schemes={"http", "https"}, require_tld=False), required=True)
    headers = Templated(fields.Dict(keys=fields.String(), values=fields.Raw()))
    query = Templated(fields.Dict(keys=fields.String(), values=fields.Raw()))
    body = fields.Raw(allow_none=True)
    timeout_seconds = _positive()
    expect_status = Templated(
        fields.List(fields.Integer(strict=True, validate=validate.Range(min=100, max=599)))
    )


class ApprovalConfig(ConfigSchema):
    approver_role = fields.String(validate=validate.Length(min=1))
    message = fields.String()
    expires_in_seconds = _positive()
    data = fields.Raw(allow_none=True)


NOTIFICATION_CHANNELS: Final = ("email", "slack", "webhook", "sms")


class NotificationConfig(ConfigSchema):
    channel = Templated(
        fields.String(validate=validate.OneOf(NOTIFICATION_CHANNELS)), required=True
    )
    recipients = Templated(
        fields.List(
            fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1)
        ),
        required=True,
    )
    subject = fields.String()
    message = fields.String(required=True)
    secret = fields.String()
    required = Templated(fields.Boolean(truthy={True}, falsy={False}))


class IntegrationConfig(ConfigSchema):
    connector = fields.String(required=True, validate=validate.Length(min=1))
    action = fields.String(required=True, validate=validate.Length(min=1))
    parameters = Templated(fields.Dict(keys=fields.String(), values=fields.Raw()))
    credential = fields.String()


class SubworkflowConfig(ConfigSchema):
    workflow_id = Templated(fields.UUID(), required=True)
    input = fields.Raw(allow_none=True)


def _builtin_types() -> tuple[NodeType, ...]:
    return (
        NodeType("trigger", EmptyConfig, pure=True),
        NodeType("noop", EmptyConfig, pure=True),
        NodeType("transform", TransformConfig, pure=True),
        NodeType(
            "condition",
            ConditionConfig,
            handles=("true", "false"),
            default_handle=None,
            expression_fields=("expression",),
            pure=True,
        ),
        NodeType("delay", DelayConfig),
        NodeType("http", HttpConfig),
        NodeType(
            "approval",
            ApprovalConfig,
            handles=("approved", "rejected"),
            default_handle="approved",
        ),
        NodeType("notification", NotificationConfig),
        NodeType("integration", IntegrationConfig),
        NodeType("subworkflow", SubworkflowConfig),
    )


BUILTIN_NODE_TYPES: Final[dict[str, NodeType]] = build_registry(_builtin_types())
