"""Vessel registry source: portable SQL, the pure transform, and the deterministic sample rows.

The queries executed on PostgreSQL are in tests/integration/test_reference_source_queries.py.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Select
from sqlalchemy.dialects import oracle, postgresql

from platform_assets.reference.readers import (
    ReferenceSourceError,
    default_data_dir,
    read_districts,
    read_fishing_gear_codes,
    read_ports,
)
from platform_assets.reference.vessels import VESSEL_COLUMNS, transform_vessels
from resources.registry_stand_in import DISTRICT_PORTS, sample_vessel_rows
from resources.registry_tables import (
    declared_gears_query,
    source_tables,
    vessels_query,
)

QUERIES = {"vessels": vessels_query, "declared_gears": declared_gears_query}


def _oracle_sql(query: Select[Any]) -> str:
    return str(query.compile(dialect=oracle.dialect()))


# --- SQL shape --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(QUERIES))
@pytest.mark.parametrize("schema", [None, "NAVPRO"])
def test_oracle_sql_is_portable(name: str, schema: str | None) -> None:
    sql = _oracle_sql(QUERIES[name](source_tables(schema)))
    for forbidden in ("::", "ILIKE", "STRING_AGG", "LISTAGG", "LIMIT", "OFFSET", "FETCH FIRST"):
        assert forbidden not in sql.upper(), forbidden
    assert "%(" not in sql and "?" not in sql  # Oracle binds are :name only


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_oracle_identifiers_are_upper_case(name: str) -> None:
    sql = _oracle_sql(QUERIES[name](source_tables("NAVPRO")))
    quoted = re.findall(r'"([^"]+)"', sql)
    assert quoted, sql
    assert all(identifier == identifier.upper() for identifier in quoted), quoted
    assert '"NAVPRO"."NAVIRES' in sql


def test_vessels_query_binds_roles_as_named_parameters() -> None:
    compiled = vessels_query(source_tables(None)).compile(dialect=oracle.dialect())
    sql = str(compiled)
    assert ":owner_role" in sql and ":operator_role" in sql
    assert "'OWNER'" not in sql and "'OPERATOR'" not in sql  # values travel as binds
    assert compiled.params == {"owner_role": "OWNER", "operator_role": "OPERATOR"}


def test_schema_is_configurable() -> None:
    without = _oracle_sql(vessels_query(source_tables(None)))
    with_schema = _oracle_sql(vessels_query(source_tables("FMC2")))
    assert 'FROM "NAVIRES"' in without and '"FMC2"' not in without
    assert 'FROM "FMC2"."NAVIRES"' in with_schema
    assert source_tables("FMC2").vessels.schema == "FMC2"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_postgres_compiles_the_same_queries(name: str) -> None:
    sql = str(QUERIES[name](source_tables("navpro")).compile(dialect=postgresql.dialect()))
    assert 'navpro."NAVIRES' in sql
    assert "STRING_AGG" not in sql.upper() and "LISTAGG" not in sql.upper()
    if name == "vessels":
        assert "%(owner_role)s" in sql


def test_vessels_query_labels_are_the_output_columns_minus_gears() -> None:
    labels = [c.name for c in vessels_query(source_tables(None)).selected_columns]
    assert labels == [c for c in VESSEL_COLUMNS if c != "declared_fishing_gears"]
    gear_labels = [c.name for c in declared_gears_query(source_tables(None)).selected_columns]
    assert gear_labels == ["vessel_id", "gear_code", "rank"]


def test_sorted_tables_put_vessels_first() -> None:
    names = [t.name for t in source_tables(None).metadata.sorted_tables]
    assert names[0] == "NAVIRES"
    assert set(names) == {"NAVIRES", "NAVIRES_CONTACTS", "NAVIRES_PERMIS", "NAVIRES_ENGINS"}


# --- the transform on its own -----------------------------------------------------------------


def _query_row(vessel_id: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in VESSEL_COLUMNS if c != "declared_fishing_gears"}
    row.update(vessel_id=vessel_id, is_active=1)
    row.update(overrides)
    return row


def test_transform_normalises_oracle_values() -> None:
    rows = [
        _query_row(
            7,
            cfr="FRA000000007 ",
            vessel_name="  ",
            length=12,
            licence_expiry_date=datetime(2027, 3, 31, 0, 0),
            is_active=0,
        )
    ]
    gears = [
        {"vessel_id": 7, "gear_code": "otb", "rank": 2},
        {"vessel_id": 7, "gear_code": "GNS", "rank": 1},
        {"vessel_id": 7, "gear_code": "OTB", "rank": 3},
        {"vessel_id": 99, "gear_code": "PS", "rank": 1},
    ]
    frame = transform_vessels(rows, gears)
    record = frame.to_dict("records")[0]
    assert record["cfr"] == "FRA000000007"
    assert record["vessel_name"] is None
    assert record["length"] == 12.0
    assert record["licence_expiry_date"] == date(2027, 3, 31)
    assert record["declared_fishing_gears"] == ["GNS", "OTB"]
    assert not record["is_active"]
    assert str(frame["is_active"].dtype) == "bool"


def test_transform_of_nothing_has_the_columns_and_dtypes() -> None:
    frame = transform_vessels([], [])
    assert list(frame.columns) == list(VESSEL_COLUMNS)
    assert str(frame["vessel_id"].dtype) == "int64"
    assert str(frame["is_active"].dtype) == "bool"
    assert str(frame["gauge"].dtype) == "float64"


def test_transform_rejects_duplicate_and_missing_ids() -> None:
    with pytest.raises(ReferenceSourceError, match="duplicate vessel_id 3, 5"):
        transform_vessels([_query_row(i) for i in (3, 5, 3, 4, 5)], [])
    with pytest.raises(ReferenceSourceError, match="row 2: missing key vessel_id"):
        transform_vessels([_query_row(1), _query_row(None)], [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"length": "12,5"}, "bad value '12,5' in column length"),
        ({"licence_expiry_date": "31/12/2026"}, "bad value '31/12/2026' in column licence_expiry"),
        ({"is_active": "O"}, "bad value 'O' in column is_active"),
    ],
)
def test_transform_names_the_vessel_and_column_of_a_bad_value(
    override: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ReferenceSourceError, match=f"vessel_id 8: {reason}"):
        transform_vessels([_query_row(7), _query_row(8, **override)], [])


# --- the sample -------------------------------------------------------------------------------


def test_sample_is_deterministic() -> None:
    assert sample_vessel_rows(50, seed=7) == sample_vessel_rows(50, seed=7)
    assert sample_vessel_rows(50, seed=7) != sample_vessel_rows(50, seed=8)
    assert sample_vessel_rows(0) == {
        "NAVIRES": [],
        "NAVIRES_CONTACTS": [],
        "NAVIRES_PERMIS": [],
        "NAVIRES_ENGINS": [],
    }


def test_sample_keys_match_the_declared_columns() -> None:
    tables = {t.name: t for t in source_tables(None).metadata.sorted_tables}
    rows = sample_vessel_rows(40)
    assert set(rows) == set(tables)
    for name, table_rows in rows.items():
        columns = {c.name for c in tables[name].columns}
        for row in table_rows:
            assert set(row) == columns, name


def test_sample_is_realistic_and_consistent_with_the_reference_files() -> None:
    data = default_data_dir()
    districts = set(read_districts(data / "districts.csv")["district_code"])
    ports = set(read_ports(data / "ports.csv")["locode"])
    gear_codes = set(read_fishing_gear_codes(data / "fishing_gear_codes.csv")["gear_code"])
    rows = sample_vessel_rows()
    vessels = pd.DataFrame(rows["NAVIRES"])

    assert len(vessels) == 300
    assert set(vessels["CODE_QUARTIER"]) <= districts
    assert set(vessels["LOCODE_PORT_ATTACHE"]) <= ports
    assert {p for codes in DISTRICT_PORTS.values() for p in codes} <= ports
    assert set(DISTRICT_PORTS) <= districts
    for vessel in rows["NAVIRES"]:
        assert vessel["LOCODE_PORT_ATTACHE"] in DISTRICT_PORTS[vessel["CODE_QUARTIER"]]
        assert re.fullmatch(r"FRA000\d{6}", vessel["CFR"])
        assert re.fullmatch(rf"{vessel['CODE_QUARTIER']} \d{{6}}", vessel["IMMATRICULATION_EXT"])
        assert vessel["IRCS"] is None or re.fullmatch(r"F[A-Z]{3}\d", vessel["IRCS"])
        assert vessel["MMSI"] is None or re.fullmatch(r"22[78]\d{6}", vessel["MMSI"])
        assert vessel["LARGEUR"] < vessel["LONGUEUR"]
    assert vessels["CFR"].is_unique and vessels["IMMATRICULATION_EXT"].is_unique
    assert {g["CODE_ENGIN"] for g in rows["NAVIRES_ENGINS"]} <= gear_codes

    inactive = (vessels["EST_ACTIF"] == 0).sum()
    assert 5 <= inactive <= 60
    with_operator = {c["ID_NAVIRE"] for c in rows["NAVIRES_CONTACTS"] if c["ROLE"] == "OPERATOR"}
    assert 0 < len(with_operator) < 300
    expiries = [lic["DATE_EXPIRATION"] for lic in rows["NAVIRES_PERMIS"]]
    assert min(expiries) < date(2026, 1, 1) < max(expiries)
    assert all("@example." in c["EMAIL"] for c in rows["NAVIRES_CONTACTS"] if c["EMAIL"])
