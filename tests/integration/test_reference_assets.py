"""The reference assets on a real PostgreSQL: tables, metadata, checks, failed refreshes, the job.

One full refresh per module (`refreshed`, its own database) serves the tests that only look at
its results; tests that break a source get a fresh database each. The Dagster instance is the
session's: tests that depend on materialisation history (the drop guard) wipe the reference assets'
history first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    materialize,
)

from platform_assets.reference.anchorages import anchorages_from_ports
from platform_assets.reference.assets import (
    REFERENCE_ASSETS,
    anchorages,
    districts,
    fishing_gear_codes,
    fleet_segments,
    ports,
    species,
    vessels,
)
from platform_assets.reference.checks import (
    DROP_CHECK,
    KEYS_CHECK,
    VESSEL_LINK_CHECKS,
    previous_row_count,
)
from platform_assets.reference.definitions import defs as reference_defs
from platform_assets.reference.readers import (
    default_data_dir,
    read_districts,
    read_fishing_gear_codes,
    read_fleet_segments,
    read_ports,
    read_species,
)
from platform_assets.reference.vessels import read_vessels
from resources.io_managers import PostgresPandasIOManager
from resources.publisher import DryRunResource
from resources.reference_files import ReferenceFilesResource
from resources.source_db import EMBEDDED_SCHEMA, SourceDatabaseResource, seed_sample_source
from resources.table_io import TableRef, read_frame
from resources.warehouse import DatabaseUrls, WarehouseResource
from tests.conftest import create_database, drop_database

DATA = default_data_dir()
REFERENCE_KEYS = [key for a in REFERENCE_ASSETS for key in a.keys]
FILE_TABLES = {
    "species": (read_species, DATA / "species.csv", ["species_code"]),
    "fishing_gear_codes": (read_fishing_gear_codes, DATA / "fishing_gear_codes.csv", ["gear_code"]),
    "ports": (read_ports, DATA / "ports.csv", ["locode"]),
    "districts": (read_districts, DATA / "districts.csv", ["district_code"]),
    "fleet_segments": (read_fleet_segments, DATA / "fleet_segments", ["year", "segment"]),
}
VESSEL_LINKS = [vessels, districts, ports, fishing_gear_codes, *VESSEL_LINK_CHECKS]


def bundled_files(**overrides: str) -> ReferenceFilesResource:
    """The bundled files, named explicitly so a developer's REFERENCE_* variables change nothing."""
    paths = {
        "species_csv": DATA / "species.csv",
        "fishing_gear_codes_csv": DATA / "fishing_gear_codes.csv",
        "ports_csv": DATA / "ports.csv",
        "districts_csv": DATA / "districts.csv",
        "fleet_segments_dir": DATA / "fleet_segments",
    }
    return ReferenceFilesResource(**{**{k: str(v) for k, v in paths.items()}, **overrides})


def run_resources(
    warehouse: WarehouseResource, files: ReferenceFilesResource | None = None
) -> dict[str, Any]:
    return {
        "io_manager": PostgresPandasIOManager(warehouse=warehouse, dry_run=DryRunResource()),
        "warehouse": warehouse,
        "source_db": SourceDatabaseResource(url=warehouse.urls.libpq, schema_name=EMBEDDED_SCHEMA),
        "reference_files": files or bundled_files(),
    }


def refresh(
    instance: DagsterInstance,
    warehouse: WarehouseResource,
    assets: list[Any],
    files: ReferenceFilesResource | None = None,
    run_config: dict[str, Any] | None = None,
) -> ExecuteInProcessResult:
    return materialize(
        assets,
        resources=run_resources(warehouse, files),
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )


def table(warehouse: WarehouseResource, name: str, order: list[str]) -> pd.DataFrame:
    frame = read_frame(warehouse, TableRef("reference", name))
    return frame.sort_values(order).reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with every missing value as None (text columns read back hold NaN)."""
    return [
        {k: None if not isinstance(v, list) and pd.isna(v) else v for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def evaluation(result: ExecuteInProcessResult, asset: str, check: str) -> AssetCheckEvaluation:
    found = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AssetKey(["reference", asset]) and e.check_name == check
    ]
    assert len(found) == 1, [
        (e.asset_key, e.check_name) for e in result.get_asset_check_evaluations()
    ]
    return found[0]


def failure_message(result: ExecuteInProcessResult, asset: str) -> str:
    data = result.failure_data_for_node(f"reference__{asset}")
    assert data is not None, f"reference__{asset} did not fail"
    return data.user_failure_data.description if data.user_failure_data else data.error.message


def meta(result: ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node(f"reference__{asset}")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


@pytest.fixture
def instance(dagster_instance: DagsterInstance) -> DagsterInstance:
    """The session instance without any history of the reference assets."""
    dagster_instance.wipe_assets(REFERENCE_KEYS)
    return dagster_instance


# --- one full refresh, shared ---------------------------------------------------------------


@pytest.fixture(scope="module")
def module_warehouse(
    pg_server: DatabaseUrls, migrated_template: str
) -> Iterator[WarehouseResource]:
    name = f"fishnet_ref_{uuid.uuid4().hex[:12]}"
    urls = create_database(pg_server, name, template=migrated_template)
    yield WarehouseResource(database_url=urls.libpq)
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def refreshed(
    module_warehouse: WarehouseResource, dagster_instance: DagsterInstance
) -> ExecuteInProcessResult:
    seed_sample_source(module_warehouse.engine)
    dagster_instance.wipe_assets(REFERENCE_KEYS)
    result = refresh(dagster_instance, module_warehouse, [*REFERENCE_ASSETS, *VESSEL_LINK_CHECKS])
    assert result.success
    return result


@pytest.mark.parametrize("name", sorted(FILE_TABLES))
def test_file_tables_hold_their_source(
    refreshed: ExecuteInProcessResult, module_warehouse: WarehouseResource, name: str
) -> None:
    read, path, key = FILE_TABLES[name]
    expected = read(path).sort_values(key).reset_index(drop=True)
    stored = table(module_warehouse, name, key)
    assert records(stored) == records(expected)
    assert meta(refreshed, name)["dagster/row_count"] == len(expected)
    assert meta(refreshed, name)["source"] == str(path)


def test_vessels_hold_the_registry(
    refreshed: ExecuteInProcessResult, module_warehouse: WarehouseResource
) -> None:
    source = SourceDatabaseResource(url=module_warehouse.urls.libpq, schema_name=EMBEDDED_SCHEMA)
    expected = read_vessels(source)
    stored = table(module_warehouse, "vessels", ["vessel_id"])
    assert len(stored) == 300
    assert records(stored) == records(expected)
    first = stored.iloc[0]
    assert isinstance(first["declared_fishing_gears"], list) and first["declared_fishing_gears"]


def test_metadata_counts_key_codes_and_names_the_source(
    refreshed: ExecuteInProcessResult, module_warehouse: WarehouseResource
) -> None:
    stored = table(module_warehouse, "vessels", ["vessel_id"])
    vessel_meta = meta(refreshed, "vessels")
    assert vessel_meta["dagster/row_count"] == 300
    assert vessel_meta["vessels_by_flag_state"] == {"FR": 300}
    assert vessel_meta["district_count"] == stored["district_code"].nunique()
    assert vessel_meta["active_vessels"] == int(stored["is_active"].sum())
    gears = {g for cell in stored["declared_fishing_gears"] for g in cell}
    assert vessel_meta["declared_gear_count"] == len(gears)
    assert vessel_meta["source"].endswith(" oracle_source.NAVIRES")
    assert meta(refreshed, "districts")["district_count"] == len(
        read_districts(DATA / "districts.csv")
    )
    gear_codes = read_fishing_gear_codes(DATA / "fishing_gear_codes.csv")
    assert meta(refreshed, "fishing_gear_codes")["gear_count"] == len(gear_codes)
    segments = meta(refreshed, "fleet_segments")
    assert segments["write_mode"] == "upsert"
    assert set(segments["segments_by_year"]) == {"2025", "2026"}


def test_anchorages_are_the_rings_of_active_ports(
    refreshed: ExecuteInProcessResult, module_warehouse: WarehouseResource
) -> None:
    expected = anchorages_from_ports(read_ports(DATA / "ports.csv"))
    stored = table(module_warehouse, "anchorages", ["h3"])
    assert records(stored) == records(expected)
    anchorage_meta = meta(refreshed, "anchorages")
    assert anchorage_meta["cells_from_ports"] == len(expected)
    assert anchorage_meta["cells_from_positions"] == 0
    assert anchorage_meta["source"].startswith("reference.ports")


def test_every_check_runs_and_passes_on_the_bundled_data(refreshed: ExecuteInProcessResult) -> None:
    evaluations = refreshed.get_asset_check_evaluations()
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    tables = {a.key.path[-1] for a in REFERENCE_ASSETS}
    expected = {(t, c) for t in tables for c in (KEYS_CHECK, DROP_CHECK)} | {
        ("vessels", "district_codes_known"),
        ("vessels", "registry_ports_known"),
        ("vessels", "declared_gears_known"),
    }
    assert names == expected
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]


def test_reference_job_refreshes_the_same_tables_again(
    refreshed: ExecuteInProcessResult,
    module_warehouse: WarehouseResource,
    dagster_instance: DagsterInstance,
) -> None:
    domain = reference_defs
    defs = Definitions(
        assets=domain.assets,
        asset_checks=domain.asset_checks,
        jobs=domain.jobs,
        schedules=domain.schedules,
        resources=run_resources(module_warehouse),
    )
    before = {name: table(module_warehouse, name, key) for name, (_, _, key) in FILE_TABLES.items()}
    before_vessels = table(module_warehouse, "vessels", ["vessel_id"])
    baseline = previous_row_count(dagster_instance, AssetKey(["reference", "vessels"]))

    result = defs.resolve_job_def("reference_job").execute_in_process(instance=dagster_instance)

    assert result.success
    assert len(result.get_asset_check_evaluations()) == 17
    assert all(e.passed for e in result.get_asset_check_evaluations())
    for name, (_, _, key) in FILE_TABLES.items():
        pd.testing.assert_frame_equal(table(module_warehouse, name, key), before[name])
    pd.testing.assert_frame_equal(table(module_warehouse, "vessels", ["vessel_id"]), before_vessels)
    # the guard compared with the latest materialisation before this run
    drop = evaluation(result, "vessels", DROP_CHECK)
    assert drop.metadata["previous_row_count"].value == (
        baseline if baseline is not None else "none"
    )
    assert drop.metadata["row_count"].value == 300


# --- checks on bad data ---------------------------------------------------------------------


def test_unknown_codes_fail_the_warn_checks_with_offenders(
    warehouse: WarehouseResource, instance: DagsterInstance
) -> None:
    seed_sample_source(warehouse.engine, n=40)
    with warehouse.connect() as conn:
        conn.execute(
            'UPDATE oracle_source."NAVIRES" SET "CODE_QUARTIER" = %s WHERE "ID_NAVIRE" IN (3, 17)',
            ("ZZ",),
        )
        conn.execute(
            'UPDATE oracle_source."NAVIRES" SET "LOCODE_PORT_ATTACHE" = %s WHERE "ID_NAVIRE" = 5',
            ("FRXXX",),
        )
        conn.execute(
            'UPDATE oracle_source."NAVIRES_ENGINS" SET "CODE_ENGIN" = %s '
            'WHERE "ID_NAVIRE" = 9 AND "RANG" = 1',
            ("XYZ",),
        )
    result = refresh(instance, warehouse, VESSEL_LINKS)

    assert result.success  # WARN checks report, they do not stop the run
    district = evaluation(result, "vessels", "district_codes_known")
    assert not district.passed
    assert district.severity == AssetCheckSeverity.WARN
    assert district.metadata["offending_vessels"].value == 2
    assert district.metadata["unknown_codes"].value == {"ZZ": 2}
    assert [row["vessel_id"] for row in district.metadata["sample"].value] == [3, 17]
    assert "2 vessels" in (district.description or "")
    port = evaluation(result, "vessels", "registry_ports_known")
    assert not port.passed and port.severity == AssetCheckSeverity.WARN
    assert port.metadata["unknown_codes"].value == {"FRXXX": 1}
    assert port.metadata["sample"].value[0]["vessel_id"] == 5
    gear = evaluation(result, "vessels", "declared_gears_known")
    assert not gear.passed and gear.severity == AssetCheckSeverity.WARN
    assert gear.metadata["unknown_codes"].value == {"XYZ": 1}
    assert gear.metadata["sample"].value[0]["vessel_id"] == 9
    stored = table(warehouse, "vessels", ["vessel_id"])
    assert stored.loc[stored["vessel_id"] == 3, "district_code"].item() == "ZZ"


def test_duplicate_key_fails_the_error_check_and_keeps_the_table(
    warehouse: WarehouseResource, instance: DagsterInstance
) -> None:
    seed_sample_source(warehouse.engine, n=40)
    assert refresh(instance, warehouse, [vessels]).success
    before = table(warehouse, "vessels", ["vessel_id"])
    cfr = before.loc[before["vessel_id"] == 1, "cfr"].item()
    with warehouse.connect() as conn:
        conn.execute('UPDATE oracle_source."NAVIRES" SET "CFR" = %s WHERE "ID_NAVIRE" = 2', (cfr,))

    result = refresh(instance, warehouse, [vessels])

    assert not result.success
    keys = evaluation(result, "vessels", KEYS_CHECK)
    assert not keys.passed
    assert keys.severity == AssetCheckSeverity.ERROR
    assert keys.metadata["cfr duplicated values"].value == 1
    assert keys.metadata["duplicated sample"].value == [{"key": "cfr", "value": cfr, "rows": 2}]
    assert "not refreshed, the previous table is kept" in failure_message(result, "vessels")
    assert cfr in failure_message(result, "vessels")
    pd.testing.assert_frame_equal(table(warehouse, "vessels", ["vessel_id"]), before)


# --- malformed sources ----------------------------------------------------------------------


def _bad_ports(tmp_path: Path, kind: str) -> tuple[Path, str]:
    lines = (DATA / "ports.csv").read_text(encoding="utf-8").splitlines()
    if kind == "missing column":
        header = lines[0].split(",")
        at = header.index("facade")
        lines = [",".join(f for i, f in enumerate(line.split(",")) if i != at) for line in lines]
        expected = "missing columns: facade"
    else:
        fields = lines[4].split(",")
        fields[3] = "47,7"  # a decimal comma splits the latitude: one field too many
        lines[4] = ",".join(fields)
        expected = "line 5: 10 fields, the header has 9"
    path = tmp_path / "ports.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, expected


@pytest.mark.parametrize("kind", ["missing column", "unparsable row"])
def test_malformed_csv_names_file_and_line_and_keeps_the_table(
    warehouse: WarehouseResource, instance: DagsterInstance, tmp_path: Path, kind: str
) -> None:
    assert refresh(instance, warehouse, [ports, anchorages]).success
    before = table(warehouse, "ports", ["locode"])
    before_anchorages = table(warehouse, "anchorages", ["h3"])
    path, expected = _bad_ports(tmp_path, kind)

    result = refresh(
        instance, warehouse, [ports, anchorages], files=bundled_files(ports_csv=str(path))
    )

    assert not result.success
    message = failure_message(result, "ports")
    assert str(path) in message and expected in message
    assert not [e for e in result.all_events if e.step_key == "reference__anchorages"]
    pd.testing.assert_frame_equal(table(warehouse, "ports", ["locode"]), before)
    pd.testing.assert_frame_equal(table(warehouse, "anchorages", ["h3"]), before_anchorages)


# A registry without constraints (legacy Oracle schemas often have none) lets bad rows through.
REGISTRY_BREAKAGES = {
    "missing column": (
        'ALTER TABLE oracle_source."NAVIRES" DROP COLUMN "EST_ACTIF"',
        ["cannot read the vessel registry", "EST_ACTIF"],
    ),
    "duplicate key": (
        'ALTER TABLE oracle_source."NAVIRES" DROP CONSTRAINT "NAVIRES_pkey" CASCADE; '
        'INSERT INTO oracle_source."NAVIRES" SELECT * FROM oracle_source."NAVIRES" '
        'WHERE "ID_NAVIRE" = 7',
        ["duplicate vessel_id 7"],
    ),
    "unparsable row": (
        'ALTER TABLE oracle_source."NAVIRES_PERMIS" ALTER COLUMN "DATE_EXPIRATION" TYPE text; '
        'UPDATE oracle_source."NAVIRES_PERMIS" SET "DATE_EXPIRATION" = \'31/12/2026\' '
        'WHERE "ID_NAVIRE" = {vessel}',
        ["vessel_id {vessel}: bad value '31/12/2026' in column licence_expiry_date"],
    ),
}


@pytest.mark.parametrize("kind", sorted(REGISTRY_BREAKAGES))
def test_malformed_registry_names_table_and_key_and_keeps_the_table(
    warehouse: WarehouseResource, instance: DagsterInstance, kind: str
) -> None:
    seed_sample_source(warehouse.engine, n=20)
    assert refresh(instance, warehouse, [vessels]).success
    before = table(warehouse, "vessels", ["vessel_id"])
    licensed = before.loc[before["licence_expiry_date"].notna(), "vessel_id"].iloc[0]
    breakage, expected = REGISTRY_BREAKAGES[kind]
    with warehouse.connect() as conn:
        conn.execute(breakage.format(vessel=licensed))

    result = refresh(instance, warehouse, [vessels])

    assert not result.success
    message = failure_message(result, "vessels")
    assert "oracle_source.NAVIRES" in message
    for part in expected:
        assert part.format(vessel=licensed) in message
    pd.testing.assert_frame_equal(table(warehouse, "vessels", ["vessel_id"]), before)


# --- the drop guard -------------------------------------------------------------------------


def test_drop_guard_stops_a_large_drop_unless_allowed(
    warehouse: WarehouseResource, instance: DagsterInstance
) -> None:
    seed_sample_source(warehouse.engine, n=50)
    first = refresh(instance, warehouse, [vessels])
    assert first.success
    assert evaluation(first, "vessels", DROP_CHECK).metadata["previous_row_count"].value == "none"

    seed_sample_source(warehouse.engine, n=35)  # 30% fewer vessels
    blocked = refresh(instance, warehouse, [vessels])
    assert not blocked.success
    guard = evaluation(blocked, "vessels", DROP_CHECK)
    assert not guard.passed and guard.severity == AssetCheckSeverity.ERROR
    assert guard.metadata["previous_row_count"].value == 50
    assert guard.metadata["row_count"].value == 35
    assert "30% fewer than the 50" in failure_message(blocked, "vessels")
    assert len(table(warehouse, "vessels", ["vessel_id"])) == 50

    allowed = refresh(
        instance,
        warehouse,
        [vessels],
        run_config={"ops": {"reference__vessels": {"config": {"allow_large_drop": True}}}},
    )
    assert allowed.success
    assert evaluation(allowed, "vessels", DROP_CHECK).passed
    assert len(table(warehouse, "vessels", ["vessel_id"])) == 35

    seed_sample_source(warehouse.engine, n=30)  # 14% fewer than the accepted 35: within the limit
    assert refresh(instance, warehouse, [vessels]).success
    assert len(table(warehouse, "vessels", ["vessel_id"])) == 30


def test_fleet_segments_upsert_keeps_years_left_out_of_the_folder(
    warehouse: WarehouseResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    assert refresh(instance, warehouse, [fleet_segments]).success
    before = table(warehouse, "fleet_segments", ["year", "segment"])
    folder = tmp_path / "fleet_segments"
    folder.mkdir()
    text = (DATA / "fleet_segments" / "2026.yaml").read_text(encoding="utf-8")
    (folder / "2026.yaml").write_text(
        text.replace("impact_risk_factor: 2.8", "impact_risk_factor: 3.1", 1), encoding="utf-8"
    )
    files = bundled_files(fleet_segments_dir=str(folder))

    # Only 2026 in the folder: the guard sees far fewer rows than last time...
    assert not refresh(instance, warehouse, [fleet_segments], files=files).success
    pd.testing.assert_frame_equal(table(warehouse, "fleet_segments", ["year", "segment"]), before)
    # ...and once allowed, the upsert updates 2026 and keeps 2025.
    allowed = refresh(
        instance,
        warehouse,
        [fleet_segments],
        files=files,
        run_config={"ops": {"reference__fleet_segments": {"config": {"allow_large_drop": True}}}},
    )
    assert allowed.success
    after = table(warehouse, "fleet_segments", ["year", "segment"]).set_index(["year", "segment"])
    assert len(after) == len(before)
    assert after.loc[(2026, "T8-9"), "impact_risk_factor"] == 3.1
    assert (
        after.loc[(2025, "T8-9"), "impact_risk_factor"]
        == (before.set_index(["year", "segment"]).loc[(2025, "T8-9"), "impact_risk_factor"])
    )


def test_species_from_a_file_the_user_points_at(
    warehouse: WarehouseResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    path = tmp_path / "asfis.csv"
    path.write_text(
        "species_code,scientific_name,english_name,french_name,isscaap_group\n"
        'COD,Gadus morhua,Atlantic cod,Morue de l\'Atlantique,"Cods, hakes, haddocks"\n'
        'HKE,Merluccius merluccius,European hake,Merlu européen,"Cods, hakes, haddocks"\n',
        encoding="utf-8",
    )
    result = refresh(instance, warehouse, [species], files=bundled_files(species_csv=str(path)))
    assert result.success
    assert table(warehouse, "species", ["species_code"])["species_code"].tolist() == ["COD", "HKE"]
    assert meta(result, "species")["source"] == str(path)


def test_anchorages_add_cells_where_vessels_stop_near_a_port(
    warehouse: WarehouseResource, instance: DagsterInstance
) -> None:
    """The hook of the positions domain: cells with stops of several vessels on several days,
    near a port but outside its rings, become anchorages (source 'positions'); a stop far out at
    sea does not."""
    from datetime import UTC, datetime, timedelta

    from platform_assets.positions import naf, store
    from tests.integration.positions_helpers import Fix

    near_lorient = (47.7347 + 0.018, -3.3614)  # ~2 km north of FRLRT: not one of its ring cells
    at_sea = (46.0, -6.0)
    day = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    fixes = [
        Fix(f"FRA00000{v}", None, None, day - timedelta(days=d, minutes=m), *where, speed=0.0)
        for v in range(3)
        for d in range(2)
        for m, where in ((0, near_lorient), (30, near_lorient), (60, at_sea))
    ]
    frame, errors = naf.parse_lines([f.naf() for f in fixes])
    assert not errors
    with warehouse.adbc() as conn:
        store.load_positions(conn, frame, store.read_anchorages(conn))
        conn.commit()

    assert refresh(instance, warehouse, [ports, anchorages]).success
    stored = table(warehouse, "anchorages", ["h3"])
    from_positions = stored[stored["source"] == "positions"]
    assert len(from_positions) == 1
    assert from_positions["port_locode"].tolist() == ["FRLRT"]
    assert from_positions["distance_m"].iloc[0] < 5_000
