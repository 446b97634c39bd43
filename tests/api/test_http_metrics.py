"""The API's HTTP metrics on /metrics: requests by method, route and status, and latency."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

Headers = dict[str, str]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scraped(client: FlaskClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.get_data(as_text=True))
        for sample in family.samples
    }


def _requests(samples: Samples, method: str, route: str, status: str) -> float:
    key = ("flowyard_http_requests_total",
           (("method", method), ("route", route), ("status", status)))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_route_template_method_and_status(
        client: FlaskClient, viewer: Headers) -> None:
    route = "/api/workflows/<uuid:workflow_id>"
    before = scraped(client)
    for _ in range(3):
        # A different id each time: still one series, labelled by the route's rule.
        assert client.get(f"/api/workflows/{uuid.uuid4()}", headers=viewer).status_code == 404
    assert client.get("/api/workflows", headers=viewer).status_code == 200
    assert client.get("/api/workflows").status_code == 401  # refused before the view
    assert client.get("/no/such/path").status_code == 404
    after = scraped(client)

    def grew(method: str, route: str, status: str) -> float:
        return _requests(after, method, route, status) - _requests(before, method, route, status)

    assert grew("GET", route, "404") == 3
    assert grew("GET", "/api/workflows", "200") == 1
    assert grew("GET", "/api/workflows", "401") == 1
    assert grew("GET", "unmatched", "404") == 1
    assert not any(str(key).count("/no/such/path") for key in after)
    # The scrape before counted too, once it had answered.
    assert grew("GET", "/metrics", "200") == 1


def test_each_answered_request_is_timed_under_its_route(
        client: FlaskClient, viewer: Headers) -> None:
    count_key = ("flowyard_http_request_duration_seconds_count",
                 (("method", "GET"), ("route", "/api/workflows")))
    sum_key = ("flowyard_http_request_duration_seconds_sum", count_key[1])
    before = scraped(client)
    for _ in range(2):
        client.get("/api/workflows", headers=viewer)
    after = scraped(client)
    assert after[count_key] - before.get(count_key, 0.0) == 2
    assert after[sum_key] > before.get(sum_key, 0.0)
    inf_key = ("flowyard_http_request_duration_seconds_bucket",
               (("le", "+Inf"), ("method", "GET"), ("route", "/api/workflows")))
    assert after[inf_key] == after[count_key]
