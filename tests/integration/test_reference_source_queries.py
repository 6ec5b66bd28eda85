"""The vessel registry queries executed on PostgreSQL, in an `oracle_source` schema shaped like Oracle.

The schema lives in the test's warehouse database and is created by `seed_sample_source`, exactly
as the embedded default and the demo do; the SQL shape for Oracle is checked in
tests/unit/test_reference_source_queries.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

from platform_assets.demo.reference import prepare_demo
from platform_assets.reference.readers import ReferenceSourceError
from platform_assets.reference.vessels import VESSEL_COLUMNS, read_vessels, transform_vessels
from resources.registry_stand_in import sample_vessel_rows
from resources.registry_tables import (
    SourceTables,
    declared_gears_query,
    source_tables,
    vessels_query,
)
from resources.source_db import (
    EMBEDDED_SCHEMA,
    SourceDatabaseResource,
    read_only_statement,
    seed_sample_source,
)
from resources.warehouse import DatabaseUrls, WarehouseResource


@pytest.fixture
def engine(warehouse: WarehouseResource) -> Engine:
    return warehouse.engine


@pytest.fixture
def tables() -> SourceTables:
    return source_tables(EMBEDDED_SCHEMA)


def _insert(engine: Engine, tables: SourceTables, rows: dict[str, list[dict[str, Any]]]) -> None:
    with engine.begin() as connection:
        for table in tables.metadata.sorted_tables:
            if rows.get(table.name):
                connection.execute(table.insert(), rows[table.name])


def _load(engine: Engine, tables: SourceTables) -> pd.DataFrame:
    with engine.connect() as connection:
        vessels = connection.execute(vessels_query(tables)).all()
        gears = connection.execute(declared_gears_query(tables)).mappings().all()
    return transform_vessels(vessels, gears)


def _vessel(vessel_id: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ID_NAVIRE": vessel_id,
        "CFR": f"FRA000{vessel_id:06d}",
        "MMSI": None,
        "IRCS": None,
        "IMMATRICULATION_EXT": f"GV {vessel_id:06d}",
        "NOM_NAVIRE": "AR VAG",
        "PAVILLON": "FR",
        "LONGUEUR": 11.5,
        "LARGEUR": 4.1,
        "JAUGE": 12.0,
        "PUISSANCE": 150.0,
        "TYPE_NAVIRE": "Fileyeur",
        "CATEGORIE_NAVIGATION": "4ème",
        "CODE_QUARTIER": "GV",
        "LOCODE_PORT_ATTACHE": "FRGVC",
        "EST_ACTIF": 1,
    }
    row.update(overrides)
    return row


def test_pivot_keeps_one_row_per_vessel_with_the_latest_contacts(
    engine: Engine, tables: SourceTables
) -> None:
    assert seed_sample_source(engine, n=0) == 0  # the empty source tables
    contact = {"EMAIL": None, "TELEPHONE": None}
    rows: dict[str, list[dict[str, Any]]] = {
        "NAVIRES": [_vessel(1), _vessel(2, EST_ACTIF=0, LONGUEUR=None)],
        "NAVIRES_CONTACTS": [
            {"ID_CONTACT": 10, "ID_NAVIRE": 1, "ROLE": "OWNER", "NOM": "OLD OWNER", **contact},
            {
                "ID_CONTACT": 12,
                "ID_NAVIRE": 1,
                "ROLE": "OWNER",
                "NOM": "LE GALL YANN",
                "EMAIL": "yann.le-gall@example.com",
                "TELEPHONE": None,
            },
            {
                "ID_CONTACT": 11,
                "ID_NAVIRE": 1,
                "ROLE": "OPERATOR",
                "NOM": "SAS ARMEMENT BIGOUDEN",
                "EMAIL": None,
                "TELEPHONE": "+33 2 61 91 00 01",
            },
            {
                "ID_CONTACT": 13,
                "ID_NAVIRE": 2,
                "ROLE": "OWNER",
                "NOM": "  TANGUY ANNE  ",
                **contact,
            },
        ],
        "NAVIRES_PERMIS": [
            {
                "ID_PERMIS": 1,
                "ID_NAVIRE": 1,
                "NUMERO_PERMIS": "A",
                "DATE_DEBUT": date(2020, 1, 1),
                "DATE_EXPIRATION": date(2022, 12, 31),
            },
            {
                "ID_PERMIS": 2,
                "ID_NAVIRE": 1,
                "NUMERO_PERMIS": "B",
                "DATE_DEBUT": date(2023, 1, 1),
                "DATE_EXPIRATION": date(2026, 12, 31),
            },
        ],
        "NAVIRES_ENGINS": [
            {"ID_NAVIRE": 1, "CODE_ENGIN": "GTR", "RANG": 2},
            {"ID_NAVIRE": 1, "CODE_ENGIN": "GNS", "RANG": 1},
        ],
    }
    _insert(engine, tables, rows)
    frame = _load(engine, tables)

    assert list(frame.columns) == list(VESSEL_COLUMNS)
    assert frame["vessel_id"].tolist() == [1, 2]
    first, second = frame.to_dict("records")
    assert first["owner_name"] == "LE GALL YANN"
    assert first["owner_email"] == "yann.le-gall@example.com"
    assert first["owner_phone"] is None  # taken whole from the latest contact, never mixed
    assert first["operator_name"] == "SAS ARMEMENT BIGOUDEN"
    assert first["licence_expiry_date"] == date(2026, 12, 31)
    assert first["declared_fishing_gears"] == ["GNS", "GTR"]
    assert first["is_active"] is True
    assert second["owner_name"] == "TANGUY ANNE"
    assert second["operator_name"] is None
    assert second["declared_fishing_gears"] == []
    assert second["licence_expiry_date"] is None
    assert pd.isna(second["length"])
    assert second["is_active"] is False


def test_sample_rows_load_into_the_vessels_table(engine: Engine, tables: SourceTables) -> None:
    assert seed_sample_source(engine, n=120) == 120
    frame = _load(engine, tables)

    assert len(frame) == 120
    assert frame["vessel_id"].is_unique
    assert str(frame["vessel_id"].dtype) == "int64"
    assert str(frame["is_active"].dtype) == "bool"
    for column in ("length", "width", "gauge", "power"):
        assert str(frame[column].dtype) == "float64"
    assert all(isinstance(g, list) for g in frame["declared_fishing_gears"])
    assert all(d is None or type(d) is date for d in frame["licence_expiry_date"])
    gear_lists = frame["declared_fishing_gears"]
    assert gear_lists.map(len).sum() == len(sample_vessel_rows(120)["NAVIRES_ENGINS"])
    assert gear_lists.map(len).max() >= 2


def test_seeding_twice_leaves_the_same_sample(engine: Engine, tables: SourceTables) -> None:
    seed_sample_source(engine, n=30)
    first = _load(engine, tables)
    seed_sample_source(engine, n=30)
    again = _load(engine, tables)
    pd.testing.assert_frame_equal(first, again)
    seed_sample_source(engine, n=10)  # a smaller sample replaces the rows, it does not add to them
    assert len(_load(engine, tables)) == 10


# --- the resource ---------------------------------------------------------------------------


def test_resource_reads_the_seeded_schema_in_one_read_only_transaction(
    warehouse: WarehouseResource, engine: Engine, tables: SourceTables
) -> None:
    seed_sample_source(engine, n=50)
    source = SourceDatabaseResource(url=warehouse.urls.libpq, schema_name=EMBEDDED_SCHEMA)
    frame = read_vessels(source)
    pd.testing.assert_frame_equal(frame, _load(engine, tables))
    assert source.describe().endswith(" oracle_source.NAVIRES")
    assert "REPEATABLE READ, READ ONLY" in read_only_statement(source.engine.dialect.name)


def test_embedded_default_is_the_warehouse_database(
    database: DatabaseUrls, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_sample_source(engine, n=20)
    monkeypatch.delenv("SOURCE_DB_URL", raising=False)
    monkeypatch.delenv("SOURCE_DB_SCHEMA", raising=False)
    monkeypatch.setenv("DATABASE_URL", database.libpq)  # how the warehouse resolves it too
    source = SourceDatabaseResource()
    assert source.describe() == "oracle_source.NAVIRES"
    assert len(read_vessels(source)) == 20


def test_environment_is_read_when_used(
    database: DatabaseUrls, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_sample_source(engine, schema="navpro", n=15)
    monkeypatch.delenv("SOURCE_DB_URL", raising=False)
    monkeypatch.delenv("SOURCE_DB_SCHEMA", raising=False)
    source = SourceDatabaseResource()  # built before the environment says anything
    monkeypatch.setenv("SOURCE_DB_URL", database.libpq)
    monkeypatch.setenv("SOURCE_DB_SCHEMA", "navpro")
    assert source.location().schema == "navpro"
    assert len(read_vessels(source)) == 15


def test_missing_source_column_names_the_table_and_column(
    warehouse: WarehouseResource, engine: Engine
) -> None:
    seed_sample_source(engine, n=5)
    with engine.begin() as connection:
        connection.exec_driver_sql('ALTER TABLE oracle_source."NAVIRES" DROP COLUMN "EST_ACTIF"')
    source = SourceDatabaseResource(url=warehouse.urls.libpq, schema_name=EMBEDDED_SCHEMA)
    with pytest.raises(ReferenceSourceError) as error:
        read_vessels(source)
    message = str(error.value)
    assert "oracle_source.NAVIRES: cannot read the vessel registry" in message
    assert "EST_ACTIF" in message
    assert "password" not in message.lower()


def test_demo_seeds_the_embedded_source_idempotently(
    warehouse: WarehouseResource, database: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare_demo(warehouse)
    prepare_demo(warehouse)
    monkeypatch.delenv("SOURCE_DB_URL", raising=False)
    monkeypatch.delenv("SOURCE_DB_SCHEMA", raising=False)
    monkeypatch.setenv("DATABASE_URL", database.libpq)
    frame = read_vessels(SourceDatabaseResource())
    assert len(frame) == 300 and frame["vessel_id"].is_unique


def test_embedded_default_seeds_the_sample_registry_on_a_fresh_database(
    database: DatabaseUrls, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DB_URL", raising=False)
    monkeypatch.delenv("SOURCE_DB_SCHEMA", raising=False)
    monkeypatch.setenv("DATABASE_URL", database.libpq)
    assert len(read_vessels(SourceDatabaseResource())) == 300  # nothing seeded beforehand
    # an explicitly configured source is never seeded: a missing table is an error there
    with pytest.raises(ReferenceSourceError, match="navpro.NAVIRES: cannot read"):
        read_vessels(SourceDatabaseResource(url=database.libpq, schema_name="navpro"))
