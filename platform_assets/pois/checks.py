"""Checks of the POI tables, read from the warehouse after each load (the share of records
failing a transform is checked by each source's normalised asset, as it knows the counts), and
per source the usual-level check of its extracts: records read by the latest extract against the
mean of the 7 before it (`ops.run_metrics`, job `pois_extract`), a warning below half."""

from collections.abc import Callable, Sequence
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from platform_assets.ops.checks import usual_level_check
from platform_assets.pois.assets import EXTRACT_JOB, raw_key, table_key
from platform_assets.pois.models import INSEE_CODE
from platform_assets.pois.sources import sources
from resources.warehouse import WarehouseResource

SAMPLE = 10
INSEE_SQL_PATTERN = f"^({INSEE_CODE.pattern})$"
USUAL_FRACTION = 0.5


def _offending(rows: Sequence[tuple[Any, ...]], as_dict: Callable[..., dict]) -> AssetCheckResult:
    """An ERROR result listing the offending rows (count and a sample)."""
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "offending": len(rows),
            "sample": MetadataValue.json([as_dict(*row) for row in rows[:SAMPLE]]),
        },
    )


@asset_check(
    asset=table_key("poi"),
    description="every active POI has an address with valid coordinates",
    blocking=False,
)
def active_pois_have_valid_address(warehouse: WarehouseResource) -> AssetCheckResult:
    """Active POIs without an address whose latitude/longitude are in range."""
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT p.id, p.name FROM pois.poi p WHERE p.active AND NOT EXISTS ("
            "  SELECT 1 FROM pois.address_poi ap JOIN pois.address a ON a.id = ap.address_id"
            "  WHERE ap.poi_id = p.id AND a.latitude BETWEEN -90 AND 90"
            "  AND a.longitude BETWEEN -180 AND 180 AND NOT (a.latitude = 0 AND a.longitude = 0))"
            " ORDER BY p.id"
        ).fetchall()
    return _offending(rows, lambda i, n: {"id": i, "name": n})


@asset_check(asset=table_key("address"), description="INSEE commune codes are valid")
def insee_codes_valid(warehouse: WarehouseResource) -> AssetCheckResult:
    """Addresses whose INSEE code is missing or not a valid commune code (2A/2B for Corsica)."""
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT id, insee_code FROM pois.address "
            "WHERE insee_code IS NULL OR insee_code !~ %s ORDER BY id",
            (INSEE_SQL_PATTERN,),
        ).fetchall()
    return _offending(rows, lambda i, c: {"id": i, "insee_code": c})


@asset_check(asset=table_key("registered_poi"), description="no duplicate (source, original id)")
def no_duplicate_source_ids(warehouse: WarehouseResource) -> AssetCheckResult:
    """(source, original_id) pairs held more than once, and POIs registered twice."""
    with warehouse.connect() as conn:
        duplicates = conn.execute(
            "SELECT source, original_id, count(*) FROM pois.registered_poi "
            "GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2"
        ).fetchall()
        shared = conn.execute(
            "SELECT poi_id FROM pois.registered_poi GROUP BY 1 HAVING count(*) > 1"
        ).fetchall()
    return AssetCheckResult(
        passed=not duplicates and not shared,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "duplicate_keys": len(duplicates),
            "pois_registered_twice": len(shared),
            "sample": MetadataValue.json(
                [{"source": s, "original_id": o, "count": c} for s, o, c in duplicates[:SAMPLE]]
            ),
        },
    )


def usual_extract_volume(source: str) -> AssetChecksDefinition:
    """WARN when a source's latest extract read fewer than half its usual records."""
    return usual_level_check(
        raw_key(source),
        job=EXTRACT_JOB,
        source=source,
        figures=("rows_read",),
        fraction=USUAL_FRACTION,
        name="usual_extract_volume",
    )


POI_CHECKS: list[AssetChecksDefinition] = [
    active_pois_have_valid_address,
    insee_codes_valid,
    no_duplicate_source_ids,
    *(usual_extract_volume(name) for name in sources()),
]
