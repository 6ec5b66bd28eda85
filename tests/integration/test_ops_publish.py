"""Publishing on real PostgreSQL to a local upsert endpoint and to CSV files."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
import pytest
from dagster import RunConfig

from platform_assets.ops.jobs import PublishConfig, publish_job
from platform_assets.ops.publish import PublishError, export_csv, publish_json
from resources.publisher import DryRunResource, HttpBatchSender, PublisherResource
from resources.publisher import PublishError as SendError
from resources.warehouse import DatabaseUrls, WarehouseResource
from tests.fakes.publish_server import publish_server

ROWS = 25_000


@pytest.fixture
def vessels(database: DatabaseUrls) -> DatabaseUrls:
    """public.pub_vessels (key: country, cfr) with ROWS rows, and a view over it."""
    with psycopg.connect(database.libpq) as conn:
        conn.execute(
            "CREATE TABLE public.pub_vessels (country text, cfr text, name text, length numeric, "
            "seen_at timestamptz, PRIMARY KEY (country, cfr))"
        )
        conn.execute(
            "INSERT INTO public.pub_vessels SELECT 'FRA', 'CFR' || lpad(n::text, 8, '0'), "
            "'Vessel \"' || n || E'\\u00e9', n / 10.0, "
            "timestamptz '2026-12-01 00:00+00' + n * interval '1 minute' "
            "FROM generate_series(1, %s) AS n",
            (ROWS,),
        )
        conn.execute(
            "CREATE VIEW public.pub_long_vessels AS SELECT cfr, name FROM public.pub_vessels "
            "WHERE length > 2000"
        )
    return database


def sender(url: str, **kw: object) -> HttpBatchSender:
    return HttpBatchSender(url, "secret", backoff_seconds=0.0, **kw)  # type: ignore[arg-type]


def test_publish_in_chunks_of_10000_then_again_without_duplicates(vessels: DatabaseUrls) -> None:
    with publish_server(token="secret") as server, sender(server.url) as client:
        with psycopg.connect(vessels.libpq) as conn:
            first = publish_json(conn, "public.pub_vessels", client)
        assert [c.rows for c in first.chunks] == [10_000, 10_000, 5_000]
        assert [c.created for c in first.chunks] == [10_000, 10_000, 5_000]
        assert len(server.state.store) == ROWS

        with psycopg.connect(vessels.libpq) as conn:
            conn.execute("UPDATE public.pub_vessels SET name = 'renamed' WHERE cfr = 'CFR00000007'")
            conn.execute("SET TimeZone = 'Pacific/Auckland'")  # ids must not depend on it
            again = publish_json(conn, "public.pub_vessels", client)
        assert sum(c.updated for c in again.chunks) == ROWS
        assert sum(c.created for c in again.chunks) == 0
        assert len(server.state.store) == ROWS

    rows = [r for r in server.state.store.values() if r["cfr"] == "CFR00000007"]
    assert len(rows) == 1 and rows[0]["name"] == "renamed"
    one = next(iter(server.state.store.values()))
    assert list(one) == ["record_id", "country", "cfr", "name", "length", "seen_at"]
    assert len(one["record_id"]) == 32
    assert any(r["name"] == 'Vessel "1é' for r in server.state.store.values())
    assert one["seen_at"].endswith("+00:00")


def test_5xx_answers_are_retried_and_4xx_are_not(vessels: DatabaseUrls) -> None:
    with publish_server(token="secret") as server, sender(server.url, max_retries=3) as client:
        server.fail_next(2, 503)
        with psycopg.connect(vessels.libpq) as conn:
            summary = publish_json(conn, "public.pub_vessels", client)
        assert summary.chunks[0].attempts == 3
        assert [c.attempts for c in summary.chunks[1:]] == [1, 1]
        assert len(server.state.store) == ROWS

        server.fail_next(10, 502)
        with (
            psycopg.connect(vessels.libpq) as conn,
            pytest.raises(SendError, match="chunk 1 of public.pub_vessels: .* failed 4 times"),
        ):
            publish_json(conn, "public.pub_vessels", client)

    with publish_server(token="other") as server, sender(server.url, max_retries=3) as client:
        with (
            psycopg.connect(vessels.libpq) as conn,
            pytest.raises(SendError, match="refused the batch with HTTP 403"),
        ):
            publish_json(conn, "public.pub_vessels", client)
        assert server.state.requests <= 2  # one batch in flight while the next is built; no retry


def test_views_need_a_key_and_bad_names_are_refused(vessels: DatabaseUrls) -> None:
    with psycopg.connect(vessels.libpq) as conn:
        with pytest.raises(PublishError, match="pub_long_vessels has no primary key"):
            publish_json(conn, "public.pub_long_vessels", None)
        conn.rollback()
        with pytest.raises(PublishError, match="no table or view public.nothing"):
            publish_json(conn, "public.nothing", None)
        with pytest.raises(PublishError, match="is not a relation name"):
            publish_json(conn, "public.x; DROP TABLE y", None)
        with pytest.raises(PublishError, match=r"\['nope'\] are not columns"):
            publish_json(conn, "public.pub_vessels", None, key=["nope"])
        summary = publish_json(conn, "public.pub_long_vessels", None, key=["cfr"])
    assert summary.rows == ROWS - 20_000 and summary.dry_run
    assert len(summary.sample) == 5 and summary.sample[0].startswith('{"record_id":"')


def test_csv_export_has_the_same_record_ids(vessels: DatabaseUrls, tmp_path: Path) -> None:
    with (
        publish_server() as server,
        HttpBatchSender(server.url) as client,
        psycopg.connect(vessels.libpq) as conn,
    ):
        publish_json(conn, "public.pub_vessels", client)
        summary = export_csv(conn, "public.pub_vessels", tmp_path)
    assert summary.rows == ROWS
    path = tmp_path / "public.pub_vessels.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == ROWS
    assert {r["record_id"] for r in rows} == set(server.state.store)
    assert list(rows[0]) == ["record_id", "country", "cfr", "name", "length", "seen_at"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public.pub_vessels.csv"]


def _run(vessels: DatabaseUrls, config: PublishConfig, publisher: PublisherResource, **kw: object):
    return publish_job.execute_in_process(
        run_config=RunConfig(ops={"publish_relation": config}),
        resources={
            "warehouse": WarehouseResource(database_url=vessels.libpq),
            "publisher": publisher,
            "dry_run": kw.pop("dry_run", DryRunResource()),
        },
        **kw,  # type: ignore[arg-type]
    )


def test_publish_job_both_formats(vessels: DatabaseUrls, tmp_path: Path) -> None:
    with publish_server() as server:
        publisher = PublisherResource(url=server.url, directory=str(tmp_path))
        result = _run(
            vessels, PublishConfig(relation="public.pub_vessels", format="both"), publisher
        )
        assert result.success
        assert result.output_for_node("publish_relation") == {"csv": ROWS, "json": ROWS}
        assert len(server.state.store) == ROWS
    assert (tmp_path / "public.pub_vessels.csv").exists()
    [materialization] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["json/chunks"].value == 3 and metadata["dry_run"].value is False


def test_publish_job_destination_overrides_the_defaults(
    vessels: DatabaseUrls, tmp_path: Path
) -> None:
    with publish_server() as server:
        config = PublishConfig(
            relation="public.pub_long_vessels", format="json", destination=server.url, key=["cfr"]
        )
        result = _run(vessels, config, PublisherResource(url="http://127.0.0.1:9/unused"))
        assert result.success and len(server.state.store) == ROWS - 20_000
    config = PublishConfig(relation="public.pub_vessels", destination=str(tmp_path / "out"))
    assert _run(vessels, config, PublisherResource(directory=str(tmp_path / "default"))).success
    assert (tmp_path / "out" / "public.pub_vessels.csv").exists()
    assert not (tmp_path / "default").exists()


@pytest.mark.parametrize("how", ["tag", "resource"])
def test_dry_run_publishes_nothing(vessels: DatabaseUrls, tmp_path: Path, how: str) -> None:
    with publish_server() as server:
        publisher = PublisherResource(url=server.url, directory=str(tmp_path))
        config = PublishConfig(relation="public.pub_vessels", format="both")
        if how == "tag":
            result = _run(vessels, config, publisher, tags={"fishnet/dry_run": "true"})
        else:
            result = _run(vessels, config, publisher, dry_run=DryRunResource(enabled=True))
        assert result.success
        assert result.output_for_node("publish_relation") == {"csv": ROWS, "json": ROWS}
        assert server.state.requests == 0
    assert list(tmp_path.iterdir()) == []
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["dry_run"].value is True
    assert len(metadata["json/would_send_sample"].value) == 5


def test_a_false_tag_overrides_a_dry_deployment(vessels: DatabaseUrls, tmp_path: Path) -> None:
    publisher = PublisherResource(directory=str(tmp_path))
    result = _run(
        vessels,
        PublishConfig(relation="public.pub_vessels"),
        publisher,
        dry_run=DryRunResource(enabled=True),
        tags={"fishnet/dry_run": "false"},
    )
    assert result.success and (tmp_path / "public.pub_vessels.csv").exists()
