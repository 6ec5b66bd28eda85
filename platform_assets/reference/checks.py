"""Checks of the reference tables.

Two kinds, by when they can run:

- Gates, evaluated inside each asset on the new frame before it is written (`gate_check_specs`):
  unique, non-null keys and the row-count drop guard. Both are ERROR and blocking; when one fails
  the asset reports it and raises, so the IO manager writes nothing and the previous table stays.
- Links of vessels to the other tables, evaluated after the write by reading the warehouse
  (`@asset_check`, WARN): district, registry port and declared gears must be known codes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    MetadataValue,
    asset_check,
)

from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = "reference"
KEYS_CHECK = "unique_non_null_keys"
DROP_CHECK = "no_large_row_drop"
#: A refresh may lose at most this fraction of the previous materialisation's rows.
MAX_ROW_DROP = 0.20
#: How many offending rows or key values a check shows in its metadata.
SAMPLE_SIZE = 10


def reference_key(table: str) -> AssetKey:
    """The asset key of a reference table (the IO manager maps it to `reference.<table>`)."""
    return AssetKey([SCHEMA, table])


VESSELS = reference_key("vessels")
DISTRICTS = reference_key("districts")
PORTS = reference_key("ports")
FISHING_GEAR_CODES = reference_key("fishing_gear_codes")


def gate_check_specs(table: str) -> list[AssetCheckSpec]:
    """The checks every reference asset evaluates on its frame before writing it."""
    key = reference_key(table)
    return [
        AssetCheckSpec(
            KEYS_CHECK,
            asset=key,
            blocking=True,
            description="Key columns are present on every row and never repeat; "
            "the table is not replaced otherwise.",
        ),
        AssetCheckSpec(
            DROP_CHECK,
            asset=key,
            blocking=True,
            description=f"The refresh keeps at least {1 - MAX_ROW_DROP:.0%} of the previous "
            "materialisation's rows; the table is not replaced otherwise "
            "(config `allow_large_drop: true` accepts a deliberate drop).",
        ),
    ]


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRule:
    """Columns whose values identify a row; `nullable` keys must be unique only where present."""

    columns: tuple[str, ...]
    nullable: bool = False

    @property
    def label(self) -> str:
        return "+".join(self.columns)


def key_check(frame: pd.DataFrame, rules: Sequence[KeyRule]) -> AssetCheckResult:
    """Unique, non-null keys (ERROR); metadata counts offenders per key and shows a sample."""
    metadata: dict[str, Any] = {}
    problems: list[str] = []
    offenders: list[dict[str, Any]] = []
    for rule in rules:
        keys = frame[list(rule.columns)]
        missing = keys.isna().any(axis=1)
        nulls = 0 if rule.nullable else int(missing.sum())
        present = keys[~missing]
        repeated = present[present.duplicated(keep=False)]
        counts = Counter(tuple(row) for row in repeated.itertuples(index=False))
        metadata[f"{rule.label} null"] = nulls
        metadata[f"{rule.label} duplicated values"] = len(counts)
        if nulls:
            problems.append(f"{nulls} rows without {rule.label}")
        if counts:
            examples = ", ".join("/".join(map(str, value)) for value in list(counts)[:3])
            problems.append(f"{len(counts)} {rule.label} values on several rows (e.g. {examples})")
            offenders.extend(
                {"key": rule.label, "value": "/".join(map(str, value)), "rows": rows}
                for value, rows in list(counts.items())[:SAMPLE_SIZE]
            )
    if offenders:
        metadata["duplicated sample"] = MetadataValue.json(offenders)
    return AssetCheckResult(
        check_name=KEYS_CHECK,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems) if problems else "keys are unique and present",
        metadata=metadata,
    )


# --- drop guard -----------------------------------------------------------------------------


def previous_row_count(instance: DagsterInstance, asset_key: AssetKey) -> int | None:
    """`dagster/row_count` of the asset's latest materialisation, None without one."""
    records = instance.fetch_materializations(asset_key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("dagster/row_count")
    count = getattr(value, "value", None)
    return int(count) if isinstance(count, int) else None


def drop_check(
    previous: int | None,
    current: int,
    allow_large_drop: bool = False,
    max_drop: float = MAX_ROW_DROP,
) -> AssetCheckResult:
    """Fail (ERROR) when `current` is more than `max_drop` below `previous`, unless allowed."""
    drop = (previous - current) / previous if previous else 0.0
    too_large = drop > max_drop
    metadata: dict[str, Any] = {
        "previous_row_count": previous if previous is not None else "none",
        "row_count": current,
        "drop_pct": round(100 * drop, 1),
        "max_drop_pct": round(100 * max_drop, 1),
        "allow_large_drop": allow_large_drop,
    }
    if previous is None:
        description = "no previous materialisation to compare with"
    elif too_large:
        description = (
            f"{current} rows, {drop:.0%} fewer than the {previous} of the previous "
            f"materialisation (at most {max_drop:.0%} allowed)"
        )
        if allow_large_drop:
            description += "; accepted because allow_large_drop is set"
    else:
        description = f"{current} rows against {previous} previously"
    return AssetCheckResult(
        check_name=DROP_CHECK,
        passed=not too_large or allow_large_drop,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


# --- links of vessels to the other reference tables ------------------------------------------


def _unknown_codes_result(
    warehouse: WarehouseResource, column: str, target: str, offenders_sql: str
) -> AssetCheckResult:
    with warehouse.connect() as conn:
        rows = conn.execute(offenders_sql).fetchall()
        counted = conn.execute(f"SELECT count(*) FROM {target}").fetchone()
    known = counted[0] if counted else 0
    vessels = sorted({vessel_id for vessel_id, _, _ in rows})
    codes = Counter(code for _, _, code in rows)
    sample = [{"vessel_id": v, "cfr": cfr, column: code} for v, cfr, code in rows[:SAMPLE_SIZE]]
    if rows:
        listed = ", ".join(f"{code} ({n})" for code, n in codes.most_common(5))
        description = f"{len(vessels)} vessels have a {column} missing from {target}: {listed}"
    else:
        description = f"every {column} of reference.vessels is in {target}"
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "offending_vessels": len(vessels),
            "unknown_codes": MetadataValue.json(dict(codes.most_common(SAMPLE_SIZE))),
            "sample": MetadataValue.json(sample),
            f"{target} rows": known,
        },
    )


@asset_check(
    asset=VESSELS,
    additional_deps=[DISTRICTS],
    description="Every vessel's district_code is in reference.districts.",
)
def district_codes_known(warehouse: WarehouseResource) -> AssetCheckResult:
    """Vessels whose maritime district is not a known district (WARN)."""
    return _unknown_codes_result(
        warehouse,
        "district_code",
        "reference.districts",
        """
        SELECT v.vessel_id, v.cfr, v.district_code
        FROM reference.vessels v
        WHERE v.district_code IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM reference.districts d WHERE d.district_code = v.district_code)
        ORDER BY v.vessel_id
        """,
    )


@asset_check(
    asset=VESSELS,
    additional_deps=[PORTS],
    description="Every vessel's registry_port_locode is in reference.ports.",
)
def registry_ports_known(warehouse: WarehouseResource) -> AssetCheckResult:
    """Vessels whose registry port is not a known port (WARN)."""
    return _unknown_codes_result(
        warehouse,
        "registry_port_locode",
        "reference.ports",
        """
        SELECT v.vessel_id, v.cfr, v.registry_port_locode
        FROM reference.vessels v
        WHERE v.registry_port_locode IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM reference.ports p WHERE p.locode = v.registry_port_locode)
        ORDER BY v.vessel_id
        """,
    )


@asset_check(
    asset=VESSELS,
    additional_deps=[FISHING_GEAR_CODES],
    description="Every gear in a vessel's declared_fishing_gears is in reference.fishing_gear_codes.",
)
def declared_gears_known(warehouse: WarehouseResource) -> AssetCheckResult:
    """Vessels declaring a gear code that is not a known gear (WARN)."""
    return _unknown_codes_result(
        warehouse,
        "gear_code",
        "reference.fishing_gear_codes",
        """
        SELECT v.vessel_id, v.cfr, g.gear_code
        FROM reference.vessels v
        CROSS JOIN LATERAL unnest(v.declared_fishing_gears) AS g(gear_code)
        WHERE NOT EXISTS (
            SELECT 1 FROM reference.fishing_gear_codes c WHERE c.gear_code = g.gear_code)
        ORDER BY v.vessel_id, g.gear_code
        """,
    )


VESSEL_LINK_CHECKS = [district_codes_known, registry_ports_known, declared_gears_known]
