"""``/metrics``: what it counts, and that only a direct scraper on an allowed address
gets it."""

from __future__ import annotations

import httpx
import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from observability.metrics import HotHistogram
from server.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def client(address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_direct_scrape_from_loopback_gets_the_metrics():
    async with client() as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    for name in (
        "relais_websocket_connections",
        "relais_sends_total",
        "relais_acks_total",
        "relais_store_batch_size_bucket",
        "relais_store_batch_seconds_bucket",
        "relais_fanout_lag_seconds_bucket",
        "relais_push_jobs_waiting",
        "relais_push_jobs_pending",
    ):
        assert f"\n{name}" in response.text, name


@pytest.mark.parametrize(
    ("address", "headers", "method"),
    [
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.7"}, "GET"),  # came through nginx
        ("127.0.0.1", {"X-Real-IP": "203.0.113.7"}, "GET"),
        ("127.0.0.1", {"Forwarded": "for=203.0.113.7"}, "GET"),
        ("203.0.113.7", {}, "GET"),  # not an allowed network
        ("127.0.0.1", {}, "POST"),
    ],
)
async def test_metrics_are_refused_through_a_proxy_or_from_elsewhere(address, headers, method):
    async with client(address) as http:
        response = await http.request(method, "/metrics", headers=headers)
    assert response.status_code == 404
    assert "relais_" not in response.text


async def test_metrics_off_when_no_network_is_allowed(monkeypatch):
    monkeypatch.setattr(application, "metrics_networks", [])
    async with client() as http:
        assert (await http.get("/metrics")).status_code == 404


async def test_rest_errors_are_counted_by_code():
    before = value("relais_errors_total", transport="rest", code="not_authenticated")
    requests_before = value("relais_http_requests_total", status="4xx")
    async with client() as http:
        response = await http.get("/api/v1/rooms", headers={"Host": "127.0.0.1"})
    assert response.status_code == 401
    assert value("relais_errors_total", transport="rest", code="not_authenticated") == before + 1
    assert value("relais_http_requests_total", status="4xx") == requests_before + 1


async def test_websocket_connections_and_ws_errors_are_counted(runtime):
    opened = value("relais_websocket_connections_opened_total")
    open_now = value("relais_websocket_connections")
    errors = value("relais_errors_total", transport="ws", code="not_authenticated")
    socket = WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await socket.connect()
    assert connected
    assert value("relais_websocket_connections") == open_now + 1
    assert value("relais_websocket_connections_opened_total") == opened + 1
    await socket.send_json_to({"type": "sync", "rooms": {}})
    answer = await socket.receive_json_from(timeout=5)
    assert (answer["type"], answer["code"]) == ("error", "not_authenticated")
    assert value("relais_errors_total", transport="ws", code="not_authenticated") == errors + 1
    await socket.disconnect()
    assert value("relais_websocket_connections") == open_now


def test_hot_path_histogram_gives_cumulative_prometheus_buckets():
    histogram = HotHistogram("relais_test_seconds", "test", buckets=(0.01, 0.1, 1))
    for value in (0.005, 0.01, 0.05, 0.5, 3):
        histogram.observe(value)
    samples = {(s.name, s.labels.get("le")): s.value for s in histogram.family().samples}
    assert samples[("relais_test_seconds_bucket", "0.01")] == 2  # le: 0.01 counts itself
    assert samples[("relais_test_seconds_bucket", "0.1")] == 3
    assert samples[("relais_test_seconds_bucket", "1.0")] == 4
    assert samples[("relais_test_seconds_bucket", "+Inf")] == 5
    assert samples[("relais_test_seconds_count", None)] == 5
    assert samples[("relais_test_seconds_sum", None)] == pytest.approx(3.565)
