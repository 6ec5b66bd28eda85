"""The Postgres IO manager on a real PostgreSQL: modes, types, atomicity, errors."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pandas as pd
import psycopg
import pytest
from dagster import (
    AssetIn,
    DailyPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

from resources.io_managers import PostgresPandasIOManager
from resources.publisher import DryRunResource
from resources.table_io import TableRef, TableWriteError, read_frame, write_frame
from resources.warehouse import WarehouseResource

ALL_TYPES_DDL = """
CREATE SCHEMA iotest;
CREATE TABLE iotest.all_types (
    id bigint PRIMARY KEY,
    small integer NOT NULL,
    maybe_int bigint,
    ratio double precision,
    flag boolean NOT NULL,
    maybe_flag boolean,
    label text,
    at timestamptz,
    day date,
    doc jsonb,
    tags text[],
    scores double precision[],
    loaded_at timestamptz NOT NULL DEFAULT now()
);
"""

T = TableRef("iotest", "all_types")


def _execute(warehouse: WarehouseResource, sql: str) -> None:
    with warehouse.connect() as conn:
        conn.execute(sql)


@pytest.fixture
def all_types(warehouse: WarehouseResource) -> WarehouseResource:
    _execute(warehouse, ALL_TYPES_DDL)
    return warehouse


def sample_frame(ids: list[int], label: str = "a") -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "id": ids,
            "small": [i % 7 for i in ids],
            "maybe_int": pd.array([None if i % 2 else i * 10 for i in ids], dtype="Int64"),
            "ratio": [None if i % 3 == 0 else i / 4 for i in ids],
            "flag": [i % 2 == 0 for i in ids],
            "maybe_flag": pd.array([None if i % 2 else True for i in ids], dtype="boolean"),
            "label": [None if i % 4 == 0 else f"{label}-{i}-é|" for i in ids],
            "at": [
                None if i % 5 == 0 else datetime(2026, 3, 1, 12, i % 60, tzinfo=UTC) for i in ids
            ],
            "day": [None if i % 6 == 0 else date(2026, 1, 1 + i % 28) for i in ids],
            "doc": [
                None if i % 3 == 1 else ({"k": i, "nested": [1, "x"]} if i % 2 else [i, None])
                for i in ids
            ],
            "tags": [None if i % 5 == 1 else ([] if i % 2 else ["x", None, f"t{i}"]) for i in ids],
            "scores": [None if i % 7 == 1 else [float(i), 0.5] for i in ids][:n],
        }
    )


def _normalised(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain Python values, NaN/NA/NaT as None, for comparison."""
    rows = []
    for record in frame.astype(object).to_dict("records"):
        clean = {}
        for key, value in record.items():
            if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.to_pydatetime()
            elif isinstance(value, float) and value.is_integer() and key in ("maybe_int",):
                value = int(value)
            clean[key] = value
        rows.append(clean)
    return sorted(rows, key=lambda r: r["id"])


def test_every_type_round_trips_with_nulls(all_types: WarehouseResource) -> None:
    frame = sample_frame(list(range(1, 31)))
    result = write_frame(all_types, frame, T, "replace")
    assert result.rows == 30

    back = read_frame(all_types, T)
    assert list(back.columns) == [*frame.columns, "loaded_at"]
    assert str(back["maybe_int"].dtype) == "Int64"
    assert str(back["maybe_flag"].dtype) == "boolean"
    assert str(back["small"].dtype) == "int32"
    assert str(back["at"].dtype) == "datetime64[us, UTC]"
    assert _normalised(back.drop(columns="loaded_at")) == _normalised(frame)


def test_naive_and_foreign_zone_timestamps_are_stored_as_utc(all_types: WarehouseResource) -> None:
    frame = sample_frame([1, 2])
    frame["at"] = [pd.Timestamp("2026-03-01 12:00"), pd.Timestamp("2026-03-01 14:00+02:00")]
    write_frame(all_types, frame, T)
    back = read_frame(all_types, T, columns=["id", "at"])
    assert back["at"].tolist() == [pd.Timestamp("2026-03-01 12:00", tz="UTC")] * 2


def test_column_selection_reads_only_those_columns(all_types: WarehouseResource) -> None:
    write_frame(all_types, sample_frame([1, 2, 3]), T)
    back = read_frame(all_types, T, columns=["label", "id"])
    assert list(back.columns) == ["label", "id"]
    with pytest.raises(TableWriteError, match="no columns \\['nope'\\]"):
        read_frame(all_types, T, columns=["id", "nope"])


def test_replace_replaces_and_append_appends(all_types: WarehouseResource) -> None:
    write_frame(all_types, sample_frame([1, 2, 3]), T, "replace")
    write_frame(all_types, sample_frame([4, 5]), T, "replace")
    assert sorted(read_frame(all_types, T)["id"]) == [4, 5]
    write_frame(all_types, sample_frame([6]), T, "append")
    assert sorted(read_frame(all_types, T)["id"]) == [4, 5, 6]
    write_frame(all_types, sample_frame([])[:0], T, "replace")
    assert read_frame(all_types, T).empty


def test_upsert_updates_existing_keys_and_inserts_new_ones(all_types: WarehouseResource) -> None:
    write_frame(all_types, sample_frame([1, 2, 3], label="old"), T, "replace")
    write_frame(all_types, sample_frame([3, 4], label="new"), T, "upsert")
    back = read_frame(all_types, T, columns=["id", "label"]).sort_values("id")
    assert back["id"].tolist() == [1, 2, 3, 4]
    labels = [None if pd.isna(v) else v for v in back["label"]]
    assert labels == ["old-1-é|", "old-2-é|", "new-3-é|", None]


def test_upsert_rejects_duplicate_keys_in_the_frame(all_types: WarehouseResource) -> None:
    write_frame(all_types, sample_frame([1]), T)
    with pytest.raises(TableWriteError, match="duplicate keys.*'id': 2"):
        write_frame(all_types, sample_frame([2, 2]), T, "upsert")
    assert read_frame(all_types, T)["id"].tolist() == [1]


def test_mismatched_columns_name_missing_and_extra_and_write_nothing(
    all_types: WarehouseResource,
) -> None:
    write_frame(all_types, sample_frame([1]), T)
    bad = sample_frame([2]).drop(columns=["flag", "small"]).assign(colour="red")
    with pytest.raises(TableWriteError) as error:
        write_frame(all_types, bad, T, "replace")
    message = str(error.value)
    assert "missing columns ['small', 'flag']" in message
    assert "extra columns ['colour']" in message
    assert read_frame(all_types, T)["id"].tolist() == [1]


def test_a_failure_in_the_middle_of_a_write_keeps_the_previous_rows(
    all_types: WarehouseResource,
) -> None:
    write_frame(all_types, sample_frame(list(range(1, 11))), T)
    broken = sample_frame(list(range(100, 5100)))
    broken["flag"] = broken["flag"].astype(object)
    broken.loc[4000, "flag"] = None  # NOT NULL violated by a row deep into the COPY
    with pytest.raises(Exception, match="flag"):
        write_frame(all_types, broken, T, "replace")
    assert sorted(read_frame(all_types, T)["id"]) == list(range(1, 11))


def test_unconvertible_values_name_the_column(all_types: WarehouseResource) -> None:
    frame = sample_frame([1])
    frame["label"] = [12]
    with pytest.raises(TableWriteError, match="column 'label' cannot be written as text"):
        write_frame(all_types, frame, T)


def test_missing_table_says_to_migrate(warehouse: WarehouseResource) -> None:
    with pytest.raises(TableWriteError, match="does not exist: run `fishnet migrate`"):
        write_frame(warehouse, pd.DataFrame({"a": [1]}), TableRef("nowhere", "nothing"))


def test_two_concurrent_replace_writers_leave_exactly_one_frame(
    all_types: WarehouseResource,
) -> None:
    frames = [sample_frame(list(range(start, start + 20_000))) for start in (0, 100_000)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(frame: pd.DataFrame) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                write_frame(all_types, frame, T, "replace")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f,)) for f in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ids = sorted(read_frame(all_types, T, columns=["id"])["id"])
    assert ids in (sorted(frames[0]["id"]), sorted(frames[1]["id"]))


def test_readers_see_the_old_rows_while_a_replace_is_in_flight(
    all_types: WarehouseResource,
) -> None:
    write_frame(all_types, sample_frame([1, 2]), T)
    with all_types.connect() as writer:
        writer.execute("LOCK TABLE iotest.all_types IN SHARE ROW EXCLUSIVE MODE")
        writer.execute("DELETE FROM iotest.all_types")
        # uncommitted: another session still sees both rows, without waiting
        with psycopg.connect(all_types.urls.libpq, autocommit=True) as reader:
            reader.execute("SET lock_timeout = '2s'")
            count = reader.execute("SELECT count(*) FROM iotest.all_types").fetchone()
        assert count == (2,)
        writer.rollback()


# --- through Dagster ----------------------------------------------------------------------------


EVENTS_DDL = """
CREATE SCHEMA iotest;
CREATE TABLE iotest.events (id bigint PRIMARY KEY, at timestamptz NOT NULL, zone text NOT NULL, v double precision);
"""


def test_assets_write_read_with_metadata_and_column_selection(
    warehouse: WarehouseResource, dagster_instance
) -> None:
    _execute(warehouse, EVENTS_DDL)

    @asset(key_prefix="iotest", metadata={"write_mode": "replace"})
    def events() -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": [1, 2],
                "at": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
                "zone": ["a", "b"],
                "v": [1.5, None],
            }
        )

    seen: dict[str, pd.DataFrame] = {}

    @asset(ins={"events": AssetIn(key=["iotest", "events"], metadata={"columns": ["id", "v"]})})
    def downstream(events: pd.DataFrame) -> None:
        seen["events"] = events

    result = materialize(
        [events, downstream],
        resources={
            "io_manager": PostgresPandasIOManager(warehouse=warehouse, dry_run=DryRunResource())
        },
        instance=dagster_instance,
    )
    assert result.success
    assert list(seen["events"].columns) == ["id", "v"]
    metadata = result.asset_materializations_for_node("iotest__events")[0].metadata
    assert metadata["dagster/row_count"].value == 2
    assert metadata["table"].value == "iotest.events"
    assert metadata["write_mode"].value == "replace"
    assert "| id | at | zone | v |" in metadata["preview"].value
    assert metadata["duration_s"].value >= 0


def test_time_window_partitions_overwrite_only_their_window(
    warehouse: WarehouseResource, dagster_instance
) -> None:
    _execute(warehouse, EVENTS_DDL)
    calls = {"n": 0}

    @asset(
        key_prefix="iotest",
        partitions_def=DailyPartitionsDefinition(start_date="2026-01-01"),
        metadata={"partition_expr": "at"},
    )
    def events(context) -> pd.DataFrame:
        calls["n"] += 1
        day = pd.Timestamp(context.partition_key, tz="UTC")
        base = int(day.strftime("%d")) * 100 + calls["n"] * 10
        return pd.DataFrame(
            {
                "id": [base, base + 1],
                "at": [day, day + pd.Timedelta(hours=5)],
                "zone": ["z", "z"],
                "v": [1.0, 2.0],
            }
        )

    io = {"io_manager": PostgresPandasIOManager(warehouse=warehouse, dry_run=DryRunResource())}
    for key in ("2026-01-01", "2026-01-02", "2026-01-01"):
        assert materialize(
            [events], partition_key=key, resources=io, instance=dagster_instance
        ).success
    ids = sorted(read_frame(warehouse, TableRef("iotest", "events"))["id"])
    # 2 Jan from the second run; 1 Jan rewritten by the third run only
    assert ids == [130, 131, 220, 221]


def test_static_partitions_overwrite_only_their_key_and_reject_stray_rows(
    warehouse: WarehouseResource, dagster_instance
) -> None:
    _execute(warehouse, EVENTS_DDL)
    stray = {"on": False}

    @asset(
        key_prefix="iotest",
        partitions_def=StaticPartitionsDefinition(["north", "south"]),
        metadata={"partition_expr": "zone"},
    )
    def events(context) -> pd.DataFrame:
        zone = "elsewhere" if stray["on"] else context.partition_key
        offset = 0 if context.partition_key == "north" else 10
        return pd.DataFrame(
            {
                "id": [offset + 1, offset + 2],
                "at": pd.to_datetime(["2026-01-01"] * 2, utc=True),
                "zone": [zone, zone],
                "v": [0.0, 0.0],
            }
        )

    io = {"io_manager": PostgresPandasIOManager(warehouse=warehouse, dry_run=DryRunResource())}
    for key in ("north", "south", "north"):
        assert materialize(
            [events], partition_key=key, resources=io, instance=dagster_instance
        ).success
    assert sorted(read_frame(warehouse, TableRef("iotest", "events"))["id"]) == [1, 2, 11, 12]

    stray["on"] = True
    result = materialize(
        [events],
        partition_key="north",
        resources=io,
        instance=dagster_instance,
        raise_on_error=False,
    )
    assert not result.success
    assert sorted(read_frame(warehouse, TableRef("iotest", "events"))["id"]) == [1, 2, 11, 12]


def test_dry_run_tag_writes_nothing_and_says_what_it_would_write(
    warehouse: WarehouseResource, dagster_instance
) -> None:
    _execute(warehouse, EVENTS_DDL)

    @asset(key_prefix="iotest", metadata={"write_mode": "replace"})
    def events() -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": [1, 2, 3],
                "at": pd.to_datetime(["2026-01-01"] * 3, utc=True),
                "zone": ["a", "b", "c"],
                "v": [1.0, 2.0, 3.0],
            }
        )

    result = materialize(
        [events],
        resources={
            "io_manager": PostgresPandasIOManager(warehouse=warehouse, dry_run=DryRunResource())
        },
        instance=dagster_instance,
        tags={"fishnet/dry_run": "true"},
    )
    assert result.success
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM iotest.events").fetchone()[0] == 0
    metadata = result.asset_materializations_for_node("iotest__events")[0].metadata
    assert metadata["dry_run"].value is True
    assert metadata["would_write/iotest.events"].value == 3
    assert "| id |" in metadata["would_write_sample/iotest.events"].value
