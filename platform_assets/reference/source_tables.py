"""The vessel registry as it lives in the Oracle source, its queries, and the pure transform.

Tables are declared with the source's upper-case Oracle names. SQLAlchemy quotes upper-case
identifiers, which Oracle resolves exactly like the unquoted names, and which lets the same
declarations create a look-alike schema in PostgreSQL for the embedded default and tests
(`source_tables(schema).metadata.create_all(connection)`).

Declared gears are fetched by a second query and aggregated in Python rather than with
LISTAGG (Oracle) / string_agg (PostgreSQL): the SQL stays portable and free of dialect switches,
the gears keep their declared rank order, a list never hits LISTAGG's 4000-byte limit, and gear
codes never have to be split back out of a joined string.

Nothing here connects to a database: queries are SQLAlchemy Core objects that the caller executes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    Select,
    String,
    Table,
    bindparam,
    func,
    select,
)

from platform_assets.reference.readers import ReferenceSourceError

logger = logging.getLogger(__name__)

#: Contact roles in the source's contacts table.
OWNER = "OWNER"
OPERATOR = "OPERATOR"

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


@dataclass(frozen=True)
class SourceTables:
    """The registry tables of one source schema; `metadata.sorted_tables` is in insert order."""

    metadata: MetaData
    vessels: Table
    contacts: Table
    licences: Table
    declared_gears: Table


def source_tables(schema: str | None = None) -> SourceTables:
    """Declare the registry tables in `schema` (None: the connection's default schema)."""
    metadata = MetaData(schema=schema)
    vessels = Table(
        "NAVIRES",
        metadata,
        Column("ID_NAVIRE", Integer, primary_key=True, autoincrement=False),
        Column("CFR", String(12), comment="Community Fleet Register number, e.g. FRA000123456"),
        Column("MMSI", String(9)),
        Column("IRCS", String(7), comment="International radio call sign"),
        Column("IMMATRICULATION_EXT", String(14), comment="External marking, e.g. BL 123456"),
        Column("NOM_NAVIRE", String(100)),
        Column("PAVILLON", String(2), comment="Flag state, ISO 3166 alpha-2"),
        Column("LONGUEUR", Numeric(6, 2, asdecimal=False), comment="Length overall, m"),
        Column("LARGEUR", Numeric(6, 2, asdecimal=False), comment="Beam, m"),
        Column("JAUGE", Numeric(8, 2, asdecimal=False), comment="Gross tonnage (GT)"),
        Column("PUISSANCE", Numeric(8, 2, asdecimal=False), comment="Engine power, kW"),
        Column("TYPE_NAVIRE", String(60)),
        Column("CATEGORIE_NAVIGATION", String(20)),
        Column("CODE_QUARTIER", String(2), comment="Maritime district"),
        Column("LOCODE_PORT_ATTACHE", String(5), comment="Registry port UN/LOCODE"),
        # Oracle has no boolean column type before 23ai: the registry stores 1 / 0.
        Column("EST_ACTIF", Integer, nullable=False),
        comment="Fishing vessel registry",
    )
    contacts = Table(
        "NAVIRES_CONTACTS",
        metadata,
        Column("ID_CONTACT", Integer, primary_key=True, autoincrement=False),
        Column("ID_NAVIRE", Integer, ForeignKey(vessels.c.ID_NAVIRE), nullable=False, index=True),
        Column("ROLE", String(10), nullable=False, comment="OWNER or OPERATOR"),
        Column("NOM", String(200)),
        Column("EMAIL", String(200)),
        Column("TELEPHONE", String(30)),
        comment="Owners and operators; a higher ID_CONTACT is a more recent registration",
    )
    licences = Table(
        "NAVIRES_PERMIS",
        metadata,
        Column("ID_PERMIS", Integer, primary_key=True, autoincrement=False),
        Column("ID_NAVIRE", Integer, ForeignKey(vessels.c.ID_NAVIRE), nullable=False, index=True),
        Column("NUMERO_PERMIS", String(30)),
        Column("DATE_DEBUT", Date),
        Column("DATE_EXPIRATION", Date),
        comment="Fishing licences",
    )
    declared_gears = Table(
        "NAVIRES_ENGINS",
        metadata,
        Column("ID_NAVIRE", Integer, ForeignKey(vessels.c.ID_NAVIRE), primary_key=True),
        Column("CODE_ENGIN", String(5), primary_key=True, comment="ISSCFG gear code"),
        Column("RANG", Integer, nullable=False, comment="1 = main gear"),
        comment="Gears declared on the licence",
    )
    return SourceTables(metadata, vessels, contacts, licences, declared_gears)


def vessels_query(tables: SourceTables) -> Select[Any]:
    """One row per vessel with the latest owner and operator and the latest licence expiry.

    The contact of a role is the one with the highest ID_CONTACT, taken whole, so name, email and
    phone always come from the same person. Roles are bind parameters `owner_role` and
    `operator_role` (defaults OWNER / OPERATOR). Declared gears come from `declared_gears_query`.
    """
    v, c, lic = tables.vessels, tables.contacts, tables.licences

    def latest_contact(role_param: str, default: str, alias: str) -> Any:
        latest = (
            select(c.c.ID_NAVIRE, func.max(c.c.ID_CONTACT).label("ID_CONTACT"))
            .where(c.c.ROLE == bindparam(role_param, default))  # noqa: SIM300 (a column, not a constant)
            .group_by(c.c.ID_NAVIRE)
            .subquery(f"{alias}_LATEST")
        )
        contact = c.alias(alias)
        return latest, contact

    owner_latest, owner = latest_contact("owner_role", OWNER, "OWNER")
    operator_latest, operator = latest_contact("operator_role", OPERATOR, "OPERATOR")
    licence = (
        select(lic.c.ID_NAVIRE, func.max(lic.c.DATE_EXPIRATION).label("DATE_EXPIRATION"))
        .group_by(lic.c.ID_NAVIRE)
        .subquery("LICENCE")
    )

    joined = (
        v.outerjoin(owner_latest, owner_latest.c.ID_NAVIRE == v.c.ID_NAVIRE)
        .outerjoin(owner, owner.c.ID_CONTACT == owner_latest.c.ID_CONTACT)
        .outerjoin(operator_latest, operator_latest.c.ID_NAVIRE == v.c.ID_NAVIRE)
        .outerjoin(operator, operator.c.ID_CONTACT == operator_latest.c.ID_CONTACT)
        .outerjoin(licence, licence.c.ID_NAVIRE == v.c.ID_NAVIRE)
    )
    return (
        select(
            v.c.ID_NAVIRE.label("vessel_id"),
            v.c.CFR.label("cfr"),
            v.c.MMSI.label("mmsi"),
            v.c.IRCS.label("ircs"),
            v.c.IMMATRICULATION_EXT.label("external_immatriculation"),
            v.c.NOM_NAVIRE.label("vessel_name"),
            v.c.PAVILLON.label("flag_state"),
            v.c.LONGUEUR.label("length"),
            v.c.LARGEUR.label("width"),
            v.c.JAUGE.label("gauge"),
            v.c.PUISSANCE.label("power"),
            v.c.TYPE_NAVIRE.label("vessel_type"),
            v.c.CATEGORIE_NAVIGATION.label("sailing_category"),
            licence.c.DATE_EXPIRATION.label("licence_expiry_date"),
            v.c.CODE_QUARTIER.label("district_code"),
            v.c.LOCODE_PORT_ATTACHE.label("registry_port_locode"),
            owner.c.NOM.label("owner_name"),
            owner.c.EMAIL.label("owner_email"),
            owner.c.TELEPHONE.label("owner_phone"),
            operator.c.NOM.label("operator_name"),
            operator.c.EMAIL.label("operator_email"),
            operator.c.TELEPHONE.label("operator_phone"),
            v.c.EST_ACTIF.label("is_active"),
        )
        .select_from(joined)
        .order_by(v.c.ID_NAVIRE)
    )


def declared_gears_query(tables: SourceTables) -> Select[Any]:
    """Declared gears as rows (vessel_id, gear_code, rank), in vessel then rank order."""
    g = tables.declared_gears
    return select(
        g.c.ID_NAVIRE.label("vessel_id"),
        g.c.CODE_ENGIN.label("gear_code"),
        g.c.RANG.label("rank"),
    ).order_by(g.c.ID_NAVIRE, g.c.RANG, g.c.CODE_ENGIN)


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
