"""SQLAlchemy ORM models of the `pois` schema, declared once (the tables are created by Alembic,
migrations/versions/0011_pois.py).

The loader takes its column lists from these tables (COPY column order, the rows it builds from
the pydantic models), and a test compares them with the migrated database, so the three cannot
drift apart.

`REFERENCES` columns point at another table's id without a declared foreign key: since migration
0016 statement-level triggers check them (one join per statement instead of one query per row,
which doubled the cost of a bulk load), with the same guarantees. poi_history keeps its key.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "pois"


class Base(DeclarativeBase):
    """Declarative base of the POI tables."""

    metadata = sa.MetaData(schema=SCHEMA)


class PoiRow(Base):
    """A point of interest (an event or a venue), whatever the source."""

    __tablename__ = "poi"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text)
    url: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


class AddressRow(Base):
    """A geocoded address."""

    __tablename__ = "address"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    latitude: Mapped[float] = mapped_column(sa.Double)
    longitude: Mapped[float] = mapped_column(sa.Double)
    street: Mapped[str | None] = mapped_column(sa.Text)
    postcode: Mapped[str | None] = mapped_column(sa.Text)
    city: Mapped[str | None] = mapped_column(sa.Text)
    insee_code: Mapped[str | None] = mapped_column(sa.Text)
    label: Mapped[str | None] = mapped_column(sa.Text)


class AddressPoiRow(Base):
    """Which address a POI is at, and in which role (venue, start, finish...)."""

    __tablename__ = "address_poi"
    poi_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)  # REFERENCES poi
    address_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)  # REFERENCES address
    role: Mapped[str] = mapped_column(sa.Text, server_default="venue")


class ActivityRow(Base):
    """What can be done at a POI (a race: sport, distance, date; a facility's sport)."""

    __tablename__ = "activity"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    poi_id: Mapped[int] = mapped_column(sa.BigInteger)  # REFERENCES poi
    position: Mapped[int] = mapped_column(sa.SmallInteger)
    sport: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str | None] = mapped_column(sa.Text)
    distance_km: Mapped[float | None] = mapped_column(sa.Double)
    starts_on: Mapped[date | None] = mapped_column(sa.Date)


class RegisteredPoiRow(Base):
    """A POI as one source sees it: the upsert key and the content hash."""

    __tablename__ = "registered_poi"
    source: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    original_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    poi_id: Mapped[int] = mapped_column(sa.BigInteger, unique=True)  # REFERENCES poi
    content_hash: Mapped[str] = mapped_column(sa.Text)
    raw_hash: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    first_seen_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    valid_from: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    deactivated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PoiHistoryRow(Base):
    """A replaced version of a POI, valid from `valid_from` to `valid_to`."""

    __tablename__ = "poi_history"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    poi_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("poi.id"))
    source: Mapped[str] = mapped_column(sa.Text)
    original_id: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[str] = mapped_column(sa.Text)
    record: Mapped[dict] = mapped_column(JSONB)
    valid_from: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    valid_to: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class RawExtractRow(Base):
    """A record as received from a source (partitioned by extraction date)."""

    __tablename__ = "raw_extract"
    source: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    extraction_date: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    original_id: Mapped[str | None] = mapped_column(sa.Text)
    record: Mapped[dict] = mapped_column(JSONB)
    extracted_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    run_id: Mapped[str | None] = mapped_column(sa.Text)


class NormalisedRecordRow(Base):
    """The normalised models of a source's latest extraction, as the generic load reads them."""

    __tablename__ = "normalised_record"
    source: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    original_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    extraction_date: Mapped[date] = mapped_column(sa.Date)
    content_hash: Mapped[str] = mapped_column(sa.Text)
    record: Mapped[dict] = mapped_column(JSONB)


class QuarantineRow(Base):
    """A record that failed a transform, kept with its error until a replay succeeds."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(sa.Text)
    original_id: Mapped[str | None] = mapped_column(sa.Text)
    record_sha256: Mapped[str] = mapped_column(sa.Text)
    extraction_date: Mapped[date] = mapped_column(sa.Date)
    stage: Mapped[str] = mapped_column(sa.Text)
    record: Mapped[dict] = mapped_column(JSONB)
    error: Mapped[str] = mapped_column(sa.Text)
    quarantined_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    last_attempt_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="1")


def columns(row_class: type[Base]) -> list[str]:
    """The column names of an ORM table, in declaration order (the COPY column order)."""
    return [column.name for column in row_class.__table__.columns]


def qualified(row_class: type[Base]) -> str:
    """`pois.<table>` of an ORM class."""
    return f"{SCHEMA}.{row_class.__tablename__}"
