"""The vessel registry as it lives in the Oracle source: its tables and the queries we run.

Tables are declared with the source's upper-case Oracle names. SQLAlchemy quotes upper-case
identifiers, which Oracle resolves exactly like the unquoted names, and which lets the same
declarations create a look-alike schema in PostgreSQL for the embedded default and tests
(`source_tables(schema).metadata.create_all(connection)`).

Declared gears are fetched by a second query and aggregated by the reference domain rather than
with LISTAGG (Oracle) / string_agg (PostgreSQL): the SQL stays portable and free of dialect
switches, the gears keep their declared rank order, a list never hits LISTAGG's 4000-byte limit,
and gear codes never have to be split back out of a joined string.

Nothing here connects to a database: queries are SQLAlchemy Core objects that the caller executes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # SQLAlchemy is imported by the functions that build tables and queries: the reference
    # domain's definitions import this module for its error and row types (issue #20).
    from sqlalchemy import MetaData, Select, Table

#: Contact roles in the source's contacts table.
OWNER = "OWNER"
OPERATOR = "OPERATOR"


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
    from sqlalchemy import Column, Date, ForeignKey, Integer, MetaData, Numeric, String, Table

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
    from sqlalchemy import bindparam, func, select

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
    from sqlalchemy import select

    g = tables.declared_gears
    return select(
        g.c.ID_NAVIRE.label("vessel_id"),
        g.c.CODE_ENGIN.label("gear_code"),
        g.c.RANG.label("rank"),
    ).order_by(g.c.ID_NAVIRE, g.c.RANG, g.c.CODE_ENGIN)


class SourceDatabaseError(RuntimeError):
    """The registry cannot be read (unreachable, missing table, unsupported database)."""


@dataclass(frozen=True)
class RegistryRows:
    """One consistent read of the registry: rows of `vessels_query` and `declared_gears_query`."""

    source: str
    vessels: Sequence[Any]
    declared_gears: Sequence[Any]
