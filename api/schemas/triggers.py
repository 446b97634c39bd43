"""Request and response bodies of trigger endpoints, and the per-type configuration checks.

Must never put a webhook secret into a response: `TriggerSchema` shows `secret_set` instead.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from api.schemas.common import InputSchema, UtcDateTime
from engine.expressions import ExpressionError, compile_expression
from engine.statuses import TriggerType
from models.triggers import ScheduleError, check_cron, schedule_zone

TRIGGER_TYPES = [member.value for member in TriggerType]


class TriggerCreateSchema(InputSchema):
    trigger_type = fields.String(required=True, validate=validate.OneOf(TRIGGER_TYPES))
    trigger_source = fields.String(allow_none=True, load_default=None,
                                   validate=validate.Length(max=100))
    configuration = fields.Dict(keys=fields.String(), load_default=dict)
    is_active = fields.Boolean(load_default=True)


class TriggerUpdateSchema(InputSchema):
    """Fields to change; a webhook `configuration` without `secret` keeps the stored one."""

    trigger_type = fields.String(validate=validate.OneOf(TRIGGER_TYPES))
    trigger_source = fields.String(allow_none=True, validate=validate.Length(max=100))
    configuration = fields.Dict(keys=fields.String())
    is_active = fields.Boolean()


class ManualConfigSchema(InputSchema):
    """A manual trigger only documents that people start the workflow; it may hold an input."""

    input = fields.Dict(keys=fields.String())


class WebhookConfigSchema(InputSchema):
    secret = fields.String(allow_none=True, validate=validate.Length(min=8, max=255))


class ScheduleConfigSchema(InputSchema):
    cron = fields.String(required=True)
    timezone = fields.String(load_default="UTC")
    input = fields.Dict(keys=fields.String(), load_default=dict)

    @validates("cron")
    def _cron(self, value: str, **_: Any) -> None:
        try:
            check_cron(value)
        except ScheduleError as error:
            raise ValidationError(str(error)) from None

    @validates("timezone")
    def _timezone(self, value: str, **_: Any) -> None:
        try:
            schedule_zone(value)
        except ScheduleError as error:
            raise ValidationError(str(error)) from None


class EventConfigSchema(InputSchema):
    source = fields.String(required=True, validate=validate.Length(min=1, max=255))
    type = fields.String(required=True, validate=validate.Length(min=1, max=255))
    filter = fields.String(allow_none=True)

    @validates("filter")
    def _filter(self, value: str | None, **_: Any) -> None:
        if value is None:
            return
        try:
            compile_expression(value)
        except ExpressionError as error:
            raise ValidationError(str(error)) from None


CONFIG_SCHEMAS: dict[str, type[Schema]] = {
    TriggerType.MANUAL.value: ManualConfigSchema,
    TriggerType.WEBHOOK.value: WebhookConfigSchema,
    TriggerType.SCHEDULE.value: ScheduleConfigSchema,
    TriggerType.EVENT.value: EventConfigSchema,
}


def load_trigger_configuration(trigger_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    """The configuration checked and completed (defaults) for its trigger type.

    Raises:
        ValidationError: messages keyed by configuration field.
    """
    loaded: dict[str, Any] = CONFIG_SCHEMAS[trigger_type]().load(configuration)
    return loaded


class _TriggerConfigurationField(fields.Field):
    """The stored configuration with the webhook secret left out."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            return {}
        return {key: item for key, item in value.items() if key != "secret"}


class TriggerSchema(Schema):
    id = fields.UUID(required=True)
    workflow_id = fields.UUID(required=True)
    trigger_type = fields.String(required=True)
    trigger_source = fields.String(allow_none=True)
    configuration = _TriggerConfigurationField(
        metadata={"type": "object", "description": "without the webhook secret"})
    secret_set = fields.Method("_secret_set", metadata={"type": "boolean"})
    is_active = fields.Boolean()
    last_triggered = UtcDateTime(allow_none=True)
    trigger_count = fields.Integer()
    next_fire_at = UtcDateTime(allow_none=True)
    webhook_url = fields.Method("_webhook_url", metadata={"type": "string", "nullable": True})
    created_at = UtcDateTime()
    updated_at = UtcDateTime()

    def _secret_set(self, trigger: Any) -> bool:
        return bool((trigger.configuration or {}).get("secret"))

    def _webhook_url(self, trigger: Any) -> str | None:
        if trigger.trigger_type != TriggerType.WEBHOOK.value:
            return None
        return f"/api/hooks/{trigger.id}"


class EventSchema(InputSchema):
    source = fields.String(required=True, validate=validate.Length(min=1, max=255))
    type = fields.String(required=True, validate=validate.Length(min=1, max=255))
    payload = fields.Dict(keys=fields.String(), load_default=dict)


class FiredSchema(Schema):
    trigger_id = fields.UUID(required=True)
    workflow_id = fields.UUID(required=True)
    instance_id = fields.UUID(required=True)


class EventResultSchema(Schema):
    started = fields.List(fields.Nested(FiredSchema), required=True)
    errors = fields.List(fields.Dict(), required=True)


class HookResultSchema(Schema):
    instance_id = fields.UUID(required=True)
    trigger_id = fields.UUID(required=True)
    workflow_id = fields.UUID(required=True)
    status = fields.String(required=True)
