"""Node-type specs and registry, retry backoff, and instance control transitions."""

from __future__ import annotations

import pytest

from engine.backoff import retry_delay_seconds
from engine.nodetypes import (
    BUILTIN_NODE_TYPES,
    ERROR_HANDLE,
    EmptyConfig,
    NodeConfigError,
    NodeType,
    NodeTypeError,
    build_registry,
    is_secret_ref,
    secret_names,
)
from engine.statuses import InstanceStatus
from engine.transitions import TransitionError, allowed_from, transition

IS = InstanceStatus


def test_builtin_types_of_the_contract() -> None:
    assert list(BUILTIN_NODE_TYPES) == [
        "trigger", "noop", "transform", "condition", "delay",
        "http", "approval", "notification", "integration", "subworkflow",
    ]  # fmt: skip
    condition = BUILTIN_NODE_TYPES["condition"]
    assert (condition.handles, condition.default_handle) == (("true", "false"), None)
    assert condition.expression_fields == ("expression",)
    approval = BUILTIN_NODE_TYPES["approval"]
    assert (approval.handles, approval.default_handle) == (("approved", "rejected"), "approved")
    for spec in BUILTIN_NODE_TYPES.values():
        assert spec.queue == spec.name
        assert spec.run is None
        assert spec.offers(ERROR_HANDLE)
    assert not BUILTIN_NODE_TYPES["noop"].offers("true")


def test_registry_refuses_duplicate_names() -> None:
    with pytest.raises(NodeTypeError, match="'noop'"):
        build_registry([BUILTIN_NODE_TYPES["noop"], NodeType("noop", EmptyConfig)])
    custom = NodeType("custom", EmptyConfig, queue="slow")
    assert build_registry([custom]) == {"custom": custom}
    assert custom.queue == "slow"


@pytest.mark.parametrize(
    ("type_name", "config", "fields"),
    [
        ("delay", {"seconds": -1}, {"seconds"}),
        ("delay", {}, {"seconds"}),
        ("http", {"url": "ftp://x.example"}, {"url"}),
        ("http", {"url": "https://x.example", "method": "BREW"}, {"method"}),
        ("http", {"url": "https://x.example", "expect_status": [700]}, {"expect_status"}),
        ("notification", {"channel": "pigeon", "recipients": ["a"], "message": "m"}, {"channel"}),
        ("notification", {"channel": "email", "recipients": [], "message": "m"}, {"recipients"}),
        ("integration", {"connector": "jira"}, {"action"}),
        ("subworkflow", {"workflow_id": "nope"}, {"workflow_id"}),
        ("approval", {"expires_in_seconds": 0}, {"expires_in_seconds"}),
        ("noop", {"anything": 1}, {"anything"}),
    ],
)
def test_config_problems_name_the_field(type_name: str, config: dict, fields: set[str]) -> None:
    assert set(BUILTIN_NODE_TYPES[type_name].config_problems(config)) == fields


def test_load_config_applies_defaults_and_raises_named_errors() -> None:
    http = BUILTIN_NODE_TYPES["http"]
    assert http.load_config({"url": "https://x.example"}) == {
        "url": "https://x.example",
        "method": "GET",
    }
    with pytest.raises(NodeConfigError) as caught:
        BUILTIN_NODE_TYPES["delay"].load_config({"seconds": "soon"})
    assert set(caught.value.messages) == {"seconds"}


def test_secret_references() -> None:
    assert is_secret_ref({"$secret": "TOKEN"})
    assert not is_secret_ref({"$secret": "TOKEN", "x": 1})
    assert not is_secret_ref({"$secret": ""})
    value = {"a": {"$secret": "A"}, "b": [{"$secret": "B"}, {"c": {"$secret": "C"}}], "d": "x"}
    assert secret_names(value) == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("first", "retry", "expected"),
    [
        (1, 1, 1),
        (1, 2, 2),
        (1, 3, 4),
        (1, 9, 256),
        (1, 10, 300),
        (5, 3, 20),
        (0, 4, 0),
        (2, 10_000, 300),
    ],
)
def test_retry_delay_doubles_and_caps_at_300(first: float, retry: int, expected: float) -> None:
    assert retry_delay_seconds(first, retry) == expected


def test_retry_delay_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        retry_delay_seconds(1, 0)
    with pytest.raises(ValueError):
        retry_delay_seconds(-1, 1)


@pytest.mark.parametrize(
    ("current", "action", "target"),
    [
        (IS.RUNNING, "pause", IS.PAUSED),
        (IS.PAUSED, "resume", IS.RUNNING),
        (IS.PENDING, "cancel", IS.CANCELLED),
        (IS.RUNNING, "cancel", IS.CANCELLED),
        (IS.PAUSED, "cancel", IS.CANCELLED),
        (IS.FAILED, "retry", IS.RUNNING),
    ],
)
def test_allowed_transitions(current: InstanceStatus, action: str, target: InstanceStatus) -> None:
    assert transition(current, action) == target


@pytest.mark.parametrize(
    ("current", "action"),
    [
        (IS.PENDING, "pause"),
        (IS.PAUSED, "pause"),
        (IS.COMPLETED, "pause"),
        (IS.RUNNING, "resume"),
        (IS.PENDING, "resume"),
        (IS.COMPLETED, "cancel"),
        (IS.FAILED, "cancel"),
        (IS.CANCELLED, "cancel"),
        (IS.RUNNING, "retry"),
        (IS.COMPLETED, "retry"),
    ],
)
def test_refused_transitions_name_from_and_to(current: InstanceStatus, action: str) -> None:
    with pytest.raises(TransitionError) as caught:
        transition(current, action)
    assert caught.value.current == current.value
    assert current.value in str(caught.value) and action in str(caught.value)


def test_allowed_from_matches_transition() -> None:
    for action in ("pause", "resume", "cancel", "retry"):
        for status in InstanceStatus:
            allowed = status in allowed_from(action)
            try:
                transition(status, action)
            except TransitionError:
                assert not allowed
            else:
                assert allowed
