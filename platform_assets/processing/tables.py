"""SQLAlchemy Core handles on the processing tables the Dagster layer writes (schema: migrations)."""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql

metadata = sa.MetaData()

input_table = sa.Table(
    "input",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("product_type", sa.Text, nullable=False),
    sa.Column("catalogue_id", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("path", sa.Text),
    sa.Column("measurement_date", sa.DateTime(timezone=True)),
    sa.Column("publication_date", sa.DateTime(timezone=True)),
    sa.Column("tile", sa.Text),
    sa.Column(
        "harvested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_product_id", sa.BigInteger),
    schema="processing",
)

harvest_cursor = sa.Table(
    "harvest_cursor",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("published_after", sa.DateTime(timezone=True)),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    schema="ops",
)

rejected_catalogue_item = sa.Table(
    "rejected_catalogue_item",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("raw_sha256", sa.Text, nullable=False),
    sa.Column("item_id", sa.Text),
    sa.Column("raw", sa.dialects.postgresql.JSONB, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("input_id", sa.BigInteger),
    schema="processing",
)
