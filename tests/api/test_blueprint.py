"""The /api Blueprint's argument parsing: one schema instance per endpoint, still strict."""

from __future__ import annotations

from typing import Any, ClassVar

import flask_smorest
import pytest
from flask import Flask
from flask.views import MethodView
from marshmallow import RAISE, Schema, fields

from api.blueprint import Blueprint


class CountedSchema(Schema):
    """Counts how many instances were built."""

    class Meta:
        unknown = RAISE

    built: ClassVar[int] = 0
    name = fields.String(required=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).built += 1


@pytest.fixture
def things_app() -> Flask:
    CountedSchema.built = 0
    app = Flask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    blp = Blueprint("things", __name__, url_prefix="/api")

    @blp.route("/things")
    class Things(MethodView):
        @blp.arguments(CountedSchema)
        @blp.response(200)
        def post(self, body: dict[str, Any]) -> Any:
            return body

    flask_smorest.Api(app).register_blueprint(blp)
    return app


def test_a_schema_class_is_built_once_not_per_request(things_app: Flask) -> None:
    client = things_app.test_client()
    built_at_start = CountedSchema.built
    for name in ("a", "b", "c"):
        answer = client.post("/api/things", json={"name": name})
        assert answer.status_code == 200
        assert answer.json == {"name": name}
    assert built_at_start == 1
    assert CountedSchema.built == 1


def test_the_shared_instance_still_refuses_bad_bodies(things_app: Flask) -> None:
    client = things_app.test_client()
    unknown = client.post("/api/things", json={"name": "a", "extra": 1})
    assert unknown.status_code == 422
    assert "extra" in unknown.get_data(as_text=True)
    missing = client.post("/api/things", json={})
    assert missing.status_code == 422
    # A refused body leaves nothing behind for the next request.
    assert client.post("/api/things", json={"name": "b"}).json == {"name": "b"}
