"""The `vessels` reference table from the registry's rows: the pure transform.

`resources.source_db` runs the registry queries (resources/registry_tables.py) and hands the rows
here; nothing in this module connects to a database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from platform_assets.reference.readers import ReferenceSourceError
from resources.registry_tables import RegistryRows, SourceDatabaseError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Columns of the `vessels` reference table, in order.
VESSEL_COLUMNS: tuple[str, ...] = (
    "vessel_id",
    "cfr",
    "mmsi",
    "ircs",
    "external_immatriculation",
    "vessel_name",
    "flag_state",
    "length",
    "width",
    "gauge",
    "power",
    "vessel_type",
    "sailing_category",
    "declared_fishing_gears",
    "licence_expiry_date",
    "district_code",
    "registry_port_locode",
    "owner_name",
    "owner_email",
    "owner_phone",
    "operator_name",
    "operator_email",
    "operator_phone",
    "is_active",
)

_TEXT_COLUMNS = (
    "cfr",
    "mmsi",
    "ircs",
    "external_immatriculation",
    "vessel_name",
    "flag_state",
    "vessel_type",
    "sailing_category",
    "district_code",
    "registry_port_locode",
    "owner_name",
    "owner_email",
    "owner_phone",
    "operator_name",
    "operator_email",
    "operator_phone",
)
_FLOAT_COLUMNS = ("length", "width", "gauge", "power")


class RegistryReader(Protocol):
    """What `read_vessels` needs of the source: `resources.source_db.SourceDatabaseResource`."""

    def read_registry(self) -> RegistryRows: ...


def read_vessels(source_db: RegistryReader) -> pd.DataFrame:
    """The `vessels` table from the registry; errors name the source (and the vessel key)."""
    try:
        rows = source_db.read_registry()
    except SourceDatabaseError as exc:
        raise ReferenceSourceError(str(exc)) from exc
    try:
        return transform_vessels(rows.vessels, rows.declared_gears)
    except ReferenceSourceError as exc:
        raise ReferenceSourceError(f"{rows.source}: {exc}") from exc


def transform_vessels(
    rows: Iterable[Mapping[str, Any] | Any], gear_rows: Iterable[Mapping[str, Any] | Any]
) -> pd.DataFrame:
    """Rows of `vessels_query` + rows of `declared_gears_query` -> the `vessels` table.

    Accepts SQLAlchemy rows or mappings. Text is stripped (Oracle CHAR pads) and blank becomes
    None; gears are listed in rank order without repeats; Oracle DATE (a datetime) becomes a date.
    Raises `ReferenceSourceError` naming the vessel ids when a row has no id or an id repeats,
    and the vessel id and column when a value cannot be converted (e.g. a length `'12,5'`).
    """
    gears = _gears_by_vessel(gear_rows)
    records: list[dict[str, Any]] = []
    seen: set[int] = set()
    duplicates: set[int] = set()
    for number, raw in enumerate(rows, start=1):
        row = _as_mapping(raw)
        vessel_id = row.get("vessel_id")
        if vessel_id is None:
            raise ReferenceSourceError(f"vessels source row {number}: missing key vessel_id")
        vessel_id = int(vessel_id)
        if vessel_id in seen:
            duplicates.add(vessel_id)
        seen.add(vessel_id)
        record: dict[str, Any] = {"vessel_id": vessel_id}
        for name in _TEXT_COLUMNS:
            record[name] = _text(row.get(name))
        column = ""
        try:
            for column in _FLOAT_COLUMNS:
                value = row.get(column)
                record[column] = float(value) if value is not None else float("nan")
            column = "licence_expiry_date"
            record[column] = _date(row.get(column))
            column = "is_active"
            active = row.get(column)
            record[column] = bool(int(active)) if active is not None else False
        except (TypeError, ValueError):
            raise ReferenceSourceError(
                f"vessels source vessel_id {vessel_id}: bad value {row.get(column)!r} "
                f"in column {column}"
            ) from None
        record["declared_fishing_gears"] = gears.get(vessel_id, [])
        records.append(record)
    if duplicates:
        raise ReferenceSourceError(
            f"vessels source: duplicate vessel_id {', '.join(map(str, sorted(duplicates)))}"
        )
    orphans = sorted(set(gears) - seen)
    if orphans:
        logger.info("declared gears of %d vessels not in the registry ignored", len(orphans))
    return _vessels_frame(records)


def _vessels_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd  # here, not at import: the asset definitions import this module

    data: dict[str, pd.Series] = {}
    for name in VESSEL_COLUMNS:
        values = [r[name] for r in records]
        if name == "vessel_id":
            dtype = "int64"
        elif name in _FLOAT_COLUMNS:
            dtype = "float64"
        elif name == "is_active":
            dtype = "bool"
        else:
            dtype = "object"
        data[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(data, columns=list(VESSEL_COLUMNS))


def _gears_by_vessel(gear_rows: Iterable[Mapping[str, Any] | Any]) -> dict[int, list[str]]:
    ranked: dict[int, list[tuple[int, str]]] = {}
    for raw in gear_rows:
        row = _as_mapping(raw)
        code = _text(row.get("gear_code"))
        if row.get("vessel_id") is None or code is None:
            continue
        rank = row.get("rank")
        ranked.setdefault(int(row["vessel_id"]), []).append(
            (int(rank) if rank is not None else 1_000_000, code.upper())
        )
    result: dict[int, list[str]] = {}
    for vessel_id, items in ranked.items():
        codes: list[str] = []
        for _, code in sorted(items):
            if code not in codes:
                codes.append(code)
        result[vessel_id] = codes
    return result


def _as_mapping(row: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    mapping = getattr(row, "_mapping", None)
    return mapping if mapping is not None else row


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
