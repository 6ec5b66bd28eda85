"""The JSON batch client against the local upsert endpoint (no database)."""

import json
import socket

import pytest

from resources.publisher import HttpBatchSender, PublisherResource, PublishError
from tests.fakes.publish_server import publish_server


def batch(*ids: str) -> bytes:
    return json.dumps([{"record_id": i, "value": i.upper()} for i in ids]).encode()


def test_upsert_by_record_id_and_socrata_counters() -> None:
    with publish_server(token="t") as server, HttpBatchSender(server.url, "t") as client:
        first = client.send(batch("a", "b"), "chunk 1")
        again = client.send(batch("b", "c"), "chunk 2")
    assert (first.created, first.updated, first.attempts) == (2, 0, 1)
    assert (again.created, again.updated) == (1, 1)
    assert sorted(server.state.store) == ["a", "b", "c"]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retried_statuses(status: int) -> None:
    with publish_server() as server, HttpBatchSender(server.url, backoff_seconds=0) as client:
        server.fail_next(2, status)
        assert client.send(batch("a"), "chunk 1").attempts == 3
        server.fail_next(9, status)
        with pytest.raises(PublishError, match=f"chunk 7: .* failed 6 times, last HTTP {status}"):
            client.send(batch("a"), "chunk 7")


def test_refused_batches_are_not_retried() -> None:
    with publish_server() as server, HttpBatchSender(server.url, backoff_seconds=0) as client:
        with pytest.raises(PublishError, match="chunk 3: .* HTTP 400"):
            client.send(b'[{"no_id": 1}]', "chunk 3")
        assert server.state.requests == 1


def test_a_closed_port_is_retried_then_named() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.json"
    with (
        HttpBatchSender(url, max_retries=2, backoff_seconds=0) as client,
        pytest.raises(PublishError, match="chunk 1: .* failed 3 times, last ConnectError"),
    ):
        client.send(batch("a"), "chunk 1")


def test_settings_fill_the_resource(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv("PUBLISH_URL", raising=False)
    with pytest.raises(PublishError, match="no publication endpoint"):
        PublisherResource().sender()
    monkeypatch.setenv("PUBLISH_URL", "http://127.0.0.1:1/env.json")
    monkeypatch.setenv("PUBLISH_DIR", str(tmp_path))
    resource = PublisherResource()
    assert resource.endpoint() == "http://127.0.0.1:1/env.json"
    assert resource.endpoint("http://other/x.json") == "http://other/x.json"
    assert resource.csv_dir() == tmp_path
    assert PublisherResource(url="http://field/x.json").endpoint() == "http://field/x.json"
