"""Positions storage on real PostgreSQL: idempotent and concurrent loads, quarantine and replay,
incremental = full through the store, partitions and retention."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from platform_assets.positions import enrichment, store
from platform_assets.positions.inbox import inbox_file_at, read_line_batches
from platform_assets.positions.ingestion import ingest_file
from resources.warehouse import WarehouseResource, fetch_one
from tests.integration.positions_helpers import START, Fix, seed_anchorages, tracks


def _anchorages(warehouse: WarehouseResource) -> pd.DataFrame:
    with warehouse.connect() as conn:
        seed_anchorages(conn)
        conn.commit()
    with warehouse.adbc() as conn:
        return store.read_anchorages(conn)


def _write(path: Path, fixes: list[Fix], extra: Sequence[bytes] = ()) -> Path:
    lines = [f.naf().encode() for f in fixes] + list(extra)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _load(warehouse: WarehouseResource, fixes: list[Fix], anchorages: pd.DataFrame):
    from platform_assets.positions import naf

    frame, errors = naf.parse_lines([f.naf() for f in fixes])
    assert not errors
    with warehouse.adbc() as conn:
        result = store.load_positions(conn, frame, anchorages)
        conn.commit()
    return result


def _stored(warehouse: WarehouseResource) -> pd.DataFrame:
    with warehouse.adbc() as conn:
        return store.read_positions(conn)


def _count(warehouse: WarehouseResource, table: str) -> int:
    with warehouse.connect() as conn:
        return fetch_one(conn, f"SELECT count(*) FROM positions.{table}")[0]


def _assert_equals_full_recompute(
    stored: pd.DataFrame, anchorages: pd.DataFrame, skip_ids: frozenset[int] = frozenset()
) -> None:
    full, _ = enrichment.enrich(stored, anchorages)
    merged = stored.merge(full, on="id", suffixes=("", "_full"))
    assert len(merged) == len(stored)
    merged = merged[~merged["id"].isin(skip_ids)]
    for column in store.ENRICHED_COLUMNS:
        got, want = merged[column], merged[f"{column}_full"]
        if column in ("is_at_port", "is_fishing"):
            same = (got.isna() & want.isna()) | (got.astype("object") == want.astype("object"))
        else:
            a, b = got.astype(float), want.astype(float)
            same = (a.isna() & b.isna()) | (a == b)
        bad = merged.loc[~same.astype(bool), ["id", "track_id", "datetime_utc", column]]
        assert bad.empty, f"{column} differs from the full recompute:\n{bad.head()}"


def test_a_file_ingested_twice_adds_nothing(warehouse: WarehouseResource, tmp_path: Path) -> None:
    anchorages = _anchorages(warehouse)
    fixes = tracks(6, 30)
    path = _write(tmp_path / "day.naf", fixes + fixes[:10])  # repeats inside the file too
    first = ingest_file(warehouse, inbox_file_at(path), anchorages, None)
    assert first.load.inserted == len(fixes)
    assert first.load.duplicates == 10
    again = ingest_file(warehouse, inbox_file_at(path), anchorages, None)
    assert again.load.inserted == 0
    assert _count(warehouse, "positions") == len(fixes)
    _assert_equals_full_recompute(_stored(warehouse), anchorages)


def test_two_concurrent_ingestions_of_one_file_store_it_once(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    anchorages = _anchorages(warehouse)
    fixes = tracks(8, 24, seed=4)
    path = _write(tmp_path / "feed.naf", fixes)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            for batch in read_line_batches(path):
                with warehouse.adbc() as conn:
                    store.ingest_batch(conn, path.name, batch, anchorages)
                    conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _count(warehouse, "positions") == len(fixes)
    with warehouse.connect() as conn:
        tracks_stored = fetch_one(conn, "SELECT count(*) FROM positions.track_state")[0]
    assert tracks_stored == 8
    _assert_equals_full_recompute(_stored(warehouse), anchorages)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_batches_with_late_and_repeated_records_equal_the_full_recompute(
    warehouse: WarehouseResource, seed: int
) -> None:
    anchorages = _anchorages(warehouse)
    fixes = tracks(7, 40, seed=seed)
    rng = random.Random(seed)
    ordered = sorted(fixes, key=lambda f: f.at)
    # cut in time order at random points, then delay some records and repeat others
    cuts = sorted(rng.sample(range(1, len(ordered)), 6))
    batches = [ordered[a:b] for a, b in zip([0, *cuts], [*cuts, len(ordered)], strict=True)]
    delayed = [f for f in ordered if rng.random() < 0.03]
    delayed_ids = {id(f) for f in delayed}
    batches = [[f for f in b if id(f) not in delayed_ids] for b in batches]
    batches.insert(rng.randrange(2, len(batches) + 1), delayed)
    batches.append(rng.sample(ordered, 40))  # repeats of stored records
    total_late = 0
    for batch in batches:
        rng.shuffle(batch)
        result = _load(warehouse, batch, anchorages)
        total_late += result.late_tracks
    assert total_late > 0
    stored = _stored(warehouse)
    assert len(stored) == len({(f.cfr, f.xr, f.ircs, f.at, f.lat, f.lon) for f in fixes})
    _assert_equals_full_recompute(stored, anchorages)


def test_quarantine_keeps_bad_lines_as_received_and_replay_stores_them(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchorages = _anchorages(warehouse)
    fixes = tracks(3, 10, seed=7)
    bad = [b"//SR//TM/POS//DA/20240506//ER//", b"\xff\xfe not utf-8 \x00", b"garbage"]
    path = _write(tmp_path / "mixed.naf", fixes, bad)

    # a parser that (wrongly) refuses the first vessel's records: they must go to quarantine
    real = store.naf.parse_lines
    victim = fixes[0].cfr

    def strict(lines, first_line_number=1, **kwargs):
        lines = lines.to_pylist() if isinstance(lines, pa.Array) else list(lines)
        frame, errors = real(lines, first_line_number, **kwargs)
        refused = frame["internal_reference_number"] == victim
        from platform_assets.positions.naf import NafLineError

        extra = [
            NafLineError(
                int(n), lines[int(n) - first_line_number], "IR: refused for the test", "IR"
            )
            for n in frame.loc[refused, "line_number"]
        ]
        return frame[~refused].reset_index(drop=True), errors + extra

    monkeypatch.setattr(store.naf, "parse_lines", strict)
    result = ingest_file(warehouse, inbox_file_at(path), anchorages, None)
    refused = sum(f.cfr == victim for f in fixes)
    assert result.quarantined == refused + len(bad)
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT line_number, raw_bytes, error FROM positions.naf_quarantine "
            "WHERE line_number > %s ORDER BY line_number",
            (len(fixes),),
        ).fetchall()
    assert [bytes(r[1]) for r in rows] == bad
    assert [r[0] for r in rows] == [len(fixes) + 1, len(fixes) + 2, len(fixes) + 3]
    assert "UTF-8" in rows[1][2]

    again = ingest_file(warehouse, inbox_file_at(path), anchorages, None)  # same file again
    assert again.load.inserted == 0
    assert _count(warehouse, "naf_quarantine") == refused + len(bad)

    monkeypatch.setattr(store.naf, "parse_lines", real)  # the parser is fixed
    with warehouse.adbc() as conn:
        replay = store.replay_quarantine(conn, anchorages)
        conn.commit()
    assert (replay.replayed, replay.still_failing) == (refused, len(bad))
    assert replay.load.inserted == refused
    assert _count(warehouse, "naf_quarantine") == len(bad)
    assert _count(warehouse, "positions") == len(fixes)
    _assert_equals_full_recompute(_stored(warehouse), anchorages)
    with warehouse.connect() as conn:
        attempts = fetch_one(conn, "SELECT min(attempts) FROM positions.naf_quarantine")
    assert attempts[0] == 3  # two ingestions and one replay


def test_partitions_are_created_for_late_records_and_dropped_by_retention(
    warehouse: WarehouseResource,
) -> None:
    anchorages = _anchorages(warehouse)
    fixes = tracks(2, 6, seed=5)
    _load(warehouse, fixes, anchorages)
    with warehouse.adbc() as conn:
        days = store.partition_days(conn)
        conn.commit()
    assert days == [START.date()]
    old = Fix(fixes[0].cfr, fixes[0].xr, fixes[0].ircs, START - timedelta(days=40), 47.0, -4.0)
    result = _load(warehouse, [old], anchorages)
    assert (result.inserted, result.late_tracks) == (1, 1)
    with warehouse.adbc() as conn:
        assert store.partition_days(conn) == [old.at.date(), START.date()]
        ahead = store.ensure_partitions_ahead(conn, START.date(), 3)
        assert len(ahead) == 4
        assert store.ensure_partitions_ahead(conn, START.date(), 3) == ahead  # idempotent
        dropped = store.apply_retention(conn, START.date() + timedelta(days=1), retention_days=30)
        conn.commit()
        assert dropped == [old.at.date()]
        assert store.partition_days(conn)[0] == START.date()
        conn.commit()
    assert _count(warehouse, "positions") == len(fixes)
    with pytest.raises(ValueError, match="POSITIONS_RETENTION_DAYS"), warehouse.adbc() as conn:
        store.apply_retention(conn, date.today(), 0)


def test_a_track_silent_for_days_still_gets_its_last_position(warehouse: WarehouseResource) -> None:
    """A file of old positions (a backfill, a late delivery) loaded after days of silence: every
    track gets a last position on the first refresh, not only those inside the 24 h window."""
    anchorages = _anchorages(warehouse)
    fixes = tracks(vessels=3, hours=6)
    _load(warehouse, fixes, anchorages)
    latest = max(f.at for f in fixes)
    with warehouse.adbc() as conn:
        refreshed = store.refresh_last_positions(conn, latest + timedelta(days=3))
        conn.commit()
    assert refreshed == 3
    with warehouse.adbc() as conn:
        last = store.read_last_positions(conn)
    assert len(last) == 3
    assert pd.to_datetime(last["last_position_datetime_utc"], utc=True).max() == pd.Timestamp(
        latest
    )


def test_a_row_stored_behind_the_loaders_back_makes_the_batch_load_again_through_staging(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    """New rows are copied straight into the table; should one be there already (written
    without the ingestion lock), the COPY fails, and the batch is loaded again in a new
    transaction through the staging table, which skips it."""
    anchorages = _anchorages(warehouse)
    fixes = sorted(tracks(4, 20, seed=9), key=lambda f: f.at)
    half = len(fixes) // 2
    ingest_file(
        warehouse, inbox_file_at(_write(tmp_path / "one.naf", fixes[:half])), anchorages, None
    )
    intruder = fixes[half + 3]
    with warehouse.connect() as conn:
        conn.execute(
            "INSERT INTO positions.positions (track_id, internal_reference_number, "
            "external_reference_number, ircs, latitude, longitude, datetime_utc) "
            "SELECT track_id, internal_reference_number, external_reference_number, ircs, "
            "%s, %s, %s FROM positions.track_state WHERE internal_reference_number "
            "IS NOT DISTINCT FROM %s AND external_reference_number IS NOT DISTINCT FROM %s "
            "AND ircs IS NOT DISTINCT FROM %s",
            (intruder.lat, intruder.lon, intruder.at, intruder.cfr, intruder.xr, intruder.ircs),
        )
        conn.commit()
    second = ingest_file(
        warehouse, inbox_file_at(_write(tmp_path / "two.naf", fixes[half:])), anchorages, None
    )
    assert second.staged_after_conflict
    assert second.load.inserted == len(fixes) - half - 1
    assert _count(warehouse, "positions") == len(fixes)
    stored = _stored(warehouse)
    intruders = frozenset(stored.loc[stored["is_at_port"].isna(), "id"].astype(int))
    assert len(intruders) == 1  # the loader enriched every other row, as a full recompute would
    _assert_equals_full_recompute(stored, anchorages, skip_ids=intruders)


def test_track_states_round_trip_exactly_through_the_table(warehouse: WarehouseResource) -> None:
    """Infinities, NaN, unknown booleans and microsecond instants come back as they were saved,
    and a state written in the older JSON form ({"$f": "inf"}, {"$t": ...}) reads the same."""
    from platform_assets.positions.store.state import resolve_tracks, save_states, states_of

    rng = random.Random(3)
    identities = pd.DataFrame(
        {
            "internal_reference_number": ["FRA1", None, "FRA3", "FRA4"],
            "external_reference_number": [None, "XR2", "XR3", None],
            "ircs": ["I1", "I2", None, None],
        }
    ).astype("str")
    states = enrichment.empty_state()
    states = pd.concat([states, identities], ignore_index=True)
    states["id"] = [1, 2, 3, 4]
    states["datetime_utc"] = pd.to_datetime(
        [
            "2024-05-06T10:00:00.123456Z",
            "2024-05-06T11:00:00Z",
            "2024-05-07T00:00:00Z",
            "1999-12-31T00:00:00Z",
        ],
        format="ISO8601",
    )
    for column in ("latitude", "longitude", "meters_from_previous_position"):
        states[column] = [rng.uniform(-90, 90) for _ in range(4)]
    states["time_since_previous_position"] = [0.1, float("nan"), 1 / 3, 0.0]
    states["average_speed"] = [float("inf"), float("nan"), 5e-324, 1.7976931348623157e308]
    states["time_emitting_at_sea"] = [2 / 3, 0.0, 1e-9, 123.456789]
    states["is_at_port"] = [True, False, False, True]
    states["is_fishing"] = pd.array([True, None, False, None], dtype="boolean")
    states["sea_time_us"] = [2_400_000_000, 0, 3, 2**53 + 1]
    states["previous_candidate"] = pd.array([None, True, False, None], dtype="boolean")
    states = enrichment._typed_state(states)
    with warehouse.adbc() as conn:
        tracks = resolve_tracks(conn, identities)
        save_states(conn, tracks, states)
        conn.commit()
        back = states_of(resolve_tracks(conn, identities))
        conn.commit()
    pd.testing.assert_frame_equal(back, states)

    with warehouse.connect() as conn:  # the older JSON form of track 1's state
        conn.execute(
            """UPDATE positions.track_state SET state = jsonb_build_object(
                 'id', 1, 'datetime_utc', jsonb_build_object('$t', '2024-05-06T10:00:00.123456+00:00'),
                 'latitude', %s::float8, 'longitude', %s::float8, 'is_at_port', true,
                 'meters_from_previous_position', %s::float8, 'time_since_previous_position', 0.1,
                 'average_speed', jsonb_build_object('$f', 'inf'), 'is_fishing', true,
                 'time_emitting_at_sea', %s::float8, 'sea_time_us', 2400000000,
                 'previous_candidate', null)
               WHERE internal_reference_number = 'FRA1'""",
            (
                *states.loc[0, ["latitude", "longitude", "meters_from_previous_position"]],
                states.loc[0, "time_emitting_at_sea"],
            ),
        )
        conn.commit()
    with warehouse.adbc() as conn:
        old = states_of(resolve_tracks(conn, identities.iloc[:1]))
        conn.commit()
    pd.testing.assert_frame_equal(old, states.iloc[:1])
